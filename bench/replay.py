"""Replay throughput into the embedded ledger, against raw SQLite inserts of the same documents;
and grouped against ungrouped replay over a simulated 15 ms round trip per destination
transaction.

Setup (``build``, one child per mode): a source ledger (``bench.backlog.source_ledger``: two
``CREATE TABLE`` blocks, then transactions each inserting a Vehicle and its VehicleRegistration)
with literal statements (``statements``: replayed as statements) or with ``?`` parameters
(``revisions``: replayed from the revisions), decoded by the ingest path into a template
``SqliteBuffer``. Both modes write the same documents.

Measurement, each repetition a fresh child on a copy of the template:

- ``replay``: one ``settler.cycle.settle`` over every block into a new ``EmbeddedDestination``
  wrapped in ``RoundTripDestination``, which times each ``Destination.apply`` (and, with a round
  trip, sleeps that long first, as a QLDB-like destination waits for the network). Replay
  throughput is blocks (statements, documents) over the time spent in ``apply``; the whole
  cycle (verification with content hashes, planning, marks) is reported beside it. The settler's
  default group size (``settler.cycle.DEFAULT_GROUP_SIZE``) applies unless ``group`` says 1.
- ``raw`` (the baseline): the same documents, as Ion binary encoded beforehand, inserted into a
  plain SQLite table (``id`` primary key, table name, data) with the embedded ledger's pragmas
  (WAL, ``synchronous=NORMAL``), one transaction per group of blocks as the replay groups them.

A third template, ``simulated``, is the simulator's workload (``qldb_settle.simulate.workload``:
concurrent clients, inserts, by-id and by-field updates, deletes, read-only transactions, OCC
retries) with 30% of its statements parameterized: the planner replays each block by statements
or from its revisions as the rules say. It has no raw baseline (its documents change and are
deleted); its whole cycle is reported in blocks/s and statements/s beside the two modes'.

The round-trip comparison settles a template of its own (200 blocks by default, revision mode),
all of it, so that the cycle does not also read a page of blocks it then holds back.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.backlog import DDL
from bench.common import (
    BenchError,
    Json,
    Timing,
    median,
    peak_rss_kb,
    ratio,
    reset_peak_rss,
    rss_kb,
    run_child,
    timed,
)
from destination.port import ApplyReport, BlockReplay, Checkpoint, Destination

MODULE = "bench.replay"
SIMULATED = "simulated"
SIMULATED_PARAM_RATE = 0.30
WINDOW_SECONDS = 120.0
ROUND_TRIP_MS = 15.0


class RoundTripDestination:
    """A ``Destination`` that times every ``apply`` of the one it wraps, first sleeping
    ``round_trip_s`` (a simulated network round trip per destination transaction)."""

    def __init__(self, inner: Destination, round_trip_s: float = 0.0) -> None:
        self.inner = inner
        self.limits = inner.limits
        self.round_trip_s = round_trip_s
        self.apply_seconds = 0.0
        self.applies = 0
        self.blocks = 0  # blocks of the applies that returned

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        return self.inner.checkpoint(ledger, strand_id)

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        start = time.perf_counter()
        try:
            if self.round_trip_s:
                time.sleep(self.round_trip_s)
            report = self.inner.apply(blocks, expected)
            self.blocks += len(blocks)
            return report
        finally:
            self.apply_seconds += time.perf_counter() - start
            self.applies += 1

    def close(self) -> None:
        self.inner.close()


def child_build(args: Json) -> Json:
    from bench.backlog import source_ledger, stream_items
    from buffer.sqlite import SqliteBuffer
    from journal.records import BlockSummary

    path = Path(args["path"])
    with tempfile.TemporaryDirectory(prefix="bench-replay-source-") as tmp:
        if args["replay_mode"] == SIMULATED:
            _simulated_source(Path(tmp) / "source.db", int(args["transactions"]))
        else:
            source_ledger(Path(tmp) / "source.db", int(args["transactions"]), args["replay_mode"])
        items, _tip = stream_items(Path(tmp) / "source.db")
    buffer = SqliteBuffer(path)
    try:
        put = buffer.put(items)
    finally:
        buffer.close()
    summaries = [i.record for i in items if isinstance(i.record, BlockSummary)]
    commits = [s.commit_time.astimezone(UTC).isoformat() for s in summaries]
    return {
        "path": str(path),
        "mode": args["replay_mode"],
        "blocks": put.stored["blocks"],
        "documents": put.stored["revisions"],
        "statements": put.stored["statements"],
        "commits": commits,
        "block_statements": [len(s.statements) for s in summaries],
    }


def _simulated_source(path: Path, transactions: int) -> None:
    """The simulator's workload, 30% of its statements with parameters, as a source ledger."""
    import random

    from bench.backlog import LEDGER_NAME
    from ledger import EmbeddedLedger
    from qldb_settle.simulate.workload import SimClock, WorkloadConfig, run_workload

    clock = SimClock()
    ledger = EmbeddedLedger(path, ledger_name=LEDGER_NAME, clock=clock, id_seed="bench-sim")
    try:
        config = WorkloadConfig(transactions=transactions, param_rate=SIMULATED_PARAM_RATE)
        run_workload(ledger, clock, config, random.Random(0))
    finally:
        ledger.close()


def _copy(template: str, tmp: str) -> Path:
    copy = Path(tmp) / "buffer.db"
    shutil.copyfile(template, copy)
    return copy


def warm_up() -> None:
    """The lazy imports every cycle of a running settler has done already (ionhash, the PartiQL
    grammar), done before anything is measured."""
    from ledger.parser import parse
    from settler.block_checks import ionhash_available

    ionhash_available()
    parse("INSERT INTO Vehicle {'VIN': 'x'}")


def settle_then_close(
    buffer: Any,
    destination: Destination,
    now: str,
    *,
    group: int = 0,
    around: Callable[[Callable[[], Any]], Any] | None = None,
) -> Any:
    """One ``settle`` of ``buffer`` into ``destination`` as of ``now`` (ISO 8601; group size
    ``group``, 0 for the settler's default), called through ``around`` (which measures it) when
    given; both stores closed afterwards. What ``around`` returns (else the report)."""
    from settler.cycle import DEFAULT_GROUP_SIZE, SettlePolicy, settle

    policy = SettlePolicy(window_seconds=WINDOW_SECONDS, group_size=group or DEFAULT_GROUP_SIZE)

    def cycle() -> Any:
        return settle(buffer, destination, now=datetime.fromisoformat(now), policy=policy)

    try:
        return cycle() if around is None else around(cycle)
    finally:
        destination.close()
        buffer.close()


def timed_call(call: Callable[[], Any]) -> tuple[Any, Timing]:
    with timed() as t:
        result = call()
    return result, t


def check_replayed(report: Any, blocks: int, what: str = "") -> None:
    """Raise ``BenchError`` unless the cycle replayed exactly ``blocks`` blocks, not halted."""
    if report.blocks != blocks or report.halted:
        raise BenchError(
            f"{what}replayed {report.blocks} of {blocks} blocks; halted: {report.halt_reason}"
        )


def cycle_figures(report: Any, destination: RoundTripDestination, t: Timing) -> Json:
    """What a measured cycle did and how long it took, as a child reports it."""
    return {
        "blocks": report.blocks,
        "statements": report.statements,
        "revisions": report.revisions,
        "applies": destination.applies,
        "apply_seconds": destination.apply_seconds,
        "cycle_seconds": t.wall,
        "cycle_cpu_seconds": t.cpu,
    }


def child_replay(args: Json) -> Json:
    from buffer.sqlite import SqliteBuffer
    from destination.embedded import EmbeddedDestination
    from settler.cycle import DEFAULT_GROUP_SIZE

    warm_up()
    group = int(args["group"]) or DEFAULT_GROUP_SIZE
    memory: dict[str, int] = {}

    def measured(call: Callable[[], Any]) -> tuple[Any, Timing]:
        reset_peak_rss()
        memory["before"] = rss_kb()
        result = timed_call(call)
        memory["peak"] = peak_rss_kb()
        return result

    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        buffer = SqliteBuffer(_copy(args["template"], tmp))
        destination = RoundTripDestination(
            EmbeddedDestination(Path(tmp) / "replica.db"), float(args["round_trip_ms"]) / 1000
        )
        report, t = settle_then_close(
            buffer, destination, args["now"], group=group, around=measured
        )
    check_replayed(report, int(args["blocks"]))
    return {
        "group": group,
        **cycle_figures(report, destination, t),
        "rss_before_kb": memory["before"],
        "peak_rss_kb": memory["peak"],
    }


def child_raw(args: Json) -> Json:
    from amazon.ion import simpleion

    from buffer.sqlite import SqliteBuffer

    group = int(args["group"])
    buffer = SqliteBuffer(args["template"], read_only=True)
    try:
        blocks: list[list[tuple[str, str, bytes]]] = []
        for ledger, strand in buffer.strands():
            after = -1
            while page := buffer.pending(ledger, strand, after, 500):
                for b in page:
                    docs = []
                    for s in b.summary.user_revisions:
                        assert s.document_id is not None
                        rev = b.revisions[s.document_id]
                        docs.append(
                            (
                                rev.document_id,
                                rev.table_name,
                                simpleion.dumps(rev.data, binary=True),
                            )
                        )
                    blocks.append(docs)
                after = page[-1].summary.address.sequence_no
    finally:
        buffer.close()
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        db = sqlite3.connect(Path(tmp) / "raw.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(
            "CREATE TABLE documents (id TEXT PRIMARY KEY, table_name TEXT NOT NULL, data BLOB)"
        )
        with timed() as t:
            for start in range(0, len(blocks), group):
                db.execute("BEGIN IMMEDIATE")
                for docs in blocks[start : start + group]:
                    for row in docs:
                        db.execute(
                            "INSERT INTO documents (id, table_name, data) VALUES (?, ?, ?)", row
                        )
                db.execute("COMMIT")
        (n,) = db.execute("SELECT count(*) FROM documents").fetchone()
        db.close()
    return {"blocks": len(blocks), "documents": int(n), "seconds": t.wall, "cpu_seconds": t.cpu}


def _work(args: Json) -> Json:
    mode = args["mode"]
    if mode == "build":
        return child_build(args)
    if mode == "replay":
        return child_replay(args)
    if mode == "raw":
        return child_raw(args)
    raise BenchError(f"unknown mode {mode!r}")


MODES = ("statements", "revisions")
ROUND_TRIP = "round_trip"


def build(workdir: Path, *, transactions: int, round_trip_blocks: int) -> dict[str, Json]:
    """One template buffer per replay mode (``statements``, ``revisions``), and a smaller one
    of ``round_trip_blocks`` blocks in revision mode for the round-trip comparison."""
    workdir.mkdir(parents=True, exist_ok=True)
    specs = [(mode, mode, transactions) for mode in MODES]
    specs.append((SIMULATED, SIMULATED, transactions))
    specs.append((ROUND_TRIP, "revisions", max(1, round_trip_blocks - len(DDL))))
    return {
        name: run_child(
            MODULE,
            {
                "mode": "build",
                "replay_mode": mode,
                "path": str(workdir / f"replay-{name}.db"),
                "transactions": n,
            },
            timeout=3600,
        )
        for name, mode, n in specs
    }


def _now_after(commits: list[str], blocks: int) -> str:
    """The instant at which exactly the first ``blocks`` blocks are settled."""
    return (
        datetime.fromisoformat(commits[blocks - 1]) + timedelta(seconds=WINDOW_SECONDS)
    ).isoformat()


def _replay(template: Json, *, group: int, round_trip_ms: float, blocks: int) -> Json:
    return run_child(
        MODULE,
        {
            "mode": "replay",
            "template": template["path"],
            "group": group,
            "round_trip_ms": round_trip_ms,
            "now": _now_after(template["commits"], blocks),
            "blocks": blocks,
        },
    )


def measure(templates: dict[str, Json], *, reps: int, round_trip_reps: int) -> Json:
    """Throughput per mode against raw inserts; then grouped against ungrouped at 15 ms."""
    from settler.cycle import DEFAULT_GROUP_SIZE

    modes: dict[str, Json] = {}
    raw_runs: dict[str, list[Json]] = {m: [] for m in MODES}
    replay_runs: dict[str, list[Json]] = {m: [] for m in MODES}
    simulated_runs: list[Json] = []
    for _ in range(reps):
        for mode in MODES:
            template = templates[mode]
            raw_runs[mode].append(
                run_child(
                    MODULE,
                    {"mode": "raw", "template": template["path"], "group": DEFAULT_GROUP_SIZE},
                )
            )
            replay_runs[mode].append(
                _replay(template, group=0, round_trip_ms=0.0, blocks=template["blocks"])
            )
        if SIMULATED in templates:
            sim = templates[SIMULATED]
            simulated_runs.append(_replay(sim, group=0, round_trip_ms=0.0, blocks=sim["blocks"]))
    for mode in MODES:
        template = templates[mode]
        rs, raws = replay_runs[mode], raw_runs[mode]
        blocks, documents = template["blocks"], template["documents"]
        apply_s = median([r["apply_seconds"] for r in rs])
        cycle_s = median([r["cycle_seconds"] for r in rs])
        raw_s = median([r["seconds"] for r in raws])
        paired = [
            (documents / r["apply_seconds"]) / (documents / w["seconds"])
            for r, w in zip(rs, raws, strict=True)
        ]
        modes[mode] = {
            "blocks": blocks,
            "documents": documents,
            "source_statements": template["statements"],
            "replayed_statements": rs[0]["statements"],
            "replayed_revisions": rs[0]["revisions"],
            "applies": rs[0]["applies"],
            "group": rs[0]["group"],
            "replay_blocks_per_s": blocks / apply_s,
            "replay_statements_per_s": template["statements"] / apply_s,
            "replay_documents_per_s": documents / apply_s,
            "cycle_blocks_per_s": blocks / cycle_s,
            "cycle_statements_per_s": template["statements"] / cycle_s,
            "cycle_cpu_blocks_per_s": blocks / median([r["cycle_cpu_seconds"] for r in rs]),
            "raw_documents_per_s": documents / raw_s,
            "ratio_to_raw": median(paired),
            "peak_rss_kb": median([float(r["peak_rss_kb"]) for r in rs]),
            "target": "at least 1,000 blocks per second replayed on one core",
            "target_met": blocks / apply_s >= 1000,
            "cycle_target_met": blocks / cycle_s >= 1000,
        }
    simulated = _simulated(templates.get(SIMULATED), simulated_runs)
    template = templates[ROUND_TRIP]
    n = template["blocks"]
    ungrouped: list[Json] = []
    grouped: list[Json] = []
    for _ in range(round_trip_reps):
        ungrouped.append(_replay(template, group=1, round_trip_ms=ROUND_TRIP_MS, blocks=n))
        grouped.append(_replay(template, group=0, round_trip_ms=ROUND_TRIP_MS, blocks=n))
    u_rate = median([n / r["cycle_seconds"] for r in ungrouped])
    g_rate = median([n / r["cycle_seconds"] for r in grouped])
    pairs = list(zip(grouped, ungrouped, strict=True))
    speedup = median([u["cycle_seconds"] / g["cycle_seconds"] for g, u in pairs])
    speedup_apply = median([u["apply_seconds"] / g["apply_seconds"] for g, u in pairs])
    return {
        "repetitions": reps,
        "round_trip_repetitions": round_trip_reps,
        "modes": modes,
        "simulated": simulated,
        "round_trip": {
            "round_trip_ms": ROUND_TRIP_MS,
            "mode": "revisions",
            "blocks": n,
            "ungrouped_blocks_per_s": u_rate,
            "grouped_blocks_per_s": g_rate,
            "grouped_statements_per_s": g_rate * template["statements"] / n,
            "ungrouped_applies": ungrouped[0]["applies"],
            "grouped_applies": grouped[0]["applies"],
            "group": grouped[0]["group"],
            "ungrouped_replay_blocks_per_s": median([n / r["apply_seconds"] for r in ungrouped]),
            "grouped_replay_blocks_per_s": median([n / r["apply_seconds"] for r in grouped]),
            "speedup": speedup,
            "speedup_replay": speedup_apply,
            "ratio_of_medians": ratio(g_rate, u_rate),
            "target": "grouped replay at a 15 ms round trip at least 10x ungrouped",
            "target_met": speedup_apply >= 10,
            "cycle_target_met": speedup >= 10,
        },
    }


def _simulated(template: Json | None, runs: list[Json]) -> Json | None:
    """The whole cycle on the simulated workload (None when it was not built)."""
    if template is None or not runs:
        return None
    blocks = template["blocks"]
    cycle_s = median([r["cycle_seconds"] for r in runs])
    apply_s = median([r["apply_seconds"] for r in runs])
    return {
        "param_rate": SIMULATED_PARAM_RATE,
        "blocks": blocks,
        "source_statements": template["statements"],
        "documents": template["documents"],
        "replayed_statements": runs[0]["statements"],
        "replayed_revisions": runs[0]["revisions"],
        "cycle_blocks_per_s": blocks / cycle_s,
        "cycle_statements_per_s": template["statements"] / cycle_s,
        "cycle_cpu_blocks_per_s": blocks / median([r["cycle_cpu_seconds"] for r in runs]),
        "replay_blocks_per_s": blocks / apply_s,
        "peak_rss_kb": median([float(r["peak_rss_kb"]) for r in runs]),
        "target": "at least 1,000 blocks per second, whole cycle, one core",
        "cycle_target_met": blocks / cycle_s >= 1000,
    }


if __name__ == "__main__":
    from bench.common import child_main

    child_main(_work)
