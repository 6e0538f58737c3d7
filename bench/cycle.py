"""Settle cycle cost against buffer size: one ``settler.cycle.settle`` releasing 1,000 blocks while
10,000 or 1,000,000 younger blocks wait behind them (buffered, not yet settled).

Setup (``build``, one child): a source ledger of ``release`` blocks (``bench.backlog``, literal
and parameterized transactions alternating, so half are replayed as statements and half from
revisions) decoded by the ingest path into each ``SqliteBuffer``, followed by ``held`` synthetic
blocks put in batches of 5,000 (``workload.held_items``). The cycle runs as of the commit time of
the last real block plus the window: exactly the ``release`` blocks are settled. A million blocks
take minutes to put: the big buffer's build can be stopped early (a stop file, once it holds a
minimum), and the results then say how many blocks it held.

Measurement (``measure``): each repetition is a fresh child process that opens the buffer and a
new ``EmbeddedDestination``, warms up the lazy imports (ionhash, the PartiQL grammar), and times
one ``settle`` call (verification with content hashes, planning, grouped replay, marks, stats) and
its peak RSS. Between repetitions the parent puts the buffer back as it was (the released blocks
marked pending again, the replayed mark lowered through ``repair``), so every repetition sees
exactly ``release`` settled and ``held`` unsettled blocks. Sizes alternate.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import (
    BenchError,
    Json,
    median,
    peak_rss_kb,
    ratio,
    reset_peak_rss,
    rss_kb,
    run_child,
    timed,
)

MODULE = "bench.cycle"
BATCH_BLOCKS = 5_000
HELD_STEP_MS = 100
WINDOW_SECONDS = 120.0


def child_build(args: Json) -> Json:
    from bench.backlog import held_items, source_ledger, stream_items
    from buffer.sqlite import SqliteBuffer
    from journal.records import StreamRef

    release = int(args["release"])
    window = float(args.get("window", WINDOW_SECONDS))
    with tempfile.TemporaryDirectory(prefix="bench-cycle-source-") as tmp, timed() as source_time:
        source_ledger(Path(tmp) / "source.db", release - 2, "mixed")
        items, tip = stream_items(Path(tmp) / "source.db")
    out: list[Json] = []
    stop = Path(args["stop_file"]) if args.get("stop_file") else None
    source_statements = 0
    for spec in args["buffers"]:
        path = Path(spec["path"])
        wanted = int(spec["held"])
        least = int(spec.get("at_least", wanted))
        buffer = SqliteBuffer(path)
        held = 0
        try:
            with timed() as t:
                put = buffer.put(items)
                if put.stored["blocks"] != release:
                    raise BenchError(f"{put.stored['blocks']} of {release} source blocks stored")
                source_statements = put.stored["statements"]
                batch: list[Any] = []
                for pair in held_items(tip, wanted, step_ms=HELD_STEP_MS):
                    batch.extend(pair)
                    if len(batch) >= 2 * BATCH_BLOCKS:
                        buffer.put(batch)
                        held += len(batch) // 2
                        batch = []
                        if held >= least and stop is not None and stop.exists():
                            break
                if batch:
                    buffer.put(batch)
                    held += len(batch) // 2
            stats = buffer.stats(tip.commit_time)
        finally:
            buffer.close()
        pending = int(stats.blocks.get("pending", 0))
        if pending != release + held:
            raise BenchError(f"{path}: {pending} pending blocks, not {release + held}")
        last_commit = tip.commit_time + timedelta(milliseconds=HELD_STEP_MS * held)
        out.append(
            {
                "path": str(path),
                "held": held,
                # As of this instant every block is older than the window: the whole buffer is
                # a backlog the cycle must settle.
                "backlog_now": (last_commit + timedelta(seconds=window + 1)).isoformat(),
                "wanted": wanted,
                "build_seconds": t.wall,
                "blocks_per_s": (release + held) / t.wall,
                "file_bytes": path.stat().st_size,
            }
        )
    return {
        "release": release,
        "source_statements": source_statements,
        "window": window,
        "source_seconds": source_time.wall,
        "ledger": StreamRef.from_arn(tip.arn).ledger,
        "strand": tip.strand_id,
        "now": (tip.commit_time + timedelta(seconds=window)).isoformat(),
        "buffers": out,
    }


def child_measure(args: Json) -> Json:
    from bench.replay import RoundTripDestination
    from buffer.sqlite import SqliteBuffer
    from destination.embedded import EmbeddedDestination
    from ledger.parser import parse
    from settler.block_checks import ionhash_available
    from settler.cycle import DEFAULT_GROUP_SIZE, SettlePolicy, settle

    ionhash_available()  # warm-up: lazy imports every cycle of a running settler has done
    parse("INSERT INTO Vehicle {'VIN': 'x'}")
    release = int(args["release"])
    backlog = bool(args.get("backlog"))
    buffer = SqliteBuffer(args["buffer"])
    destination = RoundTripDestination(EmbeddedDestination(args["destination"]))

    def deadline() -> bool:
        # The backlog cycle stops once it replayed ``release`` blocks, as an invocation's
        # deadline stops a settler Lambda facing a long backlog.
        return backlog and destination.blocks >= release

    try:
        reset_peak_rss()
        rss_before = rss_kb()
        with timed() as t:
            report = settle(
                buffer,
                destination,
                now=datetime.fromisoformat(args["now"]),
                policy=SettlePolicy(
                    window_seconds=float(args["window"]),
                    # Groups that end at ``release`` blocks (the default, 100, for 1,000).
                    group_size=min(DEFAULT_GROUP_SIZE, release),
                ),
                deadline=deadline,
            )
        peak = peak_rss_kb()
    finally:
        destination.close()
        buffer.close()
    check_cycle(report, release=release, backlog=backlog)
    return {
        "seconds": t.wall,
        "cpu_seconds": t.cpu,
        "rss_before_kb": rss_before,
        "peak_rss_kb": peak,
        "blocks": report.blocks,
        "statements": report.statements,
        "revisions": report.revisions,
        "held_by_window": report.held_by_window,
        "buffer_depth": report.buffer_depth,
    }


def check_cycle(report: Any, *, release: int, backlog: bool) -> None:
    """Raise ``BenchError`` unless the cycle did exactly what its figure is about: released the
    ``release`` real blocks and held the rest by the window; or, facing the whole buffer as a
    backlog (``backlog``), replayed ``release`` blocks and stopped at its deadline."""
    if backlog:
        ok = report.blocks == release and report.deadline_reached and not report.halted
    else:
        ok = report.blocks == release and not report.halted and report.held_by_window > 0
    if not ok:
        raise BenchError(
            f"the cycle replayed {report.blocks} blocks (expected {release}), held "
            f"{report.held_by_window}, deadline reached: {report.deadline_reached}, halted: "
            f"{report.halt_reason} ({'backlog' if backlog else 'window'} cycle)"
        )


def _work(args: Json) -> Json:
    if args["mode"] == "build":
        return child_build(args)
    if args["mode"] == "measure":
        return child_measure(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


def build(
    workdir: Path,
    small: int,
    big: int,
    *,
    release: int = 1_000,
    stop_file: Path | None = None,
    big_at_least: int | None = None,
) -> Json:
    """Build the two buffers (blocks held behind the ``release`` settled ones). Once
    ``stop_file`` exists and the big one holds ``big_at_least`` blocks, its build stops where it
    is (the result says how many it holds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return run_child(
        MODULE,
        {
            "mode": "build",
            "release": release,
            "stop_file": None if stop_file is None else str(stop_file),
            "buffers": [
                {"path": str(workdir / "buffer-small.db"), "held": small},
                {
                    "path": str(workdir / "buffer-big.db"),
                    "held": big,
                    "at_least": big if big_at_least is None else min(big, big_at_least),
                },
            ],
        },
        timeout=3600,
    )


def _reset(built: Json, path: str) -> None:
    """The released blocks pending again, the replayed mark back to nothing: as built."""
    from buffer.port import Mark
    from buffer.sqlite import SqliteBuffer

    at = datetime.fromisoformat(built["now"])
    buffer = SqliteBuffer(path)
    try:
        replayed = buffer.blocks("replayed")
        if len(replayed) != built["release"]:
            raise BenchError(f"{path}: {len(replayed)} blocks replayed, not {built['release']}")
        buffer.mark(
            [
                Mark(block_id=r.block_id, state="pending", at=at, reason="bench reset")
                for r in replayed
            ]
        )
        buffer.repair(built["ledger"], built["strand"], -1, at)
    finally:
        buffer.close()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            os.remove(p)


def _runs(built: Json, workdir: Path, *, reps: int, backlog: bool) -> dict[int, list[Json]]:
    """``reps`` cycles per buffer, the sizes alternating, each buffer put back after each."""
    runs: dict[int, list[Json]] = {b["held"]: [] for b in built["buffers"]}
    destination = workdir / "cycle-replica.db"
    for _ in range(reps):
        for spec in built["buffers"]:
            _remove(destination)
            runs[spec["held"]].append(
                run_child(
                    MODULE,
                    {
                        "mode": "measure",
                        "buffer": spec["path"],
                        "destination": str(destination),
                        "now": spec["backlog_now"] if backlog else built["now"],
                        "window": built["window"],
                        "release": built["release"],
                        "backlog": backlog,
                    },
                )
            )
            _reset(built, spec["path"])
    _remove(destination)
    return runs


def _sizes(built: Json, runs: dict[int, list[Json]]) -> dict[str, Json]:
    sizes: dict[str, Json] = {}
    for spec in built["buffers"]:
        rs = runs[spec["held"]]
        seconds = median([r["seconds"] for r in rs])
        sizes[str(spec["held"])] = {
            "held": spec["held"],
            "seconds": seconds,
            "cpu_seconds": median([r["cpu_seconds"] for r in rs]),
            "blocks_per_s": rs[0]["blocks"] / seconds,
            "source_statements_per_s": built.get("source_statements", 0) / seconds,
            "peak_rss_kb": median([float(r["peak_rss_kb"]) for r in rs]),
            "rss_growth_kb": median([float(r["peak_rss_kb"] - r["rss_before_kb"]) for r in rs]),
            "runs_seconds": [r["seconds"] for r in rs],
            "wanted": spec["wanted"],
            "build_seconds": spec["build_seconds"],
            "build_blocks_per_s": spec["blocks_per_s"],
            "file_bytes": spec["file_bytes"],
            "blocks": rs[0]["blocks"],
            "statements": rs[0]["statements"],
            "revisions": rs[0]["revisions"],
            "buffer_depth": rs[0]["buffer_depth"],
        }
    return sizes


def _ratios(built: Json, sizes: dict[str, Json]) -> Json:
    small, big = (sizes[str(b["held"])] for b in (built["buffers"][0], built["buffers"][-1]))
    return {
        "release": built["release"],
        "source_statements": built.get("source_statements"),
        "source_seconds": built["source_seconds"],
        "sizes": sizes,
        "small": small["held"],
        "big": big["held"],
        "big_wanted": big["wanted"],
        "big_complete": big["held"] == big["wanted"],
        "time_ratio": ratio(big["seconds"], small["seconds"]),
        "peak_rss_ratio": ratio(big["peak_rss_kb"], small["peak_rss_kb"]),
        "rss_growth_ratio": ratio(big["rss_growth_kb"], small["rss_growth_kb"]),
    }


def _memory_met(r: Json) -> bool:
    peak, growth = r["peak_rss_ratio"], r["rss_growth_ratio"]
    return peak is not None and peak <= 1.2 and growth is not None and growth <= 1.2


def measure(built: Json, workdir: Path, *, reps: int) -> Json:
    """Alternate the sizes, ``reps`` cycles each, the held blocks younger than the window;
    medians and the big/small ratios."""
    out = _ratios(built, _sizes(built, _runs(built, workdir, reps=reps, backlog=False)))
    out["repetitions"] = reps
    out["target"] = (
        "a cycle releasing 1,000 blocks costs at most 1.5x more time with 1,000,000 blocks "
        "buffered than with 10,000, and at most 1.2x more peak memory"
    )
    out["time_target_met"] = out["time_ratio"] is not None and out["time_ratio"] <= 1.5
    out["memory_target_met"] = _memory_met(out)
    return out


def measure_backlog(built: Json, workdir: Path, *, reps: int) -> Json:
    """The same buffers as a backlog: every block older than the window, so the cycle faces
    ``release`` + ``held`` blocks to settle; it replays ``release`` blocks (the real ones) and
    stops at its deadline (``check_cycle``). Peak RSS at the big backlog against the small
    one."""
    out = _ratios(built, _sizes(built, _runs(built, workdir, reps=reps, backlog=True)))
    out["repetitions"] = reps
    out["measured"] = (
        "one settle cycle facing a backlog of every buffered block (all older than the window), "
        f"stopped by its deadline once it replayed {built['release']:,} blocks (the real ones); "
        "peak RSS of the child process"
    )
    out["target"] = (
        "settle-cycle peak memory at a backlog of 1,000,000 blocks at most 1.2x that at 10,000"
    )
    out["memory_target_met"] = _memory_met(out)
    return out


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
