"""Replay throughput into PostgreSQL (``PostgresDestination``), grouped and one block per
transaction, next to the embedded ledger's on the same template buffers in the same run.

Each repetition is a fresh child on a copy of a replay template (``bench.replay.build``): one
``settler.cycle.settle`` over every block into a new schema of one throwaway local server
(``destination.postgres_local``, started by the parent: loopback TCP, ``fsync=off``, so the figure
is the adapter's and the server's CPU, not a disk's). Reported: blocks and documents per second
of time spent in ``apply`` and of the whole cycle, for the settler's default group size and for
group size 1; the embedded ledger's grouped figure of the same template is the baseline.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench.common import BenchError, Json, median, ratio, run_child
from bench.replay import (
    RoundTripDestination,
    _now_after,
    check_replayed,
    settle_then_close,
    timed_call,
    warm_up,
)

MODULE = "bench.postgres"


def child_replay(args: Json) -> Json:
    from buffer.sqlite import SqliteBuffer
    from destination.embedded import EmbeddedDestination
    from destination.port import Destination
    from destination.postgres import PostgresDestination
    from settler.cycle import DEFAULT_GROUP_SIZE

    warm_up()
    group = int(args["group"]) or DEFAULT_GROUP_SIZE
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        copy = Path(tmp) / "buffer.db"
        shutil.copyfile(args["template"], copy)
        buffer = SqliteBuffer(copy)
        inner: Destination
        if args["destination"] == "postgres":
            inner = PostgresDestination(args["url"], schema=args["schema"])
        else:
            inner = EmbeddedDestination(Path(tmp) / "replica.db")
        destination = RoundTripDestination(inner)
        report, t = settle_then_close(
            buffer, destination, args["now"], group=group, around=timed_call
        )
    check_replayed(report, int(args["blocks"]))
    return {
        "group": group,
        "blocks": report.blocks,
        "applies": destination.applies,
        "apply_seconds": destination.apply_seconds,
        "cycle_seconds": t.wall,
    }


def _work(args: Json) -> Json:
    if args["mode"] == "replay":
        return child_replay(args)
    raise BenchError(f"unknown mode {args['mode']!r}")


def measure(templates: dict[str, Json], *, reps: int) -> Json:
    """PostgreSQL grouped and ungrouped against the embedded ledger, per replay mode."""
    from destination.postgres_local import LocalPostgres
    from runtime.errors import ConfigError

    try:
        server = LocalPostgres.start()
    except ConfigError as exc:
        return {"skipped": str(exc)}
    try:
        url = server.url("bench")
        modes: dict[str, Json] = {}
        n = 0
        for mode in ("statements", "revisions"):
            template = templates[mode]
            blocks, documents = int(template["blocks"]), int(template["documents"])
            runs: dict[str, list[Json]] = {"embedded": [], "grouped": [], "one_per_txn": []}
            for _ in range(reps):
                for name, destination, group in (
                    ("embedded", "embedded", 0),
                    ("grouped", "postgres", 0),
                    ("one_per_txn", "postgres", 1),
                ):
                    n += 1
                    runs[name].append(
                        run_child(
                            MODULE,
                            {
                                "mode": "replay",
                                "template": template["path"],
                                "destination": destination,
                                "url": url,
                                "schema": f"bench_{n}",
                                "group": group,
                                "now": _now_after(template["commits"], blocks),
                                "blocks": blocks,
                            },
                            timeout=3600,
                        )
                    )
            statements = int(template["statements"])
            result: Json = {"blocks": blocks, "documents": documents, "statements": statements}
            for name, rs in runs.items():
                apply_s = median([r["apply_seconds"] for r in rs])
                cycle_s = median([r["cycle_seconds"] for r in rs])
                result[name] = {
                    "group": rs[0]["group"],
                    "applies": rs[0]["applies"],
                    "replay_blocks_per_s": blocks / apply_s,
                    "replay_documents_per_s": documents / apply_s,
                    "replay_statements_per_s": statements / apply_s,
                    "cycle_blocks_per_s": blocks / cycle_s,
                }
            result["grouped_to_embedded"] = ratio(
                result["grouped"]["replay_blocks_per_s"],
                result["embedded"]["replay_blocks_per_s"],
            )
            result["grouped_to_one_per_txn"] = ratio(
                result["grouped"]["replay_blocks_per_s"],
                result["one_per_txn"]["replay_blocks_per_s"],
            )
            modes[mode] = result
        return {"repetitions": reps, "server": "local PostgreSQL, loopback, fsync=off", **modes}
    finally:
        server.stop()


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
