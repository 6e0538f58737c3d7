"""Synthetic but self-consistent stream records for the settler's tests.

``Chain`` builds consecutive blocks of one strand whose hashes hold exactly as QLDB's do
(revision hash = dot(IonHash(data), IonHash(metadata)), entriesHash = Merkle root,
blockHash = dot(entriesHash, previousBlockHash), statement digests = Ion hash of the text
dot-folded with each parameter's), as Ion values that ``journal.records.record_from_ion``
turns into the real record types. The embedded ledger's ``stream_records`` is the other source of
records (used by the end-to-end tests); this one lets a test shape a block exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import ionhash  # noqa: F401  (adds ion_hash to amazon.ion values)
from amazon.ion import simpleion

from buffer.port import BufferedBlock, Incoming
from journal.canonical import record_fingerprint
from journal.hashes import block_hash, dot, merkle_root
from journal.records import BlockSummary, RevisionDetails, record_from_ion

ARN = "arn:aws:qldb:us-east-1:123456789012:stream/source/Abcdefghij0123456789AB"
LEDGER = "us-east-1:123456789012:source"
STRAND = "StrandAAAAAAAAAAAAAAAA"
T0 = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


def ion(value: Any) -> Any:
    """A plain Python value as amazon.ion's typed value (a round trip through Ion binary)."""
    return simpleion.loads(simpleion.dumps(value))


def ms(value: datetime) -> datetime:
    """An Ion timestamp with millisecond precision, as QLDB writes its times."""
    from amazon.ion.core import Timestamp, TimestampPrecision

    v = value.astimezone(UTC)
    return Timestamp(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond - v.microsecond % 1000,
        tzinfo=UTC, precision=TimestampPrecision.SECOND, fractional_precision=3,
    )  # fmt: skip


def ion_hash(value: Any) -> bytes:
    return bytes(ion(value).ion_hash("SHA256"))


def _fake_hash(*parts: Any) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


@dataclass
class Rev:
    table: str
    document_id: str
    version: int
    data: Any  # None: a deletion
    table_id: str = ""
    redacted: bool = False


@dataclass
class Built:
    """One block's records: the summary and its revisions, as Ion values and typed records."""

    summary_value: Any
    revision_values: list[Any]
    commit: datetime

    @property
    def summary(self) -> BlockSummary:
        record = record_from_ion(self.summary_value)
        assert isinstance(record, BlockSummary)
        return record

    @property
    def revisions(self) -> list[RevisionDetails]:
        out = []
        for v in self.revision_values:
            r = record_from_ion(v)
            assert isinstance(r, RevisionDetails)
            out.append(r)
        return out

    @property
    def sequence_no(self) -> int:
        return self.summary.address.sequence_no

    def values(self) -> list[Any]:
        return [self.summary_value, *self.revision_values]

    def incoming(
        self, *, arrived_at: datetime | None = None, origin: str = "test"
    ) -> list[Incoming]:
        return [to_incoming(v, arrived_at=arrived_at, origin=origin) for v in self.values()]

    def buffered(self, kinds: Sequence[str] | None = None) -> BufferedBlock:
        return BufferedBlock(
            summary=self.summary,
            revisions={r.document_id: r for r in self.revisions},
            statement_kinds=tuple(kinds) if kinds is not None else (),
            state="pending",
            arrived_at=None,
        )


def to_incoming(
    value: Any, *, arrived_at: datetime | None = None, origin: str = "test"
) -> Incoming:
    """A stream record (Ion value) as the ingest path hands it to the buffer."""
    from ledger.classify import classify

    record = record_from_ion(value)
    kinds: tuple[str, ...] = ()
    if isinstance(record, BlockSummary):
        kinds = tuple(classify(s.text).kind for s in record.statements)
    return Incoming(
        record=record,
        raw=simpleion.dumps(value, binary=True),
        fingerprint=record_fingerprint(value),
        origin=origin,
        arrived_at=arrived_at,
        statement_kinds=kinds,
    )


@dataclass
class Chain:
    """Consecutive blocks of one strand; ``block`` appends the next one (or skips numbers)."""

    arn: str = ARN
    strand: str = STRAND
    sequence_no: int = 0
    previous_hash: bytes = field(default_factory=lambda: _fake_hash("genesis"))
    clock: datetime = T0
    step: timedelta = timedelta(seconds=1)

    def block(
        self,
        statements: Sequence[str | tuple[str, Sequence[Any]]] = (),
        revisions: Sequence[Rev] = (),
        *,
        skip: int = 0,
        commit: datetime | None = None,
        redactions: Sequence[dict[str, Any]] = (),
    ) -> Built:
        """The next block: ``statements`` are texts, or (text, parameters) pairs whose digest
        folds in the parameters' Ion hashes; ``skip`` leaves that many sequence numbers out (a
        gap: their blocks are made too, chained, and not returned)."""
        for _ in range(skip):
            self.block(["SELECT * FROM information_schema.user_tables"])
        self.sequence_no += 1
        seq = self.sequence_no
        self.clock = commit if commit is not None else self.clock + self.step
        commit_time = self.clock
        tx_id = f"tx{seq:020d}"
        address = {"strandId": self.strand, "sequenceNo": seq}
        statement_values = []
        for i, st in enumerate(statements):
            text, params = (st, ()) if isinstance(st, str) else st
            digest = ion_hash(text)
            for p in params:
                digest = dot(digest, ion_hash(p))
            statement_values.append(
                {
                    "statement": text,
                    "startTime": ms(commit_time - timedelta(milliseconds=50 - i)),
                    "statementDigest": digest,
                }
            )
        revision_values = []
        summaries = []
        documents: dict[str, Any] = {}
        for rev in revisions:
            table_id = rev.table_id or f"tbl{rev.table}".ljust(22, "X")[:22]
            meta = {
                "id": rev.document_id,
                "version": rev.version,
                "txTime": ms(commit_time - timedelta(milliseconds=10)),
                "txId": tx_id,
            }
            meta_hash = ion_hash(meta)
            rev_hash = meta_hash if rev.data is None else dot(ion_hash(rev.data), meta_hash)
            revision: dict[str, Any] = {
                "blockAddress": address,
                "hash": rev_hash,
                "metadata": meta,
            }
            if rev.redacted:
                revision["dataHash"] = ion_hash(rev.data)
            elif rev.data is not None:
                revision["data"] = rev.data
            revision_values.append(
                ion(
                    {
                        "qldbStreamArn": self.arn,
                        "recordType": "REVISION_DETAILS",
                        "payload": {
                            "tableInfo": {"tableName": rev.table, "tableId": table_id},
                            "revision": revision,
                        },
                    }
                )
            )
            summaries.append({"hash": rev_hash, "documentId": rev.document_id})
            documents[rev.document_id] = {
                "tableName": rev.table,
                "tableId": table_id,
                "statements": [max(0, len(statements) - 1)],
            }
        entries = [_fake_hash("entry", seq, 0), *[s["hash"] for s in summaries]]
        entries.append(_fake_hash("entry", seq, 9))
        entries_hash = merkle_root(entries)
        this_hash = block_hash(entries_hash, self.previous_hash)
        payload: dict[str, Any] = {
            "blockAddress": address,
            "transactionId": tx_id,
            "blockTimestamp": ms(commit_time),
            "blockHash": this_hash,
            "entriesHash": entries_hash,
            "previousBlockHash": self.previous_hash,
            "entriesHashList": entries,
            "transactionInfo": {"statements": statement_values},
        }
        if documents:
            payload["transactionInfo"]["documents"] = documents
            payload["revisionSummaries"] = summaries
        if redactions:
            payload["redactionInfo"] = {"revisions": list(redactions)}
        self.previous_hash = this_hash
        summary_value = ion(
            {"qldbStreamArn": self.arn, "recordType": "BLOCK_SUMMARY", "payload": payload}
        )
        return Built(
            summary_value=summary_value, revision_values=revision_values, commit=commit_time
        )


def with_statement_text(built: Built, index: int, text: str) -> Built:
    """A copy of the block whose statement ``index`` reads ``text`` (its digest unchanged)."""
    value = ion(built.summary_value)
    value["payload"]["transactionInfo"]["statements"][index]["statement"] = text
    return Built(
        summary_value=ion(value), revision_values=built.revision_values, commit=built.commit
    )


def put(buffer: Any, *blocks: Built, arrived_at: datetime | None = None) -> None:
    """Every record of the blocks into the buffer."""
    buffer.put([i for b in blocks for i in b.incoming(arrived_at=arrived_at)])
