"""The benchmarks cannot rot: ``python -m bench --tiny`` runs every benchmark at a tiny size and
writes every figure; the ingest benchmark imports only what the ingest Lambda ships. Speed is
never asserted here (``bench/README.md`` holds the figures)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.common import INGEST_PYTHON, REPO_ROOT, median, percentiles, table

# What the ingest Lambda does not ship, or what the ingest path must not need.
FORBIDDEN_IN_INGEST = (
    "ionhash",
    "pyqldb",
    "boto3",
    "botocore",
    "opensearchpy",
    "aws_lambda_powertools",
    "settler",
    "destination",
    "qldb_settle",
    "ledger.engine",
    "ledger.hashing",
)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--out", str(out), "--readme", "-"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text(encoding="utf-8")), done.stdout


def test_every_figure_is_written(tiny: tuple[dict[str, Any], str]) -> None:
    results, _ = tiny
    assert set(results) == {
        "meta", "ingest", "ingest_linearity", "settle_cycle", "settle_backlog", "replay", "qldb",
        "postgres", "export", "opensearch", "lag", "strategies", "profile",
    }  # fmt: skip
    envs = results["ingest"]["environments"]
    for name, r in envs.items():
        if "skipped" in r:
            assert name == "venv-ingest" and not INGEST_PYTHON.exists()
            continue
        for key in ("ingest_records_per_s", "parse_records_per_s", "ratio", "ingest_peak_rss_kb"):
            assert _positive(r[key]), (name, key, r[key])
        assert r["records"] == results["ingest"]["simulation"]["delivered_records"]
    if INGEST_PYTHON.exists():
        assert "C extension" in envs["venv-ingest"]["ion"]
    assert "pure Python" in envs["venv"]["ion"]

    cycle = results["settle_cycle"]
    assert set(cycle["sizes"]) == {str(cycle["small"]), str(cycle["big"])}
    for size in cycle["sizes"].values():
        assert size["blocks"] == cycle["release"]
        assert _positive(size["seconds"]) and _positive(size["peak_rss_kb"])
    assert _positive(cycle["time_ratio"]) and _positive(cycle["peak_rss_ratio"])

    backlog = results["settle_backlog"]
    assert set(backlog["sizes"]) == set(cycle["sizes"])
    for size in backlog["sizes"].values():
        # Stopped by its deadline after the real blocks, the whole buffer released behind them.
        assert size["blocks"] == backlog["release"] and _positive(size["peak_rss_kb"])
    assert _positive(backlog["peak_rss_ratio"])

    li = results["ingest_linearity"]
    assert li["environment"] == ("venv-ingest" if INGEST_PYTHON.exists() else "venv")
    sizes = li["sizes"]
    assert set(sizes) == {str(li["small"]), str(li["big"])}
    assert sizes[str(li["small"])]["events"] > sizes[str(li["big"])]["events"] == 1
    # The same records either way: the same blocks stored, the same duplicates found.
    assert sizes[str(li["small"])]["stored"] == sizes[str(li["big"])]["stored"]
    assert _positive(li["ratio"])

    q = results["qldb"]
    for mode in ("statements", "revisions"):
        m = q["modes"][mode]
        assert m["commands"]["CommitTransaction"] >= m["qldb_applies"] > 0
        assert m["commands"]["ExecuteStatement"] > m["blocks"]
        for key in ("qldb_cycle_blocks_per_s", "embedded_cycle_blocks_per_s", "protocol_seconds",
                    "ratio_to_embedded_plus_protocol", "noop_empty_transaction_ms"):  # fmt: skip
            assert _positive(m[key]), (mode, key)
    assert q["modes"]["revisions"]["replayed_revisions"] > 0

    profile = results["profile"]
    assert set(profile["paths"]) == {"ingest", "statements", "revisions", "simulated"}
    for path, r in profile["paths"].items():
        assert sum(r["shares"].values()) == pytest.approx(1.0, abs=0.01), path
        assert _positive(r["profiled_seconds"])
    # Each path's own code shows up where it should.
    assert any(g.startswith("ingest.") for g in profile["paths"]["ingest"]["shares"])
    assert "settler.cycle" in profile["paths"]["revisions"]["shares"]

    replay = results["replay"]
    assert set(replay["modes"]) == {"statements", "revisions"}
    for mode, m in replay["modes"].items():
        assert _positive(m["replay_blocks_per_s"]) and _positive(m["raw_documents_per_s"])
        assert _positive(m["ratio_to_raw"])
        # Statement mode replays the statements; revision mode the documents' revisions.
        if mode == "statements":
            assert m["replayed_statements"] == m["source_statements"]
        else:
            assert m["replayed_revisions"] == m["documents"]
    rt = replay["round_trip"]
    assert rt["ungrouped_applies"] == rt["blocks"] > rt["grouped_applies"]
    assert _positive(rt["speedup"])

    pg = results["postgres"]
    for mode in ("statements", "revisions"):
        m = pg[mode]
        assert m["one_per_txn"]["applies"] == m["blocks"] > m["grouped"]["applies"]
        assert _positive(m["grouped"]["replay_blocks_per_s"])
        assert _positive(m["embedded"]["replay_blocks_per_s"])

    export = results["export"]
    assert set(export["formats"]) == {"ION_TEXT", "ION_BINARY", "JSON"}
    if INGEST_PYTHON.exists():
        assert export["environment"] == "venv-ingest" and "C extension" in export["ion"]
    for fmt, e in export["formats"].items():
        for key in ("ingest_blocks_per_s", "ingest_revisions_per_s", "decode_blocks_per_s"):
            assert _positive(e[key]), (fmt, key, e[key])
        assert _positive(e["ratio"]) and e["objects"] > 0
        # The whole export was stored: every block of the simulated journal but the last, which
        # the simulator leaves to the stream (export_fraction 1.0).
        sim = e["simulation"]
        assert e["blocks"] == e["stored"]["blocks"] == sim["export_blocks"]
        assert 0 < sim["export_blocks"] < sim["journal_blocks"]

    o = results["opensearch"]
    # Counted by the proxy in front of osmem-server: every phase's requests, every store's rates.
    assert o["workload"]["blocks"] > 0 and o["workload"]["events"] > 0
    assert {"POST _mget", "POST _bulk"} <= set(o["requests"]["ingest"])
    assert o["requests"]["ingest_total"] == sum(o["requests"]["ingest"].values())
    assert 0 < o["requests"]["cycle_constant"] < o["requests"]["settle_total"]
    assert set(o["stores"]) == {"sqlite", "opensearch_0ms", "opensearch_5ms"}
    for rates in o["stores"].values():
        assert _positive(rates["settle_blocks_per_s"]) and _positive(rates["ingest_records_per_s"])

    for run in results["lag"]["runs"].values():
        assert run["verified"] and run["lag_ms"]["n"] == run["blocks_replayed"] > 0
    assert results["meta"]["duration_seconds"] > 0


def test_this_service_equals_the_source_on_every_run(tiny: tuple[dict[str, Any], str]) -> None:
    strategies = tiny[0]["strategies"]
    assert strategies["c_equal_on_every_run"]
    for family in strategies["families"].values():
        for run in family["runs"]:
            service = run["c_this_service"]
            assert service["equal"] and all(c["equal"] for c in service["comparisons"])
            for name in ("a_original_lambda", "b_start_time_buffer"):
                other = run[name]
                # Every block reached (a) and (b) too; they differ by what they do with it.
                assert other["blocks"] == service["blocks_replayed"]
                assert other["documents"] == service["comparisons"][0]["documents"]


def test_the_table_is_printed(tiny: tuple[dict[str, Any], str]) -> None:
    _, stdout = tiny
    for text in ("ingest records/s", "settle cycle releasing", "replay into the embedded ledger",
                 "lag, 120 s window", "(c) this service",
                 "OpenSearch settle: requests per replayed block", "export ingest, Ion text",
                 "export ingest, Ion binary", "export ingest, JSON Lines",
                 "through serve-qldb and pyqldb", "against embedded + the protocol's own cost",
                 "ingest cost per record in events of", "facing a backlog of",
                 "Where the time goes (cProfile"):  # fmt: skip
        assert text in stdout


def _ingest_modules(python: Path | str, events: Path) -> set[str]:
    script = (
        "import json, sys\n"
        "from bench.ingest import child_ingest, child_parse\n"
        f"child_parse({{'events': {str(events)!r}}})\n"
        f"child_ingest({{'events': {str(events)!r}}})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.parametrize("environment", ["venv", "venv-ingest"])
def test_the_ingest_benchmark_imports_only_the_ingest_path(
    environment: str, tmp_path: Path
) -> None:
    from qldb_settle.simulate import SimulationConfig, simulate

    python = sys.executable if environment == "venv" else INGEST_PYTHON
    if environment == "venv-ingest" and not INGEST_PYTHON.exists():
        pytest.skip(f"{INGEST_PYTHON} is not built (make test-ingest builds it)")
    simulate(tmp_path / "sim", SimulationConfig(transactions=8, seed=2))
    modules = _ingest_modules(python, tmp_path / "sim" / "events")
    assert "ingest.decode" in modules and "buffer.sqlite" in modules
    assert "ledger.classify" in modules
    leaked = sorted(
        m for m in modules for f in FORBIDDEN_IN_INGEST if m == f or m.startswith(f + ".")
    )
    assert leaked == []


@pytest.mark.parametrize("environment", ["venv", "venv-ingest"])
def test_the_export_benchmark_imports_only_the_ingest_path(
    environment: str, tmp_path: Path
) -> None:
    from qldb_settle.simulate import SimulationConfig, simulate

    python = sys.executable if environment == "venv" else INGEST_PYTHON
    if environment == "venv-ingest" and not INGEST_PYTHON.exists():
        pytest.skip(f"{INGEST_PYTHON} is not built (make test-ingest builds it)")
    info = simulate(
        tmp_path / "sim",
        SimulationConfig(transactions=8, seed=2, export_format="ION_BINARY", export_fraction=1.0),
    ).stats["export"]
    args = {"export": info["path"], "format": "ION_BINARY"}
    script = (
        "import json, sys\n"
        "from bench.export import child_decode, child_ingest\n"
        f"child_decode({args!r})\n"
        f"child_ingest({dict(args, blocks=info['blocks'], ledger_arn=info['ledger_arn'])!r})\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [str(python), "-c", script],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    modules = set(json.loads(done.stdout.splitlines()[-1]))
    assert "ingest.export.service" in modules and "buffer.sqlite" in modules
    leaked = sorted(
        m for m in modules for f in FORBIDDEN_IN_INGEST if m == f or m.startswith(f + ".")
    )
    assert leaked == []


def test_helpers() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError):
        median([])
    dist = percentiles([float(v) for v in range(1, 101)])
    assert (dist["p50"], dist["p90"], dist["p99"], dist["max"], dist["n"]) == (50, 90, 99, 100, 100)
    assert percentiles([])["p50"] is None
    rendered = table([["a", "1"], ["bbb", "22"]], ["x", "y"]).splitlines()
    assert rendered == ["x    y", "---  --", "a    1", "bbb  22"]
