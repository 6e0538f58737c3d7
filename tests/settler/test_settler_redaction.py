"""A stream of an embedded ledger that ran ``EXEC redact_revision`` replays and verifies: the
redacted revision (``dataHash`` instead of ``data``) is verified by its kept hash, the redacting
block (``redactionInfo``, no revisions) changes nothing, and the replica ends as the source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from settler_blocks import to_incoming
from settler_workload import Clock, source_documents, stream

from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from journal.canonical import fingerprint
from ledger import EmbeddedLedger
from settler.cycle import SettlePolicy, settle

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _source(tmp_path: Path) -> tuple[EmbeddedLedger, str, str, Any]:
    """A source where Ann's first revision is inactive: (ledger, document id, table id, that
    revision's history row)."""
    source = EmbeddedLedger(
        tmp_path / "source.db", ledger_name="source", clock=Clock(), id_seed="source"
    )
    source.execute("CREATE TABLE Person")
    [r] = source.execute("INSERT INTO Person ?", {"Name": "Ann", "License": "X1"})
    doc_id = str(r["documentId"])
    source.execute("UPDATE Person AS p SET p.License = ? WHERE p.Name = 'Ann'", "X2")
    source.execute("INSERT INTO Person << {'Name': 'Bob', 'License': 'B1'} >>")
    table_id = next(i for n, i, _ in source.tables() if n == "Person")
    [old, _] = source.execute("SELECT * FROM history(Person) AS h WHERE h.metadata.id = ?", doc_id)
    return source, doc_id, table_id, old


def _replays(tmp_path: Path, records: list[Any], expected: Any) -> None:
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    buffer.put([to_incoming(v) for v in records])
    dest = EmbeddedDestination(tmp_path / "replica.db")
    report = settle(buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=120))
    assert not report.halted, report.halt_reason
    assert report.quarantined == 0 and report.late == 0
    assert sorted((t, fingerprint(d)) for t, _, d in dest.documents()) == expected
    buffer.close()
    dest.close()


def test_a_stream_carrying_a_redaction_replays_and_verifies(tmp_path: Path) -> None:
    """Read after the redaction (as an export made later would be): the old revision carries
    dataHash."""
    source, doc_id, table_id, old = _source(tmp_path)
    source.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc_id)
    expected = source_documents(source)
    records = list(stream(source))
    source.close()
    redacted = [
        v for v in records
        if v["recordType"] == "REVISION_DETAILS" and "dataHash" in v["payload"]["revision"]
    ]  # fmt: skip
    assert len(redacted) == 1
    assert any("redactionInfo" in v["payload"] for v in records)
    _replays(tmp_path, records, expected)


def test_a_redaction_streamed_after_its_revision_replays(tmp_path: Path) -> None:
    """Streamed as QLDB streams (each block when it commits): the revision came with its data;
    the redacting block that follows changes no document and is not replayed."""
    source, doc_id, table_id, old = _source(tmp_path)
    tip = source.tip()
    records = list(stream(source))
    assert not any("dataHash" in v["payload"].get("revision", {}) for v in records)
    source.execute("EXEC redact_revision ?, ?, ?", old["blockAddress"], table_id, doc_id)
    arn = source.stream_arn()
    later = [r for b in source.blocks(tip) for r in b.stream_records(arn)]
    assert any("redactionInfo" in v["payload"] for v in later)
    expected = source_documents(source)
    source.close()
    _replays(tmp_path, records + later, expected)
