"""Stream records of a source ledger for the OpenSearch buffer's tests.

``source_records`` runs a small workload on a real ``EmbeddedLedger`` (literal and parameterised
statements, inserts, updates, a delete) and returns its journal as stream records, so a replica
settled through the buffer can be compared with the source document by document.

``paging_chain`` builds many blocks with many statements quickly (the embedded ledger would take
minutes for ten thousand statements): each block is ``statements - 1`` identical SELECTs and one
literal INSERT of one document, with every hash computed as QLDB computes it (statement digests
and revision hashes are Ion hashes, entries hash a Merkle root, blocks chained), so the settler
verifies and replays them like real ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import ionhash  # noqa: F401  (adds ion_hash to amazon.ion values)
from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision

from buffer.port import Incoming, Rejection
from ingest.decode import record_item
from journal.canonical import record_fingerprint
from journal.hashes import block_hash, dot, merkle_root
from journal.records import record_from_ion

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
PAGING_ARN = "arn:aws:qldb:us-east-1:123456789012:stream/paging/PagingStream0000000001"
PAGING_STRAND = "PagingStrandAAAAAAAAAA"
SELECT = "SELECT * FROM Item AS i WHERE i.k = -1"


def to_incoming(value: Any, *, origin: str, arrived_at: datetime | None = None) -> Incoming:
    """A stream record as the ingest hands it to the buffer (``ingest.decode.record_item``)."""
    raw: bytes = simpleion.dumps(value, binary=True)
    item = record_item(simpleion.loads(raw), raw=raw, origin=origin, arrived_at=arrived_at)
    assert not isinstance(item, Rejection), item
    return item


def quick_incoming(value: Any, *, origin: str) -> Incoming:
    """``to_incoming`` without reading the Ion bytes back: the record and its fingerprint come from
    the value itself (what reading them back gives, minus amazon.ion 0.9.3's ~2 ms per statement,
    which would dominate a test with ten thousand statements)."""
    raw: bytes = simpleion.dumps(value, binary=True)
    record = record_from_ion(value)
    kinds = tuple(_kind(s.text) for s in getattr(record, "statements", ()))
    return Incoming(
        record=record,
        raw=raw,
        fingerprint=record_fingerprint(value),
        origin=origin,
        statement_kinds=kinds,
    )


@lru_cache(maxsize=64)
def _kind(text: str) -> str:
    from ledger.classify import classify

    return classify(text).kind


def source_records(path: Path, transactions: int) -> tuple[Any, list[Any]]:
    """Run a workload on an embedded source ledger; return it and its journal's stream records
    (one BLOCK_SUMMARY, then its REVISION_DETAILS, per block)."""
    from ledger import EmbeddedLedger

    clock = _Clock()
    source = EmbeddedLedger(path, ledger_name="faulty", clock=clock, id_seed=7)
    source.execute("CREATE TABLE Person")
    for n in range(transactions):
        tx = source.begin()
        if n % 3 == 0:
            tx.execute(f"INSERT INTO Person << {{'n': {n}, 'name': 'p{n}'}} >>")
        elif n % 3 == 1:
            tx.execute("INSERT INTO Person ?", simpleion.loads(f'{{n: {n}, name: "q{n}"}}'))
            tx.execute(f"UPDATE Person AS p SET p.touched = {n} WHERE p.n = {n - 1}")
        else:
            tx.execute(f"UPDATE Person AS p SET p.name = 'r{n}' WHERE p.n = {n - 2}")
            if n % 4 == 0:
                tx.execute(f"DELETE FROM Person AS p WHERE p.n = {n - 1}")
        tx.commit()
    arn = source.stream_arn()
    values = [v for block in source.blocks() for v in block.stream_records(arn)]
    return source, values


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=7)
        return self.now


def _ms(value: datetime) -> Timestamp:
    v = value.astimezone(UTC)
    return Timestamp(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond - v.microsecond % 1000,
        tzinfo=UTC, precision=TimestampPrecision.SECOND, fractional_precision=3,
    )  # fmt: skip


def _ion(value: Any) -> Any:
    return simpleion.loads(simpleion.dumps(value))


def _hash(value: Any) -> bytes:
    return bytes(_ion(value).ion_hash("SHA256"))


@lru_cache(maxsize=64)
def _text_hash(text: str) -> bytes:
    return _hash(text)


def _fake(*parts: Any) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()


def paging_chain(blocks: int, statements: int) -> list[list[Any]]:
    """``blocks`` consecutive blocks of one strand (block 1 creates the table), each with
    ``statements`` statements; every block's stream records (summary first) as Ion values."""
    previous = _fake("genesis")
    out: list[list[Any]] = []
    for seq in range(1, blocks + 1):
        commit = T0 + timedelta(seconds=seq)
        tx_id = f"tx{seq:020d}"
        address = {"strandId": PAGING_STRAND, "sequenceNo": seq}
        if seq == 1:
            texts: Sequence[str] = ["CREATE TABLE Item"]
        else:
            texts = [SELECT] * (statements - 1) + [f"INSERT INTO Item << {{'k': {seq}}} >>"]
        payload: dict[str, Any] = {
            "blockAddress": address,
            "transactionId": tx_id,
            "blockTimestamp": _ms(commit),
            "transactionInfo": {
                "statements": [
                    {
                        "statement": text,
                        "startTime": _ms(commit - timedelta(milliseconds=len(texts) + 5 - i)),
                        "statementDigest": _text_hash(text),
                    }
                    for i, text in enumerate(texts)
                ]
            },
        }
        entries = [_fake("entry", seq)]
        records: list[Any] = []
        if seq > 1:
            doc_id = f"Item{seq:018d}"
            data = {"k": seq}
            meta = {"id": doc_id, "version": 0, "txTime": _ms(commit), "txId": tx_id}
            rev_hash = dot(_hash(data), _hash(meta))
            entries.append(rev_hash)
            payload["revisionSummaries"] = [{"hash": rev_hash, "documentId": doc_id}]
            payload["transactionInfo"]["documents"] = {
                doc_id: {
                    "tableName": "Item",
                    "tableId": "ItemTable0000000000000",
                    "statements": [len(texts) - 1],
                }
            }
            records.append(
                {
                    "qldbStreamArn": PAGING_ARN,
                    "recordType": "REVISION_DETAILS",
                    "payload": {
                        "tableInfo": {"tableName": "Item", "tableId": "ItemTable0000000000000"},
                        "revision": {
                            "blockAddress": address,
                            "hash": rev_hash,
                            "data": data,
                            "metadata": meta,
                        },
                    },
                }
            )
        entries_hash = merkle_root(entries)
        this = block_hash(entries_hash, previous)
        payload.update(
            blockHash=this,
            entriesHash=entries_hash,
            previousBlockHash=previous,
            entriesHashList=entries,
        )
        previous = this
        summary = {"qldbStreamArn": PAGING_ARN, "recordType": "BLOCK_SUMMARY", "payload": payload}
        out.append([summary, *records])
    return out
