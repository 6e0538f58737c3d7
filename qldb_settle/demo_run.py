"""The demo: a busy ledger, a hostile stream, the whole pipeline, and a replica proven equal.

``run_demo`` simulates a source ledger and its stream (``qldb_settle.simulate``), then plays the
events in arrival order on a simulated clock: each event goes through the ingest core into the
settling buffer, and every ``schedule_seconds`` of simulated time a settle cycle runs, as the
EventBridge schedule would run the settler Lambda. Nothing waits for real time. When the stream
is drained it keeps cycling until every block is settled, then verifies the replica twice:
against the source ledger, and against the stream's own REVISION_DETAILS.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from buffer.port import SettlingBuffer
from destination.port import Destination
from ingest.decode import decode_event
from ingest.service import IngestReport, ingest_items
from journal.errors import InputError
from qldb_settle.simulate import SimulationConfig, SimulationResult, simulate
from runtime.errors import TransientError
from settler.compare import Comparison, compare, documents_of_ledger, documents_of_stream
from settler.cycle import SettlePolicy, settle
from settler.cycle_report import SettleReport

MARKER = ".qldb-settle-demo"


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoOptions:
    simulation: SimulationConfig
    window_seconds: float = 120.0
    early_release: bool = False
    schedule_seconds: float = 60.0


@dataclass(slots=True)
class DemoReport:
    simulation: SimulationResult
    ingest: IngestReport
    cycles: int = 0
    settled: SettleReport = field(default_factory=SettleReport)  # totals over every cycle
    comparisons: list[Comparison] = field(default_factory=list)
    workdir: Path | None = None
    export: Any = None  # the ExportReport when the journal was split into an export and a stream

    @property
    def verified(self) -> bool:
        return (
            bool(self.comparisons)
            and all(c.equal for c in self.comparisons)
            and not (self.settled.halted or self.settled.quarantined or self.settled.late)
            and (self.export is None or not self.export.problems)
        )

    def add_cycle(self, r: SettleReport) -> None:
        self.cycles += 1
        self.settled.absorb(r)

    def to_json(self) -> dict[str, Any]:
        """DESIGN.md's demo keys, then the settle keys (``SettleReport.to_json`` of the totals
        over every cycle), then the demo's own."""
        stats = self.simulation.stats
        settle = self.settled.to_json()
        return {
            "verified": self.verified,
            "transactions": stats["transactions"],
            "blocks_replayed": self.settled.blocks,
            "duplicates": self.ingest.put.duplicates,
            "lag_ms": settle["lag_ms"],
            **settle,
            "cycles": self.cycles,
            "ingest": self.ingest.as_json(),
            "simulation": stats,
            "comparisons": [c.summary() for c in self.comparisons],
            "blocks_from": {
                "export": self.export.blocks if self.export is not None else 0,
                "stream": self.ingest.put.stored.get("blocks", 0),
            },
        }


def prepare_workdir(workdir: Path) -> None:
    """A fresh demo folder: an earlier demo's folder is emptied, anything else is refused."""
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / MARKER).exists():
            raise InputError(f"{workdir}: exists and was not made by the demo; choose --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MARKER).write_text("made by qldb-settle demo; safe to delete\n", encoding="utf-8")


def run_demo(
    options: DemoOptions,
    *,
    workdir: Path,
    buffer: SettlingBuffer,
    destination: Destination,
    replica_documents: Callable[[], list[tuple[str, Any]]],
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoReport:
    """Simulate, ingest in arrival order, settle on a simulated clock, verify."""
    say = progress or (lambda _what, _done, _total: None)
    say("simulating the source ledger and its stream", 0, 1)
    sim = simulate(workdir / "simulation", options.simulation)
    events = sim.events
    ingest = IngestReport()
    report = DemoReport(simulation=sim, ingest=ingest, workdir=workdir)
    schedule = timedelta(seconds=options.schedule_seconds)
    start = datetime.fromtimestamp(events[0].delivered_ms / 1000, UTC) if events else _now()
    next_cycle = start + schedule

    policy = SettlePolicy(
        window_seconds=options.window_seconds, early_release=options.early_release
    )

    def cycle(now: datetime) -> SettleReport:
        r = settle(buffer, destination, now=now, policy=policy)
        report.add_cycle(r)
        return r

    if "export" in sim.stats:  # the journal's first part is an export: it is ingested first
        from ingest.export.service import LedgerRef, ingest_export
        from ingest.export.store import FolderStore

        say("ingesting the journal export", 0, 1)
        exported = sim.stats["export"]
        report.export = ingest_export(
            buffer, FolderStore(exported["path"]), LedgerRef.from_arn(exported["ledger_arn"])
        )
        if report.export.transient is not None:
            raise TransientError(f"the buffer failed during the demo: {report.export.transient}")
    for n, event in enumerate(events):
        arrived = datetime.fromtimestamp(event.delivered_ms / 1000, UTC)
        while next_cycle <= arrived:
            cycle(next_cycle)
            next_cycle += schedule
        _merge(ingest, ingest_items(buffer, decode_event(event.to_json())))
        if n % 25 == 0 or n == len(events) - 1:
            say("ingesting and settling", n + 1, len(events))
    # Drain: keep the schedule going until nothing is pending (bounded by the window).
    last = next_cycle + timedelta(seconds=options.window_seconds) + 3 * schedule
    while next_cycle <= last:
        r = cycle(next_cycle)
        next_cycle += schedule
        if r.halted or r.buffer_depth == 0:
            break
    say("verifying the replica", 0, 1)
    replica = replica_documents()
    # Copies a JSON Lines export down-converted, as the destination marks them (none elsewhere).
    marked = getattr(destination, "down_converted_documents", None)
    lossy = marked() if marked is not None else []
    report.comparisons.append(
        compare(
            "source ledger",
            documents_of_ledger(sim.source_path),
            replica,
            down_converted_copies=lossy,
        )
    )
    if report.export is None:  # split: the stream carries only the journal after the export
        report.comparisons.append(
            compare("stream revisions", documents_of_stream(sim.event_paths), replica)
        )
    say("done", 1, 1)
    return report


def _merge(total: IngestReport, part: IngestReport) -> None:
    if part.transient is not None:
        raise TransientError(f"the buffer failed during the demo: {part.transient}")
    total.records += part.records
    total.put.add(part.put)
    for k, v in part.received.items():
        total.received[k] = total.received.get(k, 0) + v
    for k, v in part.rejected_by_kind.items():
        total.rejected_by_kind[k] = total.rejected_by_kind.get(k, 0) + v
    total.ingest_delays_ms.extend(part.ingest_delays_ms)
    total.out_of_orderness.extend(part.out_of_orderness)


def _now() -> datetime:
    return datetime(2026, 11, 1, tzinfo=UTC)
