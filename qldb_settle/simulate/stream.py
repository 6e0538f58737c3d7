"""A hostile Kinesis transport for simulated QLDB stream records.

What it models, each from RECORDS.md / DESIGN.md:

- QLDB emits every stream record at least once and not in order: each record leaves some
  random time after its block's commit, and with ``dup_rate`` a second copy leaves later still.
- Each emitted record carries a fresh random 64-hex partition key, so the records of one
  transaction land on different shards; a shard is chosen by the MD5 of the key, as Kinesis does.
- With ``aggregate_rate`` records that reach a shard close together are packed into one KPL
  aggregate (mixing transactions), as the KPL does.
- Within a shard Kinesis keeps order; Lambda reads each shard in batches (one shard per event),
  and now and then a whole batch is delivered again (a retried invocation).

Everything is driven by one ``random.Random`` so a seed reproduces a run exactly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.kpl import aggregate

REGION = "us-east-1"
ACCOUNT = "000000000000"
KINESIS_STREAM = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/qldb-settle-simulated"
MAX_AGGREGATE_RECORDS = 25
MAX_AGGREGATE_BYTES = 50_000
AGGREGATE_SPAN_MS = 250


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    shards: int = 4
    dup_rate: float = 0.15
    aggregate_rate: float = 0.5
    max_delay_ms: int = 20_000
    batch_size: int = 100
    batch_window_ms: int = 1_000
    redelivery_rate: float = 0.03


@dataclass(frozen=True, slots=True, kw_only=True)
class Emission:
    """One stream record put into Kinesis by QLDB."""

    at_ms: int
    partition_key: str
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class KinesisRecord:
    shard: int
    sequence_number: str
    partition_key: str
    arrival_ms: int
    data: bytes
    user_records: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LambdaEvent:
    """What one invocation of the ingest Lambda receives: a batch of one shard."""

    delivered_ms: int
    shard: int
    records: tuple[KinesisRecord, ...]
    redelivery: bool = False

    def to_json(self) -> dict[str, Any]:
        shard_id = f"shardId-{self.shard:012d}"
        return {
            "Records": [
                {
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "partitionKey": r.partition_key,
                        "sequenceNumber": r.sequence_number,
                        "data": base64.b64encode(r.data).decode("ascii"),
                        "approximateArrivalTimestamp": r.arrival_ms / 1000,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": f"{shard_id}:{r.sequence_number}",
                    "eventName": "aws:kinesis:record",
                    "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/qldb-settle-ingest",
                    "awsRegion": REGION,
                    "eventSourceARN": KINESIS_STREAM,
                }
                for r in self.records
            ]
        }


def partition_key(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def shard_of(key: str, shards: int) -> int:
    """Kinesis maps the MD5 of the partition key onto equal hash-key ranges."""
    return int.from_bytes(hashlib.md5(key.encode()).digest(), "big") * shards >> 128


def emit(
    records: Iterable[tuple[int, bytes]], config: TransportConfig, rng: random.Random
) -> list[Emission]:
    """QLDB's side: each (commit time ms, Ion binary record) leaves once, sometimes twice."""
    out: list[Emission] = []
    for commit_ms, data in records:
        at = commit_ms + rng.randint(20, max(20, config.max_delay_ms))
        out.append(Emission(at_ms=at, partition_key=partition_key(rng), data=data))
        if rng.random() < config.dup_rate:
            again = at + rng.randint(100, max(100, config.max_delay_ms))
            out.append(Emission(at_ms=again, partition_key=partition_key(rng), data=data))
    out.sort(key=lambda e: (e.at_ms, e.partition_key))
    return out


def to_kinesis(
    emissions: Sequence[Emission], config: TransportConfig, rng: random.Random
) -> list[KinesisRecord]:
    """Kinesis' side: shard by key, aggregate some neighbours, number in shard order."""
    per_shard: dict[int, list[Emission]] = {}
    for e in emissions:
        per_shard.setdefault(shard_of(e.partition_key, config.shards), []).append(e)
    out: list[KinesisRecord] = []
    for shard, items in sorted(per_shard.items()):
        counter = 0
        i = 0
        while i < len(items):
            group = [items[i]]
            if rng.random() < config.aggregate_rate:
                size = len(items[i].data)
                j = i + 1
                while (
                    j < len(items)
                    and len(group) < MAX_AGGREGATE_RECORDS
                    and items[j].at_ms - items[i].at_ms <= AGGREGATE_SPAN_MS
                    and size + len(items[j].data) <= MAX_AGGREGATE_BYTES
                ):
                    size += len(items[j].data)
                    group.append(items[j])
                    j += 1
            i += len(group)
            counter += 1
            if len(group) == 1:
                data = group[0].data
            else:
                data = aggregate([(g.partition_key, g.data) for g in group])
            out.append(
                KinesisRecord(
                    shard=shard,
                    sequence_number=f"4960{shard:04d}{counter:048d}",
                    partition_key=group[0].partition_key,
                    arrival_ms=group[-1].at_ms,
                    data=data,
                    user_records=len(group),
                )
            )
    return out


def to_events(
    records: Sequence[KinesisRecord], config: TransportConfig, rng: random.Random
) -> list[LambdaEvent]:
    """Lambda's side: per shard, batches in shard order; some batches delivered twice."""
    per_shard: dict[int, list[KinesisRecord]] = {}
    for r in records:
        per_shard.setdefault(r.shard, []).append(r)
    events: list[LambdaEvent] = []
    for shard, items in sorted(per_shard.items()):
        i = 0
        while i < len(items):
            first = items[i]
            batch = [first]
            j = i + 1
            while (
                j < len(items)
                and len(batch) < config.batch_size
                and items[j].arrival_ms - first.arrival_ms <= config.batch_window_ms
            ):
                batch.append(items[j])
                j += 1
            i = j
            delivered = batch[-1].arrival_ms + config.batch_window_ms
            events.append(LambdaEvent(delivered_ms=delivered, shard=shard, records=tuple(batch)))
            if rng.random() < config.redelivery_rate:
                later = delivered + rng.randint(1_000, 30_000)
                events.append(
                    LambdaEvent(
                        delivered_ms=later, shard=shard, records=tuple(batch), redelivery=True
                    )
                )
    events.sort(key=lambda e: (e.delivered_ms, e.shard, e.records[0].sequence_number))
    return events


def write_events(events: Sequence[LambdaEvent], directory: Path) -> list[Path]:
    """``DIR/events/NNNNNN-<delivered ms>-shard-<k>.json``: file name order is arrival order."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for n, event in enumerate(events):
        path = directory / f"{n:06d}-{event.delivered_ms:013d}-shard-{event.shard}.json"
        path.write_text(json.dumps(event.to_json()), encoding="utf-8")
        paths.append(path)
    return paths
