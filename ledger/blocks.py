"""The journal's block and record model: what a committed block is and how it is shown.

``CommittedBlock`` carries the BLOCK_SUMMARY payload (RECORDS.md field order) and the block's user
``Revision``\\s; ``stream_records`` gives the records QLDB would stream for it. The payload is built
from the compact record the ledger stores per block (``transaction_info``, ``block_payload``).
Changes here when QLDB's record shapes do; knows nothing of SQLite or statements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from amazon.ion.core import Timestamp, TimestampPrecision

from journal.ion_binary import decode


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the epoch (a naive ``value`` is taken as UTC)."""
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = v - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@lru_cache(maxsize=1024)
def ion_time(ms: int) -> Timestamp:
    """An Ion timestamp, UTC, millisecond precision (as QLDB writes them)."""
    v = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return Timestamp(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC,
        precision=TimestampPrecision.SECOND, fractional_precision=3,
    )  # fmt: skip


def ion_struct(**fields: Any) -> dict[str, Any]:
    return dict(fields)


def transaction_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``transactionInfo`` struct of a block from its stored record."""
    info: dict[str, Any] = {
        "statements": [
            {"statement": text, "startTime": ion_time(ms), "statementDigest": bytes.fromhex(d)}
            for text, ms, d in record["statements"]
        ]
    }
    if record["documents"]:
        info["documents"] = {
            doc_id: {"tableName": name, "tableId": table_id, "statements": list(statements)}
            for doc_id, name, table_id, statements in record["documents"]
        }
    return info


def block_payload(
    record: Mapping[str, Any], strand_id: str, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The BLOCK_SUMMARY payload (RECORDS.md field order) of a block from its stored record."""
    payload: dict[str, Any] = {
        "blockAddress": {"strandId": strand_id, "sequenceNo": int(record["seq"])},
        "transactionId": record["tx"],
        "blockTimestamp": ion_time(int(record["ts"])),
        "blockHash": bytes.fromhex(record["hash"]),
        "entriesHash": bytes.fromhex(record["entries_hash"]),
        "previousBlockHash": bytes.fromhex(record["prev"]),
        "entriesHashList": [bytes.fromhex(h) for h in record["entries"]],
        "transactionInfo": info if info is not None else transaction_info(record),
    }
    if record["summaries"]:
        payload["revisionSummaries"] = [
            {"hash": bytes.fromhex(h)} if d is None else {"hash": bytes.fromhex(h), "documentId": d}
            for h, d in record["summaries"]
        ]
    redactions = redaction_info(record, strand_id)
    if redactions is not None:
        payload["redactionInfo"] = redactions
    return payload


def redaction_info(record: Mapping[str, Any], strand_id: str) -> dict[str, Any] | None:
    """The ``redactionInfo`` payload field of a block that ran ``EXEC redact_revision``, from
    its stored record (None: the block redacted nothing)."""
    rows = record.get("redactions")
    if not rows:
        return None
    return {
        "revisions": [
            ion_struct(
                blockAddress=ion_struct(strandId=strand_id, sequenceNo=int(seq)),
                tableId=table_id,
                documentId=doc_id,
                version=int(version),
            )
            for seq, table_id, doc_id, version in rows
        ]
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """A user document revision committed in a block (``raw`` None: a deletion, or a redacted
    revision when ``data_hash`` holds the hash of its removed data)."""

    table_name: str
    table_id: str
    document_id: str
    version: int
    raw: bytes | None
    hash: bytes
    tx_time_ms: int
    tx_id: str
    data_hash: bytes | None = None

    @property
    def data(self) -> Any:
        """The document after the revision (simpleion values), None for a deletion."""
        return None if self.raw is None else decode(self.raw)

    def metadata(self) -> dict[str, Any]:
        return ion_struct(
            id=self.document_id, version=self.version, txTime=ion_time(self.tx_time_ms),
            txId=self.tx_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedBlock:
    """One block of the ledger's journal: its BLOCK_SUMMARY payload and its user revisions."""

    strand_id: str
    sequence_no: int
    transaction_id: str
    timestamp_ms: int
    block_hash: bytes
    entries_hash: bytes
    previous_block_hash: bytes
    payload: Any
    revisions: tuple[Revision, ...]

    @property
    def block_timestamp(self) -> Timestamp:
        return ion_time(self.timestamp_ms)

    @property
    def statements(self) -> list[str]:
        return [str(s["statement"]) for s in self.payload["transactionInfo"]["statements"]]

    def stream_records(self, stream_arn: str) -> list[Any]:
        """The records QLDB streams for this block: one BLOCK_SUMMARY, then one
        REVISION_DETAILS per user revision (RECORDS.md)."""
        address = ion_struct(strandId=self.strand_id, sequenceNo=self.sequence_no)
        out: list[Any] = [
            ion_struct(qldbStreamArn=stream_arn, recordType="BLOCK_SUMMARY", payload=self.payload)
        ]
        for r in self.revisions:
            revision = ion_struct(blockAddress=address, hash=r.hash)
            if r.data is not None:
                revision["data"] = r.data
            elif r.data_hash is not None:
                revision["dataHash"] = r.data_hash
            revision["metadata"] = r.metadata()
            out.append(
                ion_struct(
                    qldbStreamArn=stream_arn,
                    recordType="REVISION_DETAILS",
                    payload=ion_struct(
                        tableInfo=ion_struct(tableName=r.table_name, tableId=r.table_id),
                        revision=revision,
                    ),
                )
            )
        return out


__all__ = [
    "CommittedBlock",
    "Revision",
    "block_payload",
    "epoch_ms",
    "ion_struct",
    "ion_time",
    "transaction_info",
]
