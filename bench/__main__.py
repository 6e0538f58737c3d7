"""``python -m bench`` (``make bench``): every benchmark, ``bench/results.json``, a table.

Order: the buffers of the settle-cycle benchmark (a million blocks take minutes to put) are built
by a child process in the background while the benchmarks whose figures are in simulated time
run (lag, strategies: machine load does not change them) and the other inputs are prepared; the
big buffer stops growing when its time budget is spent (``Sizes.cycle_build_budget_seconds``),
so that ``make bench`` stays within 15 minutes on a busy machine; then the timed benchmarks run
one after the other (ingest in both environments, settle cycle, replay, PostgreSQL, journal
export ingest in its three formats, the OpenSearch buffer's requests and round trips), nothing
else of the benchmark running beside them.

``--tiny`` runs everything at a tiny size (the smoke test uses it); ``--out`` and ``--readme``
say where the results and the README's figures go (``--readme -``: nowhere).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import cycle, export, ingest, lag, opensearch, postgres, replay, strategies
from bench.common import INGEST_PYTHON, MAIN_PYTHON, REPO_ROOT, BenchError, Json, rounded
from bench.figures import README_BEGIN, README_END, markdown, text

log = logging.getLogger("bench")

DEFAULT_OUT = REPO_ROOT / "bench" / "results.json"
DEFAULT_README = REPO_ROOT / "bench" / "README.md"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    ingest_transactions: int = 500
    ingest_reps: int = 5
    cycle_small: int = 10_000
    cycle_big: int = 1_000_000
    cycle_big_at_least: int = 100_000
    # How long the big buffer may grow before the timed benchmarks need the machine to themselves
    # (it grows while the untimed ones run; about 3,000 blocks/s on 2 idle cores).
    cycle_build_budget_seconds: float = 540.0
    cycle_release: int = 1_000
    cycle_reps: int = 5
    replay_transactions: int = 998  # + 2 CREATE TABLE blocks = 1,000 blocks
    replay_reps: int = 3
    round_trip_blocks: int = 200
    round_trip_reps: int = 5
    # About 1,700 streamed blocks in 850 Lambda events (a repetition of the three stores takes
    # about a minute and a half: osmem-server's own indexing is most of it).
    opensearch_transactions: int = 2_000
    opensearch_reps: int = 2
    # About 1,500 exported blocks in 31 objects per format (an ingest child takes about 2 s in
    # .venv-ingest; the three simulations, untimed, about 4 s each).
    export_transactions: int = 1_500
    export_reps: int = 3
    lag_transactions: int = 900
    lag_rate_per_second: float = 0.75
    strategy_seeds: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5])
    strategy_transactions: int = 300


TINY = Sizes(
    ingest_transactions=20,
    ingest_reps=1,
    cycle_small=20,
    cycle_big=200,
    cycle_big_at_least=200,
    cycle_build_budget_seconds=0.0,
    cycle_release=12,
    cycle_reps=1,
    replay_transactions=10,
    replay_reps=1,
    round_trip_blocks=6,
    round_trip_reps=1,
    opensearch_transactions=30,
    opensearch_reps=1,
    export_transactions=20,
    export_reps=1,
    lag_transactions=30,
    lag_rate_per_second=2.0,
    strategy_seeds=[1],
    strategy_transactions=30,
)


class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.sections: dict[str, float] = {}

    def say(self, message: str) -> None:
        elapsed = time.monotonic() - self.start
        print(f"[bench {elapsed // 60:02.0f}:{elapsed % 60:02.0f}] {message}", file=sys.stderr)

    def section(self, name: str, started: float) -> None:
        self.sections[name] = time.monotonic() - started


def _git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def _work_tree_changes() -> list[str]:
    """Tracked files changed but not committed (the figures are of the work tree)."""
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return []
    return [line[3:] for line in done.stdout.splitlines() if line.strip()]


def _environments() -> list[tuple[str, Path]]:
    envs = [("venv", MAIN_PYTHON if MAIN_PYTHON.exists() else Path(sys.executable))]
    if INGEST_PYTHON.exists():
        envs.append(("venv-ingest", INGEST_PYTHON))
    return envs


def run(sizes: Sizes, workdir: Path) -> Json:
    """Every benchmark; the results (not yet rounded)."""
    from qldb_settle.simulate import SimulationConfig, simulate

    clock = _Clock()
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    built: dict[str, Any] = {}

    stop_file = workdir / "cycle-build.stop"

    def build_cycle_buffers() -> None:
        try:
            built["cycle"] = cycle.build(
                workdir / "cycle",
                sizes.cycle_small,
                sizes.cycle_big,
                release=sizes.cycle_release,
                stop_file=stop_file,
                big_at_least=sizes.cycle_big_at_least,
            )
        except BaseException as exc:  # reported by the main thread
            built["error"] = exc

    clock.say(
        f"building the settle-cycle buffers in the background ({sizes.cycle_small:,} and "
        f"{sizes.cycle_big:,} blocks behind {sizes.cycle_release:,})"
    )
    t = time.monotonic()
    background = threading.Thread(target=build_cycle_buffers, name="cycle-build", daemon=True)
    background.start()

    clock.say(f"simulating the ingest input ({sizes.ingest_transactions} transactions)")
    sim = simulate(
        workdir / "ingest-input",
        SimulationConfig(transactions=sizes.ingest_transactions, seed=5),
    )
    events = workdir / "ingest-input" / "events"
    clock.say(f"simulating the OpenSearch input ({sizes.opensearch_transactions} transactions)")
    os_sim = simulate(
        workdir / "opensearch-input",
        SimulationConfig(transactions=sizes.opensearch_transactions, seed=7),
    )
    export_sims: dict[str, Json] = {}
    for fmt in export.FORMATS:
        clock.say(f"simulating the {fmt} export input ({sizes.export_transactions} transactions)")
        export_sims[fmt] = simulate(
            workdir / f"export-input-{fmt.lower()}",
            SimulationConfig(
                transactions=sizes.export_transactions,
                seed=9,
                export_format=fmt,
                export_fraction=1.0,
            ),
        ).stats
    clock.say(f"building the replay templates ({sizes.replay_transactions + 2} blocks per mode)")
    templates = replay.build(
        workdir / "replay",
        transactions=sizes.replay_transactions,
        round_trip_blocks=sizes.round_trip_blocks,
    )
    clock.say(
        f"lag: three demo runs of {sizes.lag_transactions} transactions "
        f"at {sizes.lag_rate_per_second}/s"
    )
    s = time.monotonic()
    lag_results = lag.measure(
        workdir / "lag",
        transactions=sizes.lag_transactions,
        rate_per_second=sizes.lag_rate_per_second,
    )
    clock.section("lag", s)
    clock.say(
        f"strategies: seeds {sizes.strategy_seeds}, {sizes.strategy_transactions} transactions, "
        "two workload families"
    )
    s = time.monotonic()
    strategy_results = strategies.measure(
        workdir / "strategies",
        seeds=sizes.strategy_seeds,
        transactions=sizes.strategy_transactions,
    )
    clock.section("strategies", s)
    # The timed benchmarks must run alone: the big buffer stops growing at the end of its time
    # budget (once it holds ``cycle_big_at_least`` blocks); the results say how many it holds.
    left = sizes.cycle_build_budget_seconds - (time.monotonic() - t)
    clock.say(f"waiting for the settle-cycle buffers (at most {max(0.0, left):.0f} s more)")
    background.join(timeout=max(0.0, left))
    stop_file.touch()
    background.join()
    if "error" in built:
        raise BenchError(f"building the settle-cycle buffers failed: {built['error']}")
    big = built["cycle"]["buffers"][-1]
    clock.say(
        f"the big buffer holds {big['held']:,} blocks behind the released ones "
        f"({big['blocks_per_s']:,.0f} blocks/s put)"
    )
    clock.section("preparation (parallel)", t)

    ingest_results: dict[str, Json] = {}
    s = time.monotonic()
    for name, python in _environments():
        clock.say(
            f"ingest in {name}: {sim.stats['delivered_records']} records, {sizes.ingest_reps} reps"
        )
        ingest_results[name] = ingest.measure(events, python=python, reps=sizes.ingest_reps)
    if "venv-ingest" not in ingest_results:
        ingest_results["venv-ingest"] = {"skipped": f"{INGEST_PYTHON} does not exist"}
    clock.section("ingest", s)
    clock.say(f"settle cycle: {sizes.cycle_reps} reps per size")
    s = time.monotonic()
    cycle_results = cycle.measure(built["cycle"], workdir / "cycle", reps=sizes.cycle_reps)
    clock.section("cycle", s)
    clock.say(f"replay: {sizes.replay_reps} reps per mode, then the 15 ms round trip")
    s = time.monotonic()
    replay_results = replay.measure(
        templates, reps=sizes.replay_reps, round_trip_reps=sizes.round_trip_reps
    )
    clock.section("replay", s)
    clock.say(f"replay into PostgreSQL: {sizes.replay_reps} reps per mode, grouped and not")
    s = time.monotonic()
    postgres_results = postgres.measure(templates, reps=sizes.replay_reps)
    clock.section("postgres", s)
    clock.say(
        f"export ingest: {export_sims[export.FORMATS[0]]['export']['blocks']} blocks per format, "
        f"{sizes.export_reps} reps per format in {export.environment()[0]}"
    )
    s = time.monotonic()
    export_results = export.measure(export_sims, reps=sizes.export_reps)
    clock.section("export", s)
    clock.say(
        f"OpenSearch buffer: {os_sim.stats['delivered_records']} records, requests counted, "
        f"{sizes.opensearch_reps} reps at 0 and {opensearch.ROUND_TRIP_MS:g} ms per request "
        "beside SQLite"
    )
    s = time.monotonic()
    opensearch_results = opensearch.measure(
        workdir / "opensearch-input" / "events",
        reps=sizes.opensearch_reps,
        workdir=workdir / "opensearch",
    )
    opensearch_results["simulation"] = os_sim.stats
    clock.section("opensearch", s)
    finished_at = datetime.now(UTC)
    clock.say("done")
    return {
        "meta": {
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": finished_at.isoformat(timespec="seconds"),
            "duration_seconds": (finished_at - started_at).total_seconds(),
            "sections_seconds": clock.sections,
            "git_commit": _git_commit(),
            "uncommitted_changes": _work_tree_changes(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "sizes": asdict(sizes),
        },
        "ingest": {"simulation": sim.stats, "environments": ingest_results},
        "settle_cycle": cycle_results,
        "replay": replay_results,
        "postgres": postgres_results,
        "export": export_results,
        "opensearch": opensearch_results,
        "lag": lag_results,
        "strategies": strategy_results,
    }


def _update_readme(path: Path, results: Json) -> None:
    if not path.exists():
        return
    content = path.read_text(encoding="utf-8")
    if README_BEGIN not in content or README_END not in content:
        return
    head, rest = content.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(
        head + README_BEGIN + "\n" + markdown(results) + "\n" + README_END + tail, encoding="utf-8"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="everything at a tiny size")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument(
        "--readme", default=str(DEFAULT_README), help="README whose figures to update; - for none"
    )
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sizes = TINY if args.tiny else Sizes()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qldb-settle-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = rounded(run(sizes, workdir))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if args.readme != "-":
        _update_readme(Path(args.readme), results)
    print(text(results))
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
