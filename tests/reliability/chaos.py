"""``make chaos``: the reliability campaign (issue 10).

``python -m tests.reliability.chaos [--seed K] [--quick] [--workdir DIR] [--only NAME ...]``

Runs the scenarios of ``tests/reliability/scenarios.py`` (the main run on SQLite and the embedded
replica, the OpenSearch buffer, the QLDB and PostgreSQL destinations, and the late scenario) and
of ``tests/reliability/impaired.py`` (the ingest failing past its retries while the settler runs)
two at a time through real ``qldb-settle`` processes, prints a table (fault, times injected,
outcome, records lost, documents wrong, blocks skipped) and writes
``tests/reliability/report.json``. Exit 0 when the main run lost no record, got no document wrong
and skipped no block, the late scenario listed every late block, every fault was injected, and at
least 100 ``kill -9`` landed; 1 otherwise; 2 when the campaign itself broke.

Each run works in a fresh folder (``--workdir``, default a new one under the system's temporary
folder), kept when anything failed so every process's output can be read in ``*/logs``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import shutil
import sys
import tempfile
import textwrap
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .impaired import impaired_scenario
from .pipeline import Tallies, Tally
from .scenarios import (
    FULL,
    QUICK,
    Context,
    ScenarioResult,
    late_scenario,
    main_scenario,
    opensearch_scenario,
    postgres_scenario,
    qldb_scenario,
)

REPORT = Path(__file__).with_name("report.json")
MIN_KILLS = 100

# Every fault of issue 10, in the order of the table; each must be injected at least once.
FAULTS = (
    "kill -9 ingest",
    "kill -9 settle",
    "two settlers at once",
    "two settlers at once, same owner",
    "buffer locked mid-batch",
    "buffer locked mid-cycle",
    "buffer read-only mid-batch",
    "buffer read-only mid-cycle",
    "OpenSearch 429 mid-batch",
    "OpenSearch 503 mid-batch",
    "OpenSearch answer lost mid-batch",
    "osmem-server stopped mid-batch",
    "OpenSearch unreachable mid-batch",
    "OpenSearch 429 mid-cycle",
    "OpenSearch 503 mid-cycle",
    "osmem-server stopped mid-cycle",
    "OpenSearch unreachable mid-cycle",
    "OpenSearch marks of a group half written",
    "destination OCC conflict mid-group",
    "destination 503 mid-group",
    "destination commit answer lost",
    "destination down mid-group",
    "PostgreSQL server killed mid-group",
    "deadline expires mid-cycle",
    "ingest failing past its retries",
    "records re-delivered for replayed blocks",
    "blocks delivered hours late",
)
SCENARIOS: dict[str, Callable[[Context], ScenarioResult]] = {
    "main": main_scenario,
    "opensearch": opensearch_scenario,
    "qldb": qldb_scenario,
    "postgres": postgres_scenario,
    "late": late_scenario,
    "impaired": impaired_scenario,
}
# Two lanes on two cores: the long main run, and the others one after another.
LANES = (("main",), ("opensearch", "impaired", "qldb", "postgres", "late"))
MAIN_RUN = ("main", "opensearch", "qldb", "postgres", "impaired")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=10, help="random seed (default 10)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    parser.add_argument("--workdir", type=Path, help="a new folder for the run's files")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="scenario")
    parser.add_argument(
        "--report",
        type=Path,
        help=f"report file (default {REPORT}; beside the workdir with --quick or --only)",
    )
    args = parser.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qldb-settle-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        print(f"{workdir}: not empty; give a new --workdir", file=sys.stderr)
        return 2
    lock = threading.Lock()
    t0 = time.monotonic()

    def say(text: str) -> None:
        with lock:
            print(f"[{time.monotonic() - t0:6.1f} s] {text}", flush=True)

    size = QUICK if args.quick else FULL
    tallies = Tallies()
    ctx = Context(workdir=workdir, seed=args.seed, size=size, tallies=tallies, say=say)
    chosen = set(args.only or SCENARIOS)
    results: dict[str, ScenarioResult] = {}
    broken: dict[str, str] = {}

    def lane(names: Sequence[str]) -> None:
        for name in names:
            if name not in chosen:
                continue
            try:
                results[name] = SCENARIOS[name](ctx)
                say(f"[{name}] done in {results[name].seconds:.0f} s")
            except Exception:
                broken[name] = traceback.format_exc()
                say(f"[{name}] BROKE:\n{broken[name]}")

    say(f"chaos campaign, seed {args.seed}, {'quick' if args.quick else 'full'}, in {workdir}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(LANES)) as pool:
        for future in [pool.submit(lane, names) for names in LANES]:
            future.result()
    seconds = time.monotonic() - t0

    report = build_report(
        results,
        broken,
        tallies,
        seed=args.seed,
        quick=args.quick,
        seconds=seconds,
        workdir=workdir,
        chosen=chosen,
    )
    print()
    print(table(tallies.all()))
    print()
    for line in summary(report):
        print(line)
    # A partial or quick run does not overwrite the campaign's report.
    partial = workdir.with_name(f"{workdir.name}-report.json")
    target = args.report or (partial if args.quick or args.only else REPORT)
    target.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"report: {target}")
    passed = bool(report["verdict"]["passed"])
    if passed and not broken:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"the run's files are kept in {workdir}")
    if broken:
        return 2
    return 0 if passed else 1


def ordered(tallies: Sequence[Tally]) -> list[Tally]:
    rank = {f: i for i, f in enumerate(FAULTS)}
    return sorted(tallies, key=lambda t: (rank.get(t.fault, len(rank)), t.fault))


def table(tallies: Sequence[Tally]) -> str:
    head = ("fault", "scenario", "injected", "records lost", "docs wrong", "skipped", "outcome")
    rows: list[tuple[str, ...]] = []
    for t in ordered(tallies):
        rows.append(
            (
                t.fault,
                t.scenario,
                str(t.injected),
                "-" if t.records_lost is None else str(t.records_lost),
                "-" if t.documents_wrong is None else str(t.documents_wrong),
                "-" if t.blocks_skipped is None else str(t.blocks_skipped),
                t.outcome(),
            )
        )
    n = len(head) - 1
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(n)]
    out_width = max(40, 150 - sum(widths) - 2 * n)
    lines = []

    def line(cells: Sequence[str]) -> None:
        wrapped = textwrap.wrap(cells[n], out_width) or [""]
        first = "  ".join(c.ljust(w) for c, w in zip(cells[:n], widths, strict=True))
        lines.append(f"{first}  {wrapped[0]}")
        pad = " " * (len(first) + 2)
        lines.extend(pad + w for w in wrapped[1:])

    line(head)
    lines.append("-" * min(160, sum(widths) + 2 * n + out_width))
    for r in rows:
        line(r)
    return "\n".join(lines)


def build_report(
    results: dict[str, ScenarioResult],
    broken: dict[str, str],
    tallies: Tallies,
    *,
    seed: int,
    quick: bool,
    seconds: float,
    workdir: Path,
    chosen: set[str],
) -> dict[str, Any]:
    by_fault = {t.fault: t for t in tallies.all()}
    kills = sum(by_fault[f].injected for f in ("kill -9 ingest", "kill -9 settle") if f in by_fault)
    main_run = [results[n] for n in MAIN_RUN if n in results]
    lost = sum(r.records_lost for r in main_run)
    wrong = sum(r.documents_wrong for r in main_run)
    skipped = sum(r.blocks_skipped for r in main_run)
    late = results.get("late")
    expected = [f for f in FAULTS if _scenario_of(f) in chosen]
    missing = [f for f in expected if f not in by_fault or by_fault[f].injected == 0]
    checks = {
        "main run: zero records lost": lost == 0 and len(main_run) == len(set(MAIN_RUN) & chosen),
        "main run: zero documents wrong": wrong == 0,
        "main run: zero blocks skipped (every streamed block replayed in order)": skipped == 0,
        "main run: every scenario check held": all(all(r.checks.values()) for r in main_run),
        "late scenario: every late block counted, listed, never applied": (
            late is not None and all(late.checks.values())
        )
        if "late" in chosen
        else True,
        "every fault injected at least once": quick or not missing,
        f"at least {MIN_KILLS} kill -9 landed": quick or "main" not in chosen or kills >= MIN_KILLS,
        "no scenario broke": not broken,
    }
    findings = _findings(by_fault)
    return {
        "campaign": {
            "command": "python -m tests.reliability.chaos" + (" --quick" if quick else ""),
            "seed": seed,
            "quick": quick,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "workdir": str(workdir),
        },
        "verdict": {
            "passed": all(checks.values()),
            "checks": checks,
            "records_lost": lost,
            "documents_wrong": wrong,
            "blocks_skipped": skipped,
            "kill9_landed": kills,
            "faults_not_injected": missing,
        },
        "faults": [t.as_json() for t in ordered(tallies.all())],
        "scenarios": [results[n].as_json() for n in SCENARIOS if n in results],
        "broken": broken,
        "findings": findings,
    }


def _scenario_of(fault: str) -> str:
    if fault.startswith(("OpenSearch", "osmem")):
        return "opensearch"
    if fault.startswith("destination"):
        return "qldb"
    if fault == "blocks delivered hours late":
        return "late"
    if fault == "ingest failing past its retries":
        return "impaired"
    return "main"


def _findings(by_fault: dict[str, Tally]) -> list[str]:
    out = []
    same = by_fault.get("two settlers at once, same owner")
    if same is not None and any(o.startswith("both held the lease") for o in same.outcomes):
        out.append(
            "The settler lease does not keep a second `qldb-settle settle` out when both run as "
            "the same user on the same host: the CLI's lease owner is `settle-cli:USER@HOST` "
            "(qldb_settle/commands/settle.py `_owner`), and `acquire_lease` renews a lease held "
            "by the same owner, so both cycles run at once. The destination's compare-and-set "
            "still keeps every block applied once (the replica stays exact), but the loser "
            "spends its cycle on CheckpointMismatch and may exit 3, and the first to finish "
            "releases the lease while the other still runs. Reproduce: ingest a simulation, then "
            "start two `qldb-settle settle --group-size 1 --now 2100-01-01T00:00:00Z` on the same "
            "buffer and replica 0.3 s apart: both take the lease (one ends with 'kept moving "
            "under the settler', exit 3)."
        )
    for t in by_fault.values():
        for outcome in t.outcomes:
            if outcome.startswith(("NOT", "FAILED")) or " exit 1" in outcome or "exit 2" in outcome:
                out.append(f"{t.fault} ({t.scenario}): {outcome}")
    return out


def summary(report: dict[str, Any]) -> list[str]:
    v = report["verdict"]
    lines = [
        f"kill -9 landed: {v['kill9_landed']}   records lost (main run): {v['records_lost']}   "
        f"documents wrong (main run): {v['documents_wrong']}   "
        f"blocks skipped (main run): {v.get('blocks_skipped', '?')}"
    ]
    for s in report["scenarios"]:
        a = s["accounting"]
        b = a.get("blocks", {})
        lines.append(
            f"  {s['name']:<10} {s['buffer']} -> {s['destination']}: "
            f"{a.get('stream_records', '?')} distinct records ({a.get('delivered_copies', '?')} "
            f"delivered), {a.get('stored', '?')} stored, {a.get('late', '?')} late, "
            f"{a.get('records_lost', '?')} lost; blocks: {b.get('replayed_in_order', '?')} of "
            f"{b.get('blocks_to_replay', '?')} replayed in order, "
            f"{s.get('blocks_skipped', '?')} skipped ({b.get('read_only_blocks', '?')} read-only "
            f"not streamed); verify: {s['documents_wrong']} wrong; "
            f"{'ok' if s['ok'] else 'NOT OK'} ({s['seconds']} s)"
        )
        for note in s["notes"]:
            lines.append(f"    note: {note}")
    for name, check in v["checks"].items():
        lines.append(f"  [{'x' if check else ' '}] {name}")
    for f in report["findings"]:
        lines.append(f"  finding: {f}")
    lines.append("PASSED" if v["passed"] else "FAILED")
    return lines


if __name__ == "__main__":
    sys.exit(main())
