"""Replay lag (replay − commit) over long simulated runs, through the demo loop.

``run_service`` is ``qldb_settle.demo_run.run_demo`` on a ``SqliteBuffer`` and an
``EmbeddedDestination`` in a work folder: the simulated source ledger and its hostile stream,
every event ingested in arrival order, a settle cycle every ``schedule`` seconds of simulated
time, then the replica verified against the source ledger and the stream's revisions. Lag is in
simulated time, so it does not depend on how fast or busy the machine is.

Runs (``measure``): the default window without early release on the default stream (read-only
transactions leave gaps in the sequence numbers, passed only by the window rule), with early
release on the same stream, and with early release on a stream without read-only gaps (their
blocks streamed). The simulated rate is low so that one run spans many schedule periods.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from bench.common import Json, percentiles

WINDOW_SECONDS = 120.0
SCHEDULE_SECONDS = 60.0


def run_service(
    workdir: Path,
    simulation: Any,
    *,
    window: float = WINDOW_SECONDS,
    early_release: bool = False,
    schedule: float = SCHEDULE_SECONDS,
) -> Any:
    """``run_demo`` in ``workdir`` (emptied first); returns its ``DemoReport``."""
    from buffer.sqlite import SqliteBuffer
    from destination.embedded import EmbeddedDestination
    from qldb_settle.demo_run import DemoOptions, prepare_workdir, run_demo

    prepare_workdir(workdir)
    buffer = SqliteBuffer(workdir / "buffer.db")
    destination = EmbeddedDestination(workdir / "replica.db")
    try:
        return run_demo(
            DemoOptions(
                simulation=simulation,
                window_seconds=window,
                early_release=early_release,
                schedule_seconds=schedule,
            ),
            workdir=workdir,
            buffer=buffer,
            destination=destination,
            replica_documents=lambda: [(t, d) for t, _id, d in destination.documents()],
        )
    finally:
        destination.close()
        buffer.close()


def summary(report: Any, *, window: float, schedule: float, early: bool) -> Json:
    """The figures of one demo run: lag distribution in ms, counts, whether it verified."""
    lag = percentiles(report.settled.lag_ms)
    return {
        "window_seconds": window,
        "schedule_seconds": schedule,
        "early_release": early,
        "verified": report.verified,
        "transactions": report.simulation.stats["transactions"],
        "blocks_replayed": report.settled.blocks,
        "cycles": report.cycles,
        "early_released": report.settled.early_released,
        "gaps_passed": report.settled.gaps_passed,
        "simulated_minutes": _span_minutes(report),
        "lag_ms": lag,
    }


def _span_minutes(report: Any) -> float:
    events = report.simulation.events
    if not events:
        return 0.0
    return float((events[-1].delivered_ms - events[0].delivered_ms) / 60_000)


def measure(workdir: Path, *, transactions: int, rate_per_second: float, seed: int = 21) -> Json:
    """The three runs of the module docstring, and the targets."""
    from qldb_settle.simulate import SimulationConfig

    base = SimulationConfig(transactions=transactions, rate_per_second=rate_per_second, seed=seed)
    runs = {
        "window": (base, False),
        "window_early_release": (base, True),
        "no_gaps_early_release": (replace(base, stream_read_only=True), True),
    }
    out: dict[str, Json] = {}
    for name, (config, early) in runs.items():
        report = run_service(workdir / name, config, early_release=early)
        out[name] = summary(report, window=WINDOW_SECONDS, schedule=SCHEDULE_SECONDS, early=early)
        out[name]["simulation"] = asdict(config)
    p99 = out["window"]["lag_ms"]["p99"]
    p50 = out["no_gaps_early_release"]["lag_ms"]["p50"]
    bound_p99 = (WINDOW_SECONDS + SCHEDULE_SECONDS) * 1000
    bound_p50 = SCHEDULE_SECONDS * 1000
    return {
        "runs": out,
        "targets": {
            "p99_at_most_window_plus_schedule": {
                "bound_ms": bound_p99,
                "value_ms": p99,
                "met": p99 is not None and p99 <= bound_p99,
            },
            "early_release_no_gaps_p50_at_most_schedule": {
                "bound_ms": bound_p50,
                "value_ms": p50,
                "met": p50 is not None and p50 <= bound_p50,
            },
        },
    }
