"""Blocks to settle and replay: real ones from an embedded source ledger, and cheap synthetic ones.

- ``source_ledger`` commits ``transactions`` transactions on an ``EmbeddedLedger`` (a simulated
  clock, ``step_ms`` apart) after the two ``CREATE TABLE`` blocks: each inserts a Vehicle and
  its VehicleRegistration (two statements, two documents), as literal statements (replayed as
  statements), with ``?`` parameters (replayed from revisions), or alternating (``mixed``).
- ``stream_items`` turns its journal into the stream records QLDB would send and each record
  into an ``Incoming`` through the ingest decoder (``ingest.decode.decode_user_record``), so the
  blocks carry real hashes, digests and classifications and pass the settler's verification.
- ``held_items`` continues the chain with synthetic blocks built directly with the record
  constructors (one parameterized DELETE and its deletion revision each, stand-in hashes that
  chain, raw bytes of a real record's size): cheap enough to buffer a million of them, and never
  verified or replayed (they stay younger than the window).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from bench.common import BenchError
from buffer.port import Incoming
from journal.hashes import block_hash, merkle_root
from journal.records import (
    BlockAddress,
    BlockSummary,
    DocumentInfo,
    RevisionDetails,
    RevisionMetadata,
    RevisionSummary,
    StatementInfo,
    StreamRef,
)
from qldb_settle.simulate.workload import MAKES, vehicle_documents

Mode = Literal["statements", "revisions", "mixed"]
ARRIVAL_DELAY = timedelta(seconds=2)
LEDGER_NAME = "bench-source"
DDL = ("CREATE TABLE Vehicle", "CREATE TABLE VehicleRegistration")


@dataclass(frozen=True, slots=True, kw_only=True)
class Tip:
    """Where a chain of blocks ends: the next block continues from here."""

    arn: str
    strand_id: str
    sequence_no: int
    block_hash: bytes
    commit_time: datetime


def documents(rng: random.Random, n: int) -> tuple[dict[str, object], dict[str, object]]:
    """The Vehicle and VehicleRegistration documents of transaction ``n``."""
    make, model = rng.choice(MAKES)
    return vehicle_documents(rng, f"VIN{n:08d}", make, model, f"GOV{n:08d}")


def source_ledger(
    path: Path, transactions: int, mode: Mode, *, step_ms: int = 100, seed: int = 0
) -> None:
    """Write the source ledger (see the module docstring) to ``path``."""
    from ledger import EmbeddedLedger
    from qldb_settle.simulate.workload import SimClock, literal

    rng = random.Random(seed)
    clock = SimClock()
    ledger = EmbeddedLedger(path, ledger_name=LEDGER_NAME, clock=clock, id_seed=f"bench-{seed}")
    try:
        for ddl in DDL:
            clock.advance_to(clock.ms + step_ms)
            ledger.execute(ddl)
        for n in range(transactions):
            clock.advance_to(clock.ms + step_ms)
            vehicle, registration = documents(rng, n)
            literal_tx = mode == "statements" or (mode == "mixed" and n % 2 == 0)
            tx = ledger.begin()
            for table, doc in (("Vehicle", vehicle), ("VehicleRegistration", registration)):
                if literal_tx:
                    tx.execute(f"INSERT INTO {table} {literal(doc)}")
                else:
                    tx.execute(f"INSERT INTO {table} ?", doc)
                clock.advance_to(clock.ms + 3)
            tx.commit()
    finally:
        ledger.close()


def stream_items(path: Path) -> tuple[list[Incoming], Tip]:
    """The stream records of the source ledger at ``path``, decoded by the ingest path; and the
    tip of its chain."""
    from ingest.decode import decode_user_record
    from journal.ion_binary import encode
    from ledger import EmbeddedLedger

    ledger = EmbeddedLedger(path, ledger_name=LEDGER_NAME)
    items: list[Incoming] = []
    last = None
    try:
        arn = ledger.stream_arn()
        for block in ledger.blocks():
            last = block
            committed = datetime.fromtimestamp(block.timestamp_ms / 1000, UTC)
            for k, value in enumerate(block.stream_records(arn)):
                item = decode_user_record(
                    encode(value),
                    origin=f"bench/{block.sequence_no}/{k}",
                    arrived_at=committed + ARRIVAL_DELAY,
                )
                if not isinstance(item, Incoming):
                    raise BenchError(f"a source record was rejected: {item.reason}")
                items.append(item)
    finally:
        ledger.close()
    if last is None:
        raise BenchError(f"{path}: the source ledger has no blocks")
    summary = next(
        i.record
        for i in reversed(items)
        if isinstance(i.record, BlockSummary) and i.record.address.sequence_no == last.sequence_no
    )
    assert isinstance(summary, BlockSummary)
    tip = Tip(
        arn=arn,
        strand_id=summary.address.strand_id,
        sequence_no=summary.address.sequence_no,
        block_hash=summary.block_hash,
        commit_time=summary.commit_time,
    )
    return items, tip


def _sha(kind: str, n: int | str) -> bytes:
    return hashlib.sha256(f"{kind}/{n}".encode()).digest()


def held_items(
    tip: Tip,
    count: int,
    *,
    step_ms: int = 100,
    summary_raw_bytes: int = 700,
    revision_raw_bytes: int = 450,
) -> Iterator[list[Incoming]]:
    """``count`` synthetic blocks after ``tip`` (see the module docstring), yielded as the two
    records of each block."""
    stream = StreamRef.from_arn(tip.arn)
    statement = "DELETE FROM Vehicle AS v WHERE v.VIN = ?"
    summary_raw = b"\xe0\x01\x00\xea" + bytes(summary_raw_bytes - 4)
    revision_raw = b"\xe0\x01\x00\xea" + bytes(revision_raw_bytes - 4)
    previous = tip.block_hash
    for i in range(1, count + 1):
        seq = tip.sequence_no + i
        commit = tip.commit_time + timedelta(milliseconds=step_ms * i)
        address = BlockAddress(strand_id=tip.strand_id, sequence_no=seq)
        doc = f"HeldDoc{seq:015d}"
        tx = f"HeldTx{seq:016d}"
        revision_hash = _sha("revision", seq)
        entries = (_sha("entry", seq), revision_hash)
        entries_hash = merkle_root(list(entries))
        this_hash = block_hash(entries_hash, previous)
        summary = BlockSummary(
            stream=stream,
            address=address,
            transaction_id=tx,
            block_timestamp=commit,
            block_hash=this_hash,
            entries_hash=entries_hash,
            previous_block_hash=previous,
            entries_hash_list=entries,
            statements=(
                StatementInfo(
                    index=0,
                    text=statement,
                    start_time=commit - timedelta(milliseconds=20),
                    digest=_sha("statement", seq),
                ),
            ),
            documents=(
                DocumentInfo(
                    document_id=doc,
                    table_name="Vehicle",
                    table_id="HeldTableVehicle000000",
                    statements=(0,),
                ),
            ),
            revision_summaries=(RevisionSummary(hash=revision_hash, document_id=doc),),
            redactions=(),
        )
        revision = RevisionDetails(
            stream=stream,
            table_name="Vehicle",
            table_id="HeldTableVehicle000000",
            address=address,
            hash=revision_hash,
            data=None,
            data_hash=None,
            metadata=RevisionMetadata(
                id=doc, version=1, tx_time=commit - timedelta(milliseconds=5), tx_id=tx
            ),
        )
        arrived = commit + ARRIVAL_DELAY
        yield [
            Incoming(
                record=summary,
                raw=summary_raw,
                fingerprint=_sha("fp", summary.record_id).hex(),
                origin=f"bench/held/{seq}",
                arrived_at=arrived,
                statement_kinds=("parameterized",),
            ),
            Incoming(
                record=revision,
                raw=revision_raw,
                fingerprint=_sha("fp", revision.record_id).hex(),
                origin=f"bench/held/{seq}/1",
                arrived_at=arrived,
            ),
        ]
        previous = this_hash
