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
                batch: list[Any] = []
                for pair in held_items(tip, wanted):
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
        out.append(
            {
                "path": str(path),
                "held": held,
                "wanted": wanted,
                "build_seconds": t.wall,
                "blocks_per_s": (release + held) / t.wall,
                "file_bytes": path.stat().st_size,
            }
        )
    return {
        "release": release,
        "window": window,
        "source_seconds": source_time.wall,
        "ledger": StreamRef.from_arn(tip.arn).ledger,
        "strand": tip.strand_id,
        "now": (tip.commit_time + timedelta(seconds=window)).isoformat(),
        "buffers": out,
    }


def child_measure(args: Json) -> Json:
    from buffer.sqlite import SqliteBuffer
    from destination.embedded import EmbeddedDestination
    from ledger.parser import parse
    from settler.block_checks import ionhash_available
    from settler.cycle import SettlePolicy, settle

    ionhash_available()  # warm-up: lazy imports every cycle of a running settler has done
    parse("INSERT INTO Vehicle {'VIN': 'x'}")
    buffer = SqliteBuffer(args["buffer"])
    destination = EmbeddedDestination(args["destination"])
    try:
        reset_peak_rss()
        rss_before = rss_kb()
        with timed() as t:
            report = settle(
                buffer,
                destination,
                now=datetime.fromisoformat(args["now"]),
                policy=SettlePolicy(window_seconds=float(args["window"])),
            )
        peak = peak_rss_kb()
    finally:
        destination.close()
        buffer.close()
    if report.blocks != int(args["release"]) or report.halted or report.held_by_window == 0:
        raise BenchError(
            f"the cycle replayed {report.blocks} blocks (expected {args['release']}), held "
            f"{report.held_by_window}, halted: {report.halt_reason}"
        )
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


def measure(built: Json, workdir: Path, *, reps: int) -> Json:
    """Alternate the sizes, ``reps`` cycles each; medians and the big/small ratios."""
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
                        "now": built["now"],
                        "window": built["window"],
                        "release": built["release"],
                    },
                )
            )
            _reset(built, spec["path"])
    _remove(destination)
    sizes: dict[str, Json] = {}
    for spec in built["buffers"]:
        rs = runs[spec["held"]]
        sizes[str(spec["held"])] = {
            "held": spec["held"],
            "seconds": median([r["seconds"] for r in rs]),
            "cpu_seconds": median([r["cpu_seconds"] for r in rs]),
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
        }
    small, big = (sizes[str(b["held"])] for b in (built["buffers"][0], built["buffers"][-1]))
    time_ratio = ratio(big["seconds"], small["seconds"])
    peak_ratio = ratio(big["peak_rss_kb"], small["peak_rss_kb"])
    growth_ratio = ratio(big["rss_growth_kb"], small["rss_growth_kb"])
    return {
        "release": built["release"],
        "repetitions": reps,
        "source_seconds": built["source_seconds"],
        "sizes": sizes,
        "small": small["held"],
        "big": big["held"],
        "big_wanted": big["wanted"],
        "big_complete": big["held"] == big["wanted"],
        "time_ratio": time_ratio,
        "peak_rss_ratio": peak_ratio,
        "rss_growth_ratio": growth_ratio,
        "target": (
            "a cycle releasing 1,000 blocks costs at most 1.5x more time with 1,000,000 blocks "
            "buffered than with 10,000, and at most 1.2x more peak memory"
        ),
        "time_target_met": time_ratio is not None and time_ratio <= 1.5,
        "memory_target_met": (
            peak_ratio is not None
            and peak_ratio <= 1.2
            and growth_ratio is not None
            and growth_ratio <= 1.2
        ),
    }


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
