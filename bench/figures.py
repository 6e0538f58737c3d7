"""The figures of a run as a table: plain text for the terminal, Markdown for ``bench/README.md``
(between ``README_BEGIN`` and ``README_END``). Every row: what was measured, the baseline of the
same run, their ratio, the issue's target and whether it was met."""

from __future__ import annotations

from typing import Any

from bench.common import Json, fmt, fmt_ratio, table
from bench.opensearch import top
from bench.profiles import table_rows

README_BEGIN = "<!-- bench figures: begin (written by python -m bench) -->"
README_END = "<!-- bench figures: end -->"
HEADER = ("figure", "measured", "baseline (same run)", "ratio", "target", "met")
STRATEGY_HEADER = (
    "workload",
    "strategy",
    "replica = source",
    "statements failed (parameters / errors)",
    "statements out of commit order",
    "documents missing / unexpected",
    "lag p50",
    "lag p99",
    "lag max",
)
STRATEGY_NAMES = {
    "a_original_lambda": "(a) original Lambda",
    "b_start_time_buffer": "(b) startTime buffer",
    "c_this_service": "(c) this service",
}


def _met(value: Any) -> str:
    if value is None:
        return "n/a"
    return "yes" if value else "NO"


def _mb(kb: float | None) -> str:
    return fmt(None if kb is None else kb / 1024, " MB", 1)


def _s(ms: float | None) -> str:
    return fmt(None if ms is None else ms / 1000, " s", 1)


def rows(results: Json) -> list[list[str]]:
    """Every row of the parts the run measured, in the order of a full run's table."""
    out: list[list[str]] = []
    if "ingest" in results:
        out += ingest_rows(results["ingest"])
    if "ingest_linearity" in results:
        out += linearity_rows(results["ingest_linearity"])
    if "settle_cycle" in results:
        out += cycle_rows(results["settle_cycle"])
    if "settle_backlog" in results:
        out += backlog_rows(results["settle_backlog"])
    if "replay" in results:
        out += replay_rows(results["replay"])
    if "qldb" in results:
        out += qldb_rows(results["qldb"])
    if "postgres" in results:
        out += postgres_rows(results["postgres"])
    out += export_rows(results.get("export"))
    out += opensearch_rows(results.get("opensearch"))
    if "lag" in results:
        out += lag_rows(results["lag"])
    return out


def ingest_rows(ingest: Json) -> list[list[str]]:
    out: list[list[str]] = []
    for name, r in ingest["environments"].items():
        if "skipped" in r:
            out.append([f"ingest ({name})", "skipped", r["skipped"], "", "", ""])
            continue
        out.append(
            [
                f"ingest records/s, {r['ion']}",
                fmt(r["ingest_records_per_s"], "/s"),
                f"{fmt(r['parse_records_per_s'], '/s')} bare Ion parsing",
                fmt_ratio(r["ratio"]),
                ">= 0.50x",
                _met(r["target_met"]),
            ]
        )
        out.append(
            [
                f"ingest peak RSS, {r['ion']}",
                f"{_mb(r['ingest_peak_rss_kb'])} (+{_mb(r['ingest_rss_growth_kb'])} ingesting)",
                f"{_mb(r['parse_peak_rss_kb'])} bare parsing",
                fmt_ratio(r["ingest_peak_rss_kb"] / r["parse_peak_rss_kb"]),
                "",
                "",
            ]
        )
    return out


def _cycle_rate(size: Json) -> str:
    if "blocks_per_s" not in size:
        return ""
    return (
        f" ({fmt(size['blocks_per_s'], ' blocks/s')}, "
        f"{fmt(size['source_statements_per_s'], ' source statements/s')})"
    )


def cycle_rows(c: Json) -> list[list[str]]:
    out: list[list[str]] = []
    small, big = c["sizes"][str(c["small"])], c["sizes"][str(c["big"])]
    release = f"{c['release']:,}"
    partly = "" if c["big_complete"] else f" (of {c['big_wanted']:,} wanted)"
    out.append(
        [
            f"settle cycle releasing {release} blocks, {c['big']:,} held{partly}",
            fmt(big["seconds"], " s", 2) + _cycle_rate(big),
            f"{fmt(small['seconds'], ' s', 2)} with {c['small']:,} held",
            fmt_ratio(c["time_ratio"]),
            "<= 1.50x",
            _met(c["time_target_met"]),
        ]
    )
    out.append(
        [
            "settle cycle peak RSS (process)",
            _mb(big["peak_rss_kb"]),
            f"{_mb(small['peak_rss_kb'])} with {c['small']:,} held",
            fmt_ratio(c["peak_rss_ratio"]),
            "<= 1.20x",
            _met(c["peak_rss_ratio"] is not None and c["peak_rss_ratio"] <= 1.2),
        ]
    )
    out.append(
        [
            "settle cycle RSS growth during the cycle",
            _mb(big["rss_growth_kb"]),
            f"{_mb(small['rss_growth_kb'])} with {c['small']:,} held",
            fmt_ratio(c["rss_growth_ratio"]),
            "<= 1.20x",
            _met(c["rss_growth_ratio"] is not None and c["rss_growth_ratio"] <= 1.2),
        ]
    )
    return out


def backlog_rows(b: Json) -> list[list[str]]:
    """Peak memory of a cycle facing the whole buffer as a backlog, big against small."""
    small, big = b["sizes"][str(b["small"])], b["sizes"][str(b["big"])]
    partly = "" if b["big_complete"] else f" (of {b['big_wanted']:,} wanted)"
    total = b["big"] + b["release"]
    return [
        [
            f"settle cycle peak RSS facing a backlog of {total:,} blocks{partly} "
            f"(stopped by its deadline after {b['release']:,})",
            f"{_mb(big['peak_rss_kb'])} (+{_mb(big['rss_growth_kb'])} during the cycle; "
            f"{fmt(big['seconds'], ' s', 2)})",
            f"{_mb(small['peak_rss_kb'])} (+{_mb(small['rss_growth_kb'])}) at a backlog of "
            f"{b['small'] + b['release']:,}",
            fmt_ratio(b["peak_rss_ratio"]) + f" (growth {fmt_ratio(b['rss_growth_ratio'])})",
            "<= 1.20x",
            _met(b["memory_target_met"]),
        ]
    ]


def linearity_rows(li: Json) -> list[list[str]]:
    small, big = li["sizes"][str(li["small"])], li["sizes"][str(li["big"])]
    return [
        [
            f"ingest cost per record in events of {li['big']:,} records, {li['ion']}",
            f"{fmt(big['us_per_record'], ' µs', 0)} ({fmt(big['records_per_s'], ' records/s')}, "
            f"{big['events']:,} event{'s' if big['events'] != 1 else ''})",
            f"{fmt(small['us_per_record'], ' µs', 0)} in events of {li['small']:,} "
            f"({small['events']:,} events)",
            fmt_ratio(li["ratio"]),
            "0.83x to 1.20x",
            _met(li["target_met"]),
        ]
    ]


def qldb_rows(q: Json) -> list[list[str]]:
    """The cycle through serve-qldb against the embedded one plus the protocol's own cost."""
    if "skipped" in q:
        skipped = "skipped: " + str(q["skipped"])
        return [["settle cycle through serve-qldb", skipped, "", "", "", ""]]
    out: list[list[str]] = []
    for mode, m in q["modes"].items():
        top = ", ".join(
            f"{k} {v:,.0f}" for k, v in sorted(m["commands"].items(), key=lambda kv: -kv[1])[:3]
        )
        out.append(
            [
                f"whole settle cycle through serve-qldb and pyqldb, {mode[:-1]} mode "
                f"({m['blocks']:,} blocks)",
                f"{fmt(m['qldb_cycle_blocks_per_s'], ' blocks/s')} "
                f"({fmt(m['qldb_cycle_statements_per_s'], ' source statements/s')})",
                f"{fmt(m['embedded_cycle_blocks_per_s'], ' blocks/s')} embedded "
                f"({fmt(m['embedded_cycle_statements_per_s'], ' source statements/s')})",
                fmt_ratio(m["qldb_to_embedded"]),
                "reported",
                "",
            ]
        )
        out.append(
            [
                "  against embedded + the protocol's own cost",
                f"{m['commands_per_block']:.1f} commands per block ({top}); waiting for "
                f"answers {m['command_wait_share']:.0%} of the cycle",
                f"{fmt(m['protocol_blocks_per_s'], ' blocks/s')} = embedded + "
                f"{fmt(m['protocol_seconds'], ' s', 1)} of no-op round trips "
                f"({m['noop_empty_transaction_ms']:.1f} ms an empty transaction, "
                f"{m['noop_statement_transaction_ms']:.1f} ms with one trivial statement)",
                fmt_ratio(m["ratio_to_embedded_plus_protocol"]),
                "<= 1.00x",
                _met(m["target_met"]),
            ]
        )
    return out


def replay_rows(replay: Json) -> list[list[str]]:
    out: list[list[str]] = []
    for mode, m in replay["modes"].items():
        out.append(
            [
                f"{mode[:-1]} replay into the embedded ledger",
                f"{fmt(m['replay_blocks_per_s'], ' blocks/s')} "
                f"({fmt(m['replay_statements_per_s'], ' statements/s')}, "
                f"{fmt(m['replay_documents_per_s'], ' documents/s')})",
                f"{fmt(m['raw_documents_per_s'], ' documents/s')} raw SQLite inserts",
                fmt_ratio(m["ratio_to_raw"]),
                ">= 1,000 blocks/s",
                _met(m["target_met"]),
            ]
        )
        out.append(
            [
                f"  whole settle cycle, {mode[:-1]} mode",
                f"{fmt(m['cycle_blocks_per_s'], ' blocks/s')} "
                f"({fmt(m['cycle_statements_per_s'], ' source statements/s')})",
                "",
                "",
                ">= 1,000 blocks/s",
                _met(m["cycle_target_met"]),
            ]
        )
    sim = replay.get("simulated")
    if sim is not None:
        out.append(
            [
                f"  whole settle cycle, simulated workload ({sim['param_rate']:.0%} parameterized)",
                f"{fmt(sim['cycle_blocks_per_s'], ' blocks/s')} "
                f"({fmt(sim['cycle_statements_per_s'], ' source statements/s')}; "
                f"{sim['replayed_statements']:,} statements and {sim['replayed_revisions']:,} "
                "revisions replayed)",
                "",
                "",
                ">= 1,000 blocks/s",
                _met(sim["cycle_target_met"]),
            ]
        )
    rt = replay["round_trip"]
    out.append(
        [
            f"grouped replay at {rt['round_trip_ms']:.0f} ms round trip (group {rt['group']})",
            fmt(rt["grouped_replay_blocks_per_s"], " blocks/s"),
            f"{fmt(rt['ungrouped_replay_blocks_per_s'], ' blocks/s')} ungrouped",
            fmt_ratio(rt["speedup_replay"]),
            ">= 10x",
            _met(rt["target_met"]),
        ]
    )
    out.append(
        [
            "  whole settle cycle at that round trip",
            fmt(rt["grouped_blocks_per_s"], " blocks/s")
            + (
                f" ({fmt(rt['grouped_statements_per_s'], ' source statements/s')})"
                if "grouped_statements_per_s" in rt
                else ""
            ),
            f"{fmt(rt['ungrouped_blocks_per_s'], ' blocks/s')} ungrouped",
            fmt_ratio(rt["speedup"]),
            ">= 10x",
            _met(rt["cycle_target_met"]),
        ]
    )
    return out


def postgres_rows(pg: Json) -> list[list[str]]:
    out: list[list[str]] = []
    for mode in ("statements", "revisions"):
        m = pg.get(mode)
        if m is None:
            continue
        out.append(
            [
                f"{mode[:-1]}-mode blocks replayed into PostgreSQL (group {m['grouped']['group']})",
                f"{fmt(m['grouped']['replay_blocks_per_s'], ' blocks/s')} "
                f"({fmt(m['grouped'].get('replay_statements_per_s'), ' source statements/s')}, "
                f"{fmt(m['grouped']['replay_documents_per_s'], ' documents/s')})",
                f"{fmt(m['embedded']['replay_blocks_per_s'], ' blocks/s')} embedded ledger",
                fmt_ratio(m["grouped_to_embedded"]),
                "reported",
                "",
            ]
        )
        out.append(
            [
                "  PostgreSQL, one block per transaction",
                fmt(m["one_per_txn"]["replay_blocks_per_s"], " blocks/s"),
                "grouped is " + fmt_ratio(m["grouped_to_one_per_txn"]),
                "",
                "reported",
                "",
            ]
        )
    if "skipped" in pg:
        out.append(["replay into PostgreSQL", "skipped: " + str(pg["skipped"]), "", "", "", ""])
    return out


def lag_rows(lag: Json) -> list[list[str]]:
    out: list[list[str]] = []
    targets = lag["targets"]
    labels = {
        "window": "lag, 120 s window, schedule 60 s",
        "window_early_release": "lag, early release (read-only gaps)",
        "no_gaps_early_release": "lag, early release, no read-only gaps",
    }
    for name, run in lag["runs"].items():
        dist = run["lag_ms"]
        target, met = "", ""
        if name == "window":
            target = f"p99 <= {_s(targets['p99_at_most_window_plus_schedule']['bound_ms'])}"
            met = _met(targets["p99_at_most_window_plus_schedule"]["met"])
        elif name == "no_gaps_early_release":
            target = (
                f"p50 <= {_s(targets['early_release_no_gaps_p50_at_most_schedule']['bound_ms'])}"
            )
            met = _met(targets["early_release_no_gaps_p50_at_most_schedule"]["met"])
        out.append(
            [
                labels.get(name, name),
                f"p50 {_s(dist['p50'])}, p99 {_s(dist['p99'])}, max {_s(dist['max'])} "
                f"({dist['n']} blocks, {run['cycles']} cycles)",
                f"window {run['window_seconds']:.0f} s + schedule {run['schedule_seconds']:.0f} s",
                fmt_ratio(
                    None
                    if dist["p99"] is None
                    else dist["p99"] / ((run["window_seconds"] + run["schedule_seconds"]) * 1000)
                ),
                target,
                met,
            ]
        )
    return out


def export_rows(e: Json | None) -> list[list[str]]:
    """One row per export format: blocks/s into a new SQLite buffer against bare decoding."""
    if e is None:
        return []
    out: list[list[str]] = []
    for r in e["formats"].values():
        objects = f"{r['objects']:,} object" + ("" if r["objects"] == 1 else "s")
        # Bare JSON decoding is C-fast: two decimals would round that ratio to 0.00x.
        small = r["ratio"] is not None and r["ratio"] < 0.1
        out.append(
            [
                f"export ingest, {r['label']}, {r['blocks']:,} blocks, {r['ion']}",
                f"{fmt(r['ingest_blocks_per_s'], ' blocks/s')} "
                f"({fmt(r['ingest_revisions_per_s'], ' revisions/s')}, {objects})",
                f"{fmt(r['decode_blocks_per_s'], ' blocks/s')} bare {r['baseline']}",
                f"{r['ratio']:.3f}x" if small else fmt_ratio(r["ratio"]),
                "reported",
                "",
            ]
        )
    return out


def opensearch_rows(o: Json | None) -> list[list[str]]:
    if o is None:
        return []
    req, w = o["requests"], o["workload"]
    rt = f"{o['round_trip_ms']:g} ms"
    sqlite, slow = o["stores"]["sqlite"], o["stores"][f"opensearch_{o['round_trip_ms']:g}ms"]
    fast = o["stores"]["opensearch_0ms"]
    return [
        [
            f"OpenSearch ingest: requests per Lambda event ({w['events']:,} events)",
            f"{req['ingest_per_event']:.2f} ({req['ingest_total']:,}: {top(req['ingest'])})",
            "",
            "",
            "<= 2",
            _met(req["ingest_target_met"]),
        ],
        [
            f"OpenSearch settle: requests per replayed block ({w['blocks']:,} blocks, one cycle)",
            f"{req['settle_per_block_steady']:.3f} beyond the cycle's constant "
            f"({req['settle_per_block']:.3f} with it; {req['settle_total']:,}: "
            f"{top(req['settle'])})",
            f"constant per cycle: {req['cycle_constant']} requests",
            "",
            "<= 0.05",
            _met(req["settle_target_met"]),
        ],
        [
            f"OpenSearch settle cycle at {rt} per request",
            fmt(slow["settle_blocks_per_s"], " blocks/s")
            + f" ({fmt(slow['settle_statements_per_s'], ' statements/s')}; osmem-server "
            f"answering {slow['settle_server_share']:.0%} of the time)",
            f"{fmt(sqlite['settle_blocks_per_s'], ' blocks/s')} SQLite buffer",
            fmt_ratio(slow["settle_to_sqlite"]),
            "reported",
            "",
        ],
        [
            "  the same over loopback, nothing added",
            fmt(fast["settle_blocks_per_s"], " blocks/s")
            + f" (osmem-server answering {fast['settle_server_share']:.0%} of the time)",
            "",
            fmt_ratio(fast["settle_to_sqlite"]),
            "reported",
            "",
        ],
        [
            f"OpenSearch ingest at {rt} per request",
            fmt(slow["ingest_records_per_s"], " records/s")
            + f" ({fmt(slow['ingest_events_per_s'], ' events/s')}; osmem-server answering "
            f"{slow['ingest_server_share']:.0%} of the time)",
            f"{fmt(sqlite['ingest_records_per_s'], ' records/s')} SQLite buffer (.venv)",
            fmt_ratio(slow["ingest_to_sqlite"]),
            "reported",
            "",
        ],
        [
            "  the same over loopback, nothing added",
            fmt(fast["ingest_records_per_s"], " records/s")
            + f" (osmem-server answering {fast['ingest_server_share']:.0%} of the time)",
            "",
            fmt_ratio(fast["ingest_to_sqlite"]),
            "reported",
            "",
        ],
    ]


def strategy_rows(results: Json) -> list[list[str]]:
    out: list[list[str]] = []
    for family, f in results["strategies"]["families"].items():
        for name, s in f["strategies"].items():
            dist = s["lag_ms"]
            other = "failed_parameters" in s
            out.append(
                [
                    f"{family} (parameters {f['param_rate']:.0%})",
                    STRATEGY_NAMES.get(name, name),
                    f"{s['equal_runs']} of {s['runs']} runs",
                    f"{s['failed_parameters']} / {s['failed_errors']}" if other else "n/a",
                    str(s["out_of_commit_order"]) if other else "n/a (commit order)",
                    f"{s['missing']} / {s['unexpected']}",
                    _s(dist["p50"]),
                    _s(dist["p99"]),
                    _s(dist["max"]),
                ]
            )
    return out


def _sections(results: Json, render: Any) -> str:
    """The strategy and profile tables of the run (those it measured), each under its title."""
    out = ""
    if "strategies" in results:
        out += "\n\nStrategies on the same simulated workloads:\n\n" + render(
            strategy_rows(results), STRATEGY_HEADER
        )
    if "profile" in results:
        header, body = table_rows(results["profile"])
        out += (
            "\n\nWhere the time goes (cProfile, one run per path; self time by module, a "
            "built-in's time counted in its caller's module, SQLite's apart; ingest in "
            f"{results['profile']['ingest_ion']}):\n\n" + render(body, tuple(header))
        )
    return out


def text(results: Json) -> str:
    meta = results["meta"]
    return (
        f"qldb-settle benchmarks ({meta['duration_seconds'] / 60:.1f} min, {meta['cpus']} CPUs, "
        f"load average {meta['load_average_before'][0]:.1f} at the start)\n\n"
        + table(rows(results), HEADER)
        + _sections(results, table)
    )


def _md(rows_: list[list[str]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows_]
    return "\n".join(lines)


def markdown(results: Json) -> str:
    meta = results["meta"]
    changed = meta.get("uncommitted_changes") or []
    dirty = (
        f" plus uncommitted changes to {', '.join(f'`{c}`' for c in changed)}" if changed else ""
    )
    return (
        f"Run of {meta['finished_at']} (commit {str(meta['git_commit'])[:10]}{dirty}), "
        f"{meta['duration_seconds'] / 60:.1f} minutes on {meta['cpus']} CPUs, load average "
        f"{meta['load_average_before'][0]:.1f} at the start and "
        f"{meta['load_average_after'][0]:.1f} at the end.\n\n"
        + _md(rows(results), HEADER)
        + _sections(results, _md)
        + "\n"
    )
