"""Synthetic QLDB stream records for tests, built with the real constructors.

``Synth`` builds synthetic stream records as Ion values and turns them into ``Incoming`` items
exactly as the ingest does (Ion binary -> ``record_from_ion`` -> ``record_fingerprint``). Block
summaries are self-consistent for ``journal.hashes`` (entriesHash is the Merkle root of
entriesHashList, blockHash = dot(entriesHash, previousBlockHash), blocks chain by
previousBlockHash); revision hashes and statement digests are stand-ins (SHA-256 of the content),
not Ion hashes, so ``settler.block_checks`` with content checks would refuse them (tests/settler
builds Ion-hashed blocks of its own).

A module with its own name (not ``conftest``): every test folder has a ``conftest.py``, and
``from conftest import ...`` would pick whichever was imported first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from amazon.ion import simpleion

from buffer.port import Incoming
from journal.canonical import record_fingerprint
from journal.hashes import block_hash, merkle_root
from journal.records import record_from_ion

SYNTH_LEDGER_ARN = "arn:aws:qldb:eu-west-1:123456789012:stream/synthetic-ledger/"
SYNTH_ARN = SYNTH_LEDGER_ARN + "StreamA0000000000000000"
SYNTH_ARN_OTHER_STREAM = SYNTH_LEDGER_ARN + "StreamB1111111111111111"
SYNTH_ARN_OTHER_LEDGER = "arn:aws:qldb:eu-west-1:999999999999:stream/synthetic-ledger/StreamA0"
SYNTH_LEDGER = "eu-west-1:123456789012:synthetic-ledger"
SYNTH_STRAND = "StrandS000000000000000"
SYNTH_T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


def _digest(*parts: Any) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def simple_kind(text: str) -> str:
    """A rough statement classification for synthetic records (the real one is
    ``ledger.classify``)."""
    head = text.lstrip().split(" ", 1)[0].upper()
    if head == "SELECT":
        return "select"
    return "parameterized" if "?" in text else "literal"


@dataclass(frozen=True, slots=True)
class SynthDoc:
    """One document revision of a synthetic block."""

    document_id: str
    version: int
    data: Any  # None: a deletion
    table_name: str = "Person"
    table_id: str = "TablePerson00000000000"


@dataclass(slots=True)
class SynthBlock:
    """The Ion values of one synthetic block: its summary and its revisions."""

    summary: dict[str, Any]
    revisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sequence_no(self) -> int:
        return int(self.summary["payload"]["blockAddress"]["sequenceNo"])

    @property
    def block_hash(self) -> bytes:
        return bytes(self.summary["payload"]["blockHash"])

    @property
    def values(self) -> list[dict[str, Any]]:
        return [self.summary, *self.revisions]


class Synth:
    """Builds synthetic stream records (see the module docstring)."""

    def __init__(
        self, *, arn: str = SYNTH_ARN, strand: str = SYNTH_STRAND, t0: datetime = SYNTH_T0
    ) -> None:
        self.arn = arn
        self.strand = strand
        self.t0 = t0

    def commit_time(self, seq: int) -> datetime:
        """Commit time of block ``seq``: one second per sequence number after ``t0``."""
        return self.t0 + timedelta(seconds=seq)

    def block(
        self,
        seq: int,
        *,
        docs: Sequence[SynthDoc] | None = None,
        statements: Sequence[str] | None = None,
        previous_block_hash: bytes | None = None,
        arn: str | None = None,
        strand: str | None = None,
        commit_time: datetime | None = None,
        tx_id: str | None = None,
    ) -> SynthBlock:
        """One block: by default one INSERT of one new document (``Doc<seq>``, version 0)."""
        strand = strand or self.strand
        arn = arn or self.arn
        commit = commit_time or self.commit_time(seq)
        tx = tx_id or f"Tx{seq:020d}"
        if docs is None:
            docs = [SynthDoc(f"Doc{seq:019d}", 0, {"name": f"person {seq}", "seq": seq})]
        if statements is None:
            statements = ["INSERT INTO Person ?"] * max(1, len(docs))
        address = {"strandId": strand, "sequenceNo": seq}
        revisions = []
        summaries: list[dict[str, Any]] = []
        for d in docs:
            metadata = {"id": d.document_id, "version": d.version, "txTime": commit, "txId": tx}
            h = _digest("revision", d.document_id, d.version, repr(d.data), seq)
            revision: dict[str, Any] = {"blockAddress": address, "hash": h, "metadata": metadata}
            if d.data is not None:
                revision["data"] = d.data
            revisions.append(
                {
                    "qldbStreamArn": arn,
                    "recordType": "REVISION_DETAILS",
                    "payload": {
                        "tableInfo": {"tableName": d.table_name, "tableId": d.table_id},
                        "revision": revision,
                    },
                }
            )
            summaries.append({"hash": h, "documentId": d.document_id})
        entries: list[bytes] = [_digest("entry", strand, seq), *(s["hash"] for s in summaries)]
        entries_hash = merkle_root(entries)
        previous = (
            _digest("block", strand, seq - 1)
            if previous_block_hash is None
            else previous_block_hash
        )
        start = commit - timedelta(milliseconds=10 * (len(statements) + 1))
        payload: dict[str, Any] = {
            "blockAddress": address,
            "transactionId": tx,
            "blockTimestamp": commit,
            "blockHash": block_hash(entries_hash, previous),
            "entriesHash": entries_hash,
            "previousBlockHash": previous,
            "entriesHashList": entries,
            "transactionInfo": {
                "statements": [
                    {
                        "statement": text,
                        "startTime": start + timedelta(milliseconds=10 * i),
                        "statementDigest": _digest("statement", text),
                    }
                    for i, text in enumerate(statements)
                ],
                "documents": {
                    d.document_id: {
                        "tableName": d.table_name,
                        "tableId": d.table_id,
                        "statements": [min(i, len(statements) - 1)],
                    }
                    for i, d in enumerate(docs)
                },
            },
        }
        if summaries:
            payload["revisionSummaries"] = summaries
        summary = {"qldbStreamArn": arn, "recordType": "BLOCK_SUMMARY", "payload": payload}
        return SynthBlock(summary=summary, revisions=revisions)

    def chain(self, n: int, *, start: int = 1, **kwargs: Any) -> list[SynthBlock]:
        """``n`` consecutive blocks from ``start``, each linked to the one before."""
        blocks: list[SynthBlock] = []
        for seq in range(start, start + n):
            previous = blocks[-1].block_hash if blocks else None
            blocks.append(self.block(seq, previous_block_hash=previous, **kwargs))
        return blocks

    def control(self, control_type: str = "CREATED", *, arn: str | None = None) -> dict[str, Any]:
        return {
            "qldbStreamArn": arn or self.arn,
            "recordType": "CONTROL",
            "payload": {"controlRecordType": control_type},
        }

    def incoming(
        self,
        value: Mapping[str, Any],
        *,
        origin: str | None = None,
        arrived_at: datetime | None = None,
        kinds: Sequence[str] | None = None,
    ) -> Incoming:
        """The ``Incoming`` the ingest would make of ``value`` (through Ion binary)."""
        raw: bytes = simpleion.dumps(value, binary=True)
        loaded = simpleion.loads(raw)
        record = record_from_ion(loaded)
        if kinds is None:
            statements = getattr(record, "statements", ())
            kinds = [simple_kind(s.text) for s in statements]
        return Incoming(
            record=record,
            raw=raw,
            fingerprint=record_fingerprint(loaded),
            origin=origin or f"synthetic/{record.record_id}",
            arrived_at=arrived_at,
            statement_kinds=tuple(kinds),
        )

    def incomings(
        self, blocks: Iterable[SynthBlock], *, delay: timedelta | None = None
    ) -> list[Incoming]:
        """Every record of ``blocks``; with ``delay``, each arrives that long after its commit."""
        out = []
        for b in blocks:
            for value in b.values:
                arrived = None
                if delay is not None:
                    arrived = b.summary["payload"]["blockTimestamp"] + delay
                out.append(self.incoming(value, arrived_at=arrived))
        return out
