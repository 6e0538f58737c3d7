"""Builders of the export tests: a small embedded source ledger, its export and its stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from buffer.port import Incoming
from buffer.sqlite import SqliteBuffer
from ingest.decode import decode_user_record
from ingest.export.service import LedgerRef
from journal.ion_binary import encode
from qldb_settle.simulate.export import export_id_for, write_export

START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LEDGER_ARN = "arn:aws:qldb:us-east-1:000000000000:ledger/exported"
LEDGER = LedgerRef.from_arn(LEDGER_ARN)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=250)
        return self.now


def source_ledger(path: Path, transactions: int = 12) -> Any:
    """An embedded ledger with DDL, inserts, updates, a read-only block and a deletion."""
    from ledger import EmbeddedLedger

    ledger = EmbeddedLedger(path, ledger_name="exported", clock=Clock(), id_seed="export-tests")
    ledger.execute("CREATE TABLE Person")
    for i in range(transactions):
        ledger.execute(f"INSERT INTO Person VALUE {{'n': {i}, 'amount': {i}.50, 'tag': 'p{i}'}}")
        if i % 3 == 0:
            ledger.execute(f"UPDATE Person AS p SET p.seen = true WHERE p.n = {i}")
    ledger.execute("SELECT * FROM Person")
    ledger.execute("DELETE FROM Person AS p WHERE p.n = 1")
    return ledger


def export(
    ledger: Any,
    folder: Path,
    fmt: str = "ION_TEXT",
    *,
    seed: str = "a",
    start: datetime | None = None,
    end: datetime | None = None,
    blocks_per_object: int = 4,
) -> dict[str, Any]:
    return write_export(
        ledger,
        folder,
        fmt=fmt,
        start=start or START,
        end=end or START + timedelta(days=1),
        export_id=export_id_for(seed),
        blocks_per_object=blocks_per_object,
    )


def stream_items(ledger: Any, after: int = -1) -> list[Incoming]:
    """The stream records of the ledger's blocks after ``after``, decoded as ingest does."""
    out: list[Incoming] = []
    for block in ledger.blocks(after):
        for j, value in enumerate(block.stream_records(ledger.stream_arn())):
            item = decode_user_record(encode(value), origin=f"stream/{block.sequence_no}/{j}")
            assert isinstance(item, Incoming), item
            out.append(item)
    return out


def buffer(path: Path) -> SqliteBuffer:
    return SqliteBuffer(path)
