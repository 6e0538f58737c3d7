"""Builders of hostile stream input around a real simulated stream (real Ion, real QLDB hashes),
for the hostile-input and fuzz tests: the stream's user records, Kinesis entries, records with a
field changed, aggregates damaged in chosen ways, and Ion nested to a chosen depth."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from buffer.port import Incoming
from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from ingest import kpl
from ingest.decode import decode_kinesis_data
from journal.hashes import block_hash
from journal.records import BlockSummary, RevisionDetails
from qldb_settle.simulate import SimulationConfig, simulate
from settler.compare import compare, documents_of_ledger
from settler.cycle import SettlePolicy, settle
from settler.cycle_report import SettleReport

from .streams import user_records

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
ARRIVAL = 1793523600.0  # 2026-11-01T09:00Z, the simulator's epoch


@dataclass(frozen=True, slots=True)
class Stream:
    """A small simulated stream: its source ledger, its user records in arrival order (each
    once), and the decoded record of each by record id."""

    source: Path
    raws: tuple[bytes, ...]
    records: Mapping[str, Incoming]

    def __repr__(self) -> str:  # short: hypothesis prints it with a failing example
        return f"Stream({len(self.raws)} records, source={self.source})"

    def blocks(self) -> list[BlockSummary]:
        found = [i.record for i in self.records.values() if isinstance(i.record, BlockSummary)]
        return sorted(found, key=lambda b: b.address.sequence_no)

    def revisions_of(self, block: BlockSummary) -> list[Incoming]:
        return [
            i
            for i in self.records.values()
            if isinstance(i.record, RevisionDetails) and i.record.block_id == block.block_id
        ]

    def raw_of(self, record_id: str) -> bytes:
        return self.records[record_id].raw


def simulated_stream(out: Path, *, transactions: int = 30, seed: int = 4) -> Stream:
    """One shard, no duplicates, read-only blocks streamed (no gaps in sequence numbers), so a
    single settle cycle replays the whole stream when nothing hostile is in it."""
    sim = simulate(
        out,
        SimulationConfig(
            transactions=transactions,
            shards=1,
            dup_rate=0.0,
            max_delay_ms=500,
            stream_read_only=True,
            param_rate=0.5,
            seed=seed,
        ),
    )
    raws: list[bytes] = []
    records: dict[str, Incoming] = {}
    for path in sim.event_paths:
        for _shard, raw in user_records(json.loads(path.read_text(encoding="utf-8"))):
            (item,) = decode_kinesis_data(raw, origin="simulation")
            assert isinstance(item, Incoming)
            if item.record.record_id not in records:
                records[item.record.record_id] = item
                raws.append(raw)
    return Stream(source=sim.source_path, raws=tuple(raws), records=records)


# --- Ion ------------------------------------------------------------------------------------------


def ion(raw: bytes) -> Any:
    return simpleion.loads(raw)


def binary(value: Any) -> bytes:
    return bytes(simpleion.dumps(value, binary=True))


def altered(raw: bytes, change: Callable[[Any], None]) -> bytes:
    """The record re-encoded after ``change`` mutated its Ion value in place."""
    value = ion(raw)
    change(value)
    return binary(value)


def _varuint(n: int) -> bytes:
    out = [n & 0x7F | 0x80]
    n >>= 7
    while n:
        out.append(n & 0x7F)
        n >>= 7
    return bytes(reversed(out))


def _header(type_code: int, length: int) -> bytes:
    if length < 14:
        return bytes([type_code << 4 | length])
    return bytes([type_code << 4 | 14]) + _varuint(length)


def nested_list(depth: int) -> bytes:
    """Ion binary of a string inside ``depth`` nested lists (no recursion to build it)."""
    body = b"\x84leaf"
    for _ in range(depth):
        body = _header(0xB, len(body)) + body
    return body


def with_nested_data(raw: bytes, depth: int) -> bytes:
    """A REVISION_DETAILS record whose data gains a field nested ``depth`` lists deep. amazon.ion
    cannot write that deep (it recurses), so a blob of exactly the same encoded length is written
    in its place and its bytes swapped for the nested lists: every enclosing length stays right."""
    deep = nested_list(depth)
    n = len(deep) - 2
    while 1 + len(_varuint(n)) + n != len(deep):
        n -= 1
    placeholder = (b"\xfe\xed" * len(deep))[:n]

    def add(value: Any) -> None:
        value["payload"]["revision"]["data"]["Deep"] = placeholder

    encoded = altered(raw, add)
    blob = _header(0xA, n) + placeholder
    assert encoded.count(blob) == 1
    return encoded.replace(blob, deep)


# --- hashes ---------------------------------------------------------------------------------------


def unchained(raw: bytes) -> bytes:
    """A block summary whose ``previousBlockHash`` names another block, its ``blockHash``
    recomputed so the block is consistent in itself: only the chain link can tell."""

    def change(value: Any) -> None:
        payload = value["payload"]
        previous = hashlib.sha256(b"not the previous block").digest()
        payload["previousBlockHash"] = previous
        payload["blockHash"] = block_hash(bytes(payload["entriesHash"]), previous)

    return altered(raw, change)


def wrong_block_hash(raw: bytes) -> bytes:
    def change(value: Any) -> None:
        value["payload"]["blockHash"] = hashlib.sha256(b"some other block").digest()

    return altered(raw, change)


# --- Kinesis --------------------------------------------------------------------------------------


def aggregate(raws: Sequence[bytes]) -> bytes:
    return kpl.aggregate([(f"{i:064x}", r) for i, r in enumerate(raws)])


def protobuf_broken_md5_right(raws: Sequence[bytes]) -> bytes:
    """A KPL aggregate whose record 0 claims more bytes than the protobuf holds, with the MD5
    computed over those broken bytes (so only the protobuf decoder can refuse it)."""
    good = aggregate(raws)
    body = bytearray(good[len(kpl.MAGIC) : -16])
    # records (field 3) come after the key table; make the first record's length overshoot.
    at = body.index(0x1A)
    body[at + 1] = 0x7F
    body = body[: at + 40]
    return kpl.MAGIC + bytes(body) + hashlib.md5(bytes(body), usedforsecurity=False).digest()


def kinesis_entry(data: bytes | str, *, seq: int, shard: int = 0) -> dict[str, Any]:
    """One ``Records`` entry of a Lambda Kinesis event (``data`` as a string: sent as given)."""
    seq_no = f"4980{seq:052d}"
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": f"{seq:064x}",
            "sequenceNumber": seq_no,
            "data": data if isinstance(data, str) else base64.b64encode(data).decode("ascii"),
            "approximateArrivalTimestamp": ARRIVAL + seq,
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-{shard:012d}:{seq_no}",
        "eventName": "aws:kinesis:record",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:000000000000:stream/hostile",
    }


def event(datas: Sequence[bytes | str]) -> dict[str, Any]:
    return {"Records": [kinesis_entry(d, seq=i) for i, d in enumerate(datas)]}


def packed(raws: Sequence[bytes], size: int = 5) -> list[bytes]:
    """The stream's user records as Kinesis data: runs of ``size`` in one aggregate."""
    return [
        aggregate(raws[i : i + size]) if len(raws[i : i + size]) > 1 else raws[i]
        for i in range(0, len(raws), size)
    ]


# --- the pipeline ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Pipeline:
    buffer: SqliteBuffer
    destination: EmbeddedDestination

    @classmethod
    def open(cls, directory: Path) -> Pipeline:
        return cls(
            SqliteBuffer(directory / "buffer.db"), EmbeddedDestination(directory / "replica.db")
        )

    def settle(self) -> SettleReport:
        return settle(
            self.buffer, self.destination, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=0)
        )

    def documents(self) -> list[tuple[str, Any]]:
        return [(table, data) for table, _id, data in self.destination.documents()]

    def equals_source(self, source: Path) -> bool:
        return compare("source", documents_of_ledger(source), self.documents()).equal

    def close(self) -> None:
        self.buffer.close()
        self.destination.close()
