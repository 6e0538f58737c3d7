"""``python -m bench`` (``make bench``): every benchmark, ``bench/results.json``, a table.

Order: the buffers of the settle-cycle benchmark (a million blocks take minutes to put) are built
by a child process in the background while the benchmarks whose figures are in simulated time
run (lag, strategies: machine load does not change them) and the other inputs are prepared; the
big buffer stops growing when its time budget is spent (``Sizes.cycle_build_budget_seconds``),
so that ``make bench`` stays within 15 minutes on a busy machine; then the timed benchmarks run
one after the other (ingest in both environments, settle cycle, replay, PostgreSQL, journal
export ingest in its three formats, the OpenSearch buffer's requests and round trips), nothing
else of the benchmark running beside them.

``python -m bench PART ...`` runs only the named parts (``PARTS``: lag, strategies, ingest,
linearity, cycle, backlog, replay, qldb, postgres, export, opensearch, profile) and the inputs they
need; it then writes no results file and leaves the README alone unless ``--out`` / ``--readme``
say so (a partial run must not pass for a full one). ``--tiny`` runs everything at a tiny size
(the smoke test uses it); ``--out`` and ``--readme`` say where the results and the README's
figures go (``--readme -``: nowhere).
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

from bench import (
    cycle,
    export,
    ingest,
    lag,
    linearity,
    opensearch,
    postgres,
    profiles,
    qldb,
    replay,
    strategies,
)
from bench.common import INGEST_PYTHON, MAIN_PYTHON, REPO_ROOT, BenchError, Json, rounded
from bench.figures import README_BEGIN, README_END, markdown, text

log = logging.getLogger("bench")

DEFAULT_OUT = REPO_ROOT / "bench" / "results.json"
# Every part, in the order a full run measures them (the untimed ones, in simulated time, first).
PARTS = (
    "lag",
    "strategies",
    "ingest",
    "linearity",
    "cycle",
    "backlog",
    "replay",
    "qldb",
    "postgres",
    "export",
    "opensearch",
    "profile",
)
# What each prepared input is for.
NEEDS_CYCLE_BUFFERS = {"cycle", "backlog"}
NEEDS_INGEST_INPUT = {"ingest", "profile"}
NEEDS_TEMPLATES = {"replay", "qldb", "postgres", "profile"}
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
    backlog_reps: int = 3
    replay_transactions: int = 998  # + 2 CREATE TABLE blocks = 1,000 blocks
    replay_reps: int = 3
    round_trip_blocks: int = 200
    round_trip_reps: int = 5
    # The cycle through serve-qldb runs at tens of blocks/s: the first 300 blocks of each replay
    # template (about 25 s per repetition of both modes and their baselines).
    qldb_blocks: int = 300
    qldb_reps: int = 2
    # Ingest cost per record in events of 10 and of 10,000 records (about 9 s per repetition).
    linearity_records: int = 10_000
    linearity_small: int = 10
    linearity_reps: int = 3
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
    backlog_reps=1,
    replay_transactions=10,
    replay_reps=1,
    round_trip_blocks=6,
    round_trip_reps=1,
    qldb_blocks=8,
    qldb_reps=1,
    linearity_records=60,
    linearity_small=10,
    linearity_reps=1,
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


def selected(parts: list[str] | None) -> list[str]:
    """The parts to run, in the order of ``PARTS`` (all of them when none are named)."""
    if not parts:
        return list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise BenchError(f"unknown benchmark parts {unknown}: choose from {', '.join(PARTS)}")
    return [p for p in PARTS if p in parts]


def run(sizes: Sizes, workdir: Path, parts: list[str] | None = None) -> Json:
    """The benchmarks of ``parts`` (default every one); the results (not yet rounded)."""
    from qldb_settle.simulate import SimulationConfig, simulate

    chosen = set(selected(parts))
    clock = _Clock()
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    built: dict[str, Any] = {}
    out: Json = {}

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

    t = time.monotonic()
    background = None
    if chosen & NEEDS_CYCLE_BUFFERS:
        clock.say(
            f"building the settle-cycle buffers in the background ({sizes.cycle_small:,} and "
            f"{sizes.cycle_big:,} blocks behind {sizes.cycle_release:,})"
        )
        background = threading.Thread(target=build_cycle_buffers, name="cycle-build", daemon=True)
        background.start()

    sim = None
    events = workdir / "ingest-input" / "events"
    if chosen & NEEDS_INGEST_INPUT:
        clock.say(f"simulating the ingest input ({sizes.ingest_transactions} transactions)")
        sim = simulate(
            workdir / "ingest-input",
            SimulationConfig(transactions=sizes.ingest_transactions, seed=5),
        )
    linearity_input = None
    if "linearity" in chosen:
        clock.say(
            f"simulating the linearity input ({sizes.linearity_records:,} records, in events of "
            f"{sizes.linearity_small:,} and of {sizes.linearity_records:,})"
        )
        linearity_input = linearity.build(
            workdir / "linearity",
            records=sizes.linearity_records,
            small=sizes.linearity_small,
            big=sizes.linearity_records,
        )
    os_sim = None
    if "opensearch" in chosen:
        clock.say(f"simulating the OpenSearch input ({sizes.opensearch_transactions} transactions)")
        os_sim = simulate(
            workdir / "opensearch-input",
            SimulationConfig(transactions=sizes.opensearch_transactions, seed=7),
        )
    export_sims: dict[str, Json] = {}
    for fmt in export.FORMATS if "export" in chosen else ():
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
    templates: dict[str, Json] = {}
    if chosen & NEEDS_TEMPLATES:
        clock.say(
            f"building the replay templates ({sizes.replay_transactions + 2} blocks per mode)"
        )
        templates = replay.build(
            workdir / "replay",
            transactions=sizes.replay_transactions,
            round_trip_blocks=sizes.round_trip_blocks,
        )
    if "lag" in chosen:
        clock.say(
            f"lag: three demo runs of {sizes.lag_transactions} transactions "
            f"at {sizes.lag_rate_per_second}/s"
        )
        s = time.monotonic()
        out["lag"] = lag.measure(
            workdir / "lag",
            transactions=sizes.lag_transactions,
            rate_per_second=sizes.lag_rate_per_second,
        )
        clock.section("lag", s)
    if "strategies" in chosen:
        clock.say(
            f"strategies: seeds {sizes.strategy_seeds}, {sizes.strategy_transactions} "
            "transactions, two workload families"
        )
        s = time.monotonic()
        out["strategies"] = strategies.measure(
            workdir / "strategies",
            seeds=sizes.strategy_seeds,
            transactions=sizes.strategy_transactions,
        )
        clock.section("strategies", s)
    if background is not None:
        # The timed benchmarks must run alone: the big buffer stops growing at the end of its
        # time budget (once it holds ``cycle_big_at_least`` blocks); the results say how many.
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

    if "ingest" in chosen:
        assert sim is not None
        ingest_results: dict[str, Json] = {}
        s = time.monotonic()
        for name, python in _environments():
            clock.say(
                f"ingest in {name}: {sim.stats['delivered_records']} records, "
                f"{sizes.ingest_reps} reps"
            )
            ingest_results[name] = ingest.measure(events, python=python, reps=sizes.ingest_reps)
        if "venv-ingest" not in ingest_results:
            ingest_results["venv-ingest"] = {"skipped": f"{INGEST_PYTHON} does not exist"}
        out["ingest"] = {"simulation": sim.stats, "environments": ingest_results}
        clock.section("ingest", s)
    if linearity_input is not None:
        name, python = _environments()[-1]
        clock.say(
            f"ingest linearity in {name}: {sizes.linearity_records:,} records in events of "
            f"{sizes.linearity_small:,} and of {sizes.linearity_records:,}, "
            f"{sizes.linearity_reps} reps"
        )
        s = time.monotonic()
        out["ingest_linearity"] = linearity.measure(
            linearity_input, python=python, reps=sizes.linearity_reps
        )
        out["ingest_linearity"]["environment"] = name
        clock.section("linearity", s)

    def part(name: str, key: str, message: str, measure: Any) -> None:
        if name in chosen:
            clock.say(message)
            started = time.monotonic()
            out[key] = measure()
            clock.section(name, started)

    part(
        "cycle",
        "settle_cycle",
        f"settle cycle: {sizes.cycle_reps} reps per size",
        lambda: cycle.measure(built["cycle"], workdir / "cycle", reps=sizes.cycle_reps),
    )
    part(
        "backlog",
        "settle_backlog",
        f"settle cycle facing the whole buffer as a backlog: {sizes.backlog_reps} reps",
        lambda: cycle.measure_backlog(built["cycle"], workdir / "cycle", reps=sizes.backlog_reps),
    )
    part(
        "replay",
        "replay",
        f"replay: {sizes.replay_reps} reps per mode, then the 15 ms round trip",
        lambda: replay.measure(
            templates, reps=sizes.replay_reps, round_trip_reps=sizes.round_trip_reps
        ),
    )
    part(
        "qldb",
        "qldb",
        f"settle cycle through serve-qldb: the first {sizes.qldb_blocks} blocks per mode, "
        f"{sizes.qldb_reps} reps, beside the embedded cycle and no-op round trips",
        lambda: qldb.measure(
            templates, reps=sizes.qldb_reps, workdir=workdir / "qldb", blocks=sizes.qldb_blocks
        ),
    )
    part(
        "postgres",
        "postgres",
        f"replay into PostgreSQL: {sizes.replay_reps} reps per mode, grouped and not",
        lambda: postgres.measure(templates, reps=sizes.replay_reps),
    )
    if "export" in chosen:
        clock.say(
            f"export ingest: {export_sims[export.FORMATS[0]]['export']['blocks']} blocks per "
            f"format, {sizes.export_reps} reps per format in {export.environment()[0]}"
        )
        s = time.monotonic()
        out["export"] = export.measure(export_sims, reps=sizes.export_reps)
        clock.section("export", s)
    if "opensearch" in chosen:
        assert os_sim is not None
        clock.say(
            f"OpenSearch buffer: {os_sim.stats['delivered_records']} records, requests counted, "
            f"{sizes.opensearch_reps} reps at 0 and {opensearch.ROUND_TRIP_MS:g} ms per request "
            "beside SQLite"
        )
        s = time.monotonic()
        out["opensearch"] = opensearch.measure(
            workdir / "opensearch-input" / "events",
            reps=sizes.opensearch_reps,
            workdir=workdir / "opensearch",
        )
        out["opensearch"]["simulation"] = os_sim.stats
        clock.section("opensearch", s)
    part(
        "profile",
        "profile",
        "profiles: ingest, and one settle cycle per replay template, under cProfile",
        lambda: profiles.measure(events, templates, ingest_python=_environments()[-1][1]),
    )
    finished_at = datetime.now(UTC)
    clock.say("done")
    return {
        "meta": {
            "started_at": started_at.isoformat(timespec="seconds"),
            "finished_at": finished_at.isoformat(timespec="seconds"),
            "duration_seconds": (finished_at - started_at).total_seconds(),
            "sections_seconds": clock.sections,
            "parts": [p for p in PARTS if p in chosen],
            "git_commit": _git_commit(),
            "uncommitted_changes": _work_tree_changes(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
            "sizes": asdict(sizes),
        },
        **out,
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
    parser.add_argument(
        "parts",
        nargs="*",
        metavar="PART",
        help=f"run only these parts ({', '.join(PARTS)}); default all of them",
    )
    parser.add_argument("--tiny", action="store_true", help="everything at a tiny size")
    parser.add_argument(
        "--out",
        type=Path,
        help=f"results JSON file (default {DEFAULT_OUT.relative_to(REPO_ROOT)} for a full run, "
        "none when parts are named)",
    )
    parser.add_argument(
        "--readme",
        help="README whose figures to update; - for none (default bench/README.md for a full "
        "run, none when parts are named)",
    )
    parser.add_argument("--workdir", type=Path, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        parts = selected(args.parts)
    except BenchError as exc:
        parser.error(str(exc))
    full = parts == list(PARTS)
    out = args.out if args.out is not None else (DEFAULT_OUT if full else None)
    readme = args.readme if args.readme is not None else (str(DEFAULT_README) if full else "-")
    sizes = TINY if args.tiny else Sizes()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="qldb-settle-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        results = rounded(run(sizes, workdir, parts))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    if readme != "-":
        _update_readme(Path(readme), results)
    print(text(results))
    if out is not None:
        print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
