"""The simulator: a busy source ledger and the hostile stream a Lambda would receive from it.

``simulate(out, config)`` runs the workload against an embedded source ledger at
``out/source.db`` (on a simulated clock), turns its journal into QLDB stream records, sends them
through the simulated Kinesis transport and writes ``out/events/*.json`` (Lambda Kinesis events,
one shard each, in arrival order) and ``out/simulation.json`` (the settings and what happened).

With ``export_format`` the journal is split: the blocks committed before the split (the first
``export_fraction`` of them) are written as a journal export to ``out/export/journalExport``
(``qldb_settle.simulate.export``) and the stream carries the blocks from there on, as a stream
started where the export ended would.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from journal.errors import InputError
from journal.ion_binary import encode
from qldb_settle.simulate.stream import (
    LambdaEvent,
    TransportConfig,
    emit,
    to_events,
    to_kinesis,
    write_events,
)
from qldb_settle.simulate.workload import EPOCH, SimClock, WorkloadConfig, run_workload

LEDGER_NAME = "simulated-source"


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    transactions: int = 400
    shards: int = 4
    dup_rate: float = 0.15
    aggregate_rate: float = 0.5
    max_delay_ms: int = 20_000
    read_only_rate: float = 0.1
    stream_read_only: bool = False
    param_rate: float = 0.35
    seed: int = 0
    concurrency: int = 6
    rate_per_second: float = 8.0
    export_format: str | None = None
    export_fraction: float = 0.5


@dataclass(slots=True)
class SimulationResult:
    out: Path
    config: SimulationConfig
    events: list[LambdaEvent]
    event_paths: list[Path]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def source_path(self) -> Path:
        return self.out / "source.db"


def simulate(
    out: Path,
    config: SimulationConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> SimulationResult:
    from ledger import EmbeddedLedger

    out.mkdir(parents=True, exist_ok=True)
    source = out / "source.db"
    if source.exists() or (out / "events").exists():
        raise InputError(
            f"{out}: already holds a simulation (source.db or events/); use a new --out"
        )
    rng = random.Random(config.seed)
    clock = SimClock()
    ledger = EmbeddedLedger(
        source, ledger_name=LEDGER_NAME, clock=clock, id_seed=f"simulation-{config.seed}"
    )
    try:
        if progress:
            progress(f"running {config.transactions} transactions on the source ledger")
        workload = run_workload(
            ledger,
            clock,
            WorkloadConfig(
                transactions=config.transactions,
                concurrency=config.concurrency,
                rate_per_second=config.rate_per_second,
                param_rate=config.param_rate,
                read_only_rate=config.read_only_rate,
            ),
            rng,
        )
        arn = ledger.stream_arn()
        records: list[tuple[int, bytes]] = []
        blocks = read_only_blocks = revision_blocks = 0
        split_ms, export_stats = _write_export(ledger, out, config)
        for block in ledger.blocks():
            blocks += 1
            if block.timestamp_ms < split_ms:
                continue  # in the export, not the stream
            summary = block.payload
            read_only = "revisionSummaries" not in summary
            if read_only:
                read_only_blocks += 1
                if not config.stream_read_only:
                    continue
            if _needs_revisions(block.statements):
                revision_blocks += 1
            for value in block.stream_records(arn):
                records.append((block.timestamp_ms, encode(value)))
    finally:
        ledger.close()
    if progress:
        progress(f"streaming {len(records)} records through {config.shards} shards")
    transport = TransportConfig(
        shards=config.shards,
        dup_rate=config.dup_rate,
        aggregate_rate=config.aggregate_rate,
        max_delay_ms=config.max_delay_ms,
    )
    emissions = emit(records, transport, rng)
    kinesis = to_kinesis(emissions, transport, rng)
    events = to_events(kinesis, transport, rng)
    paths = write_events(events, out / "events")
    delivered_records = sum(r.user_records for e in events for r in e.records)
    stats = {
        "transactions": workload.committed,
        "read_only_transactions": workload.read_only,
        "occ_conflicts": workload.occ_conflicts,
        "abandoned": workload.abandoned,
        "over_limit": workload.over_limit,
        "statements": workload.statements,
        "parameterized_statements": workload.parameterized,
        "blocks": blocks,
        "read_only_blocks": read_only_blocks,
        "read_only_blocks_streamed": read_only_blocks if config.stream_read_only else 0,
        "revision_replay_blocks": revision_blocks,
        "stream_records": len(records),
        "emitted_records": len(emissions),
        "kinesis_records": len(kinesis),
        "aggregates": sum(1 for r in kinesis if r.user_records > 1),
        "events": len(events),
        "redelivered_events": sum(1 for e in events if e.redelivery),
        "delivered_records": delivered_records,
        "duplicate_records": delivered_records - len(records),
        "epoch": EPOCH.isoformat(),
        **export_stats,
    }
    (out / "simulation.json").write_text(
        json.dumps({"config": asdict(config), "stats": stats}, indent=2), encoding="utf-8"
    )
    return SimulationResult(out=out, config=config, events=events, event_paths=paths, stats=stats)


def _write_export(ledger: Any, out: Path, config: SimulationConfig) -> tuple[float, dict[str, Any]]:
    """Write the export part of the journal; return the split (ms) and what the export holds."""
    if config.export_format is None:
        return float("-inf"), {}
    from datetime import UTC, datetime, timedelta

    from qldb_settle.simulate.export import export_id_for, write_export

    stamps = [b.timestamp_ms for b in ledger.blocks()]
    cut = min(len(stamps) - 1, max(1, int(len(stamps) * config.export_fraction)))
    split_ms = stamps[cut]
    unix = datetime(1970, 1, 1, tzinfo=UTC)
    info = write_export(
        ledger,
        out / "export" / "journalExport",
        fmt=config.export_format,
        start=EPOCH - timedelta(days=1),
        end=unix + timedelta(milliseconds=split_ms),
        export_id=export_id_for(f"simulation-{config.seed}"),
    )
    return split_ms, {
        "export": {
            **info,
            "format": config.export_format,
            "path": str(out / "export" / "journalExport"),
            "ledger_arn": f"arn:aws:qldb:{ledger.region}:{ledger.account}:ledger/"
            f"{ledger.ledger_name}",
        }
    }


def _needs_revisions(statements: list[str]) -> bool:
    from ledger.classify import classify

    return any(classify(s).kind not in ("literal", "select", "ddl_id") for s in statements)
