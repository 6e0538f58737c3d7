"""Event files of the campaign: when each simulated event was delivered, events that deliver
records again, and a stream split into what arrives on time and what arrives hours late.

Every event written here has the shape the simulator writes (``LambdaEvent.to_json``): a Lambda
Kinesis event of one shard, records as KPL aggregates or single Ion binary user records."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import Any

from ingest import kpl
from ingest.decode import decode_kinesis_data
from qldb_settle.simulate.stream import KinesisRecord, LambdaEvent, partition_key

_NAME = re.compile(r"^(\d+)-(\d{13})-shard-(\d+)\.json$")


def delivered_at(path: Path) -> datetime:
    """The delivery instant the simulator wrote into the file name (``NNNNNN-<ms>-shard-K``)."""
    m = _NAME.match(path.name)
    if m is None:
        raise ValueError(f"{path.name}: not a simulated event file name")
    return datetime.fromtimestamp(int(m.group(2)) / 1000, UTC)


def iso(value: datetime) -> str:
    v = value.astimezone(UTC)
    return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}Z"


def write_event(
    path: Path, delivered: datetime, shard: int, records: Sequence[KinesisRecord]
) -> Path:
    event = LambdaEvent(
        delivered_ms=int(delivered.timestamp() * 1000), shard=shard, records=tuple(records)
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(event.to_json()), encoding="utf-8")
    return path


def pack(
    raws: Sequence[bytes], rng: Random, *, at: datetime, shard: int, first_seq: int
) -> list[KinesisRecord]:
    """User records into Kinesis records: runs of up to 8 in one KPL aggregate, some alone,
    each user record with a fresh random partition key (as QLDB writes them)."""
    out: list[KinesisRecord] = []
    i = 0
    arrival = int(at.timestamp() * 1000)
    while i < len(raws):
        n = rng.randint(1, 8)
        group = list(raws[i : i + n])
        i += len(group)
        keys = [partition_key(rng) for _ in group]
        data = group[0] if len(group) == 1 else kpl.aggregate(list(zip(keys, group, strict=True)))
        out.append(
            KinesisRecord(
                shard=shard,
                sequence_number=f"4970{shard:04d}{first_seq + len(out):048d}",
                partition_key=keys[0],
                arrival_ms=arrival,
                data=data,
                user_records=len(group),
            )
        )
    return out


def redelivery(
    directory: Path, name: str, raws: Sequence[bytes], rng: Random, *, at: datetime
) -> Path:
    """One event delivering ``raws`` again (new partition keys, new aggregates)."""
    shuffled = list(raws)
    rng.shuffle(shuffled)
    records = pack(shuffled, rng, at=at, shard=7, first_seq=rng.randrange(10**9))
    return write_event(directory / f"{name}.json", at, 7, records)


def user_records(event: Any) -> Iterable[tuple[int, bytes]]:
    """(shard, user record) of every Kinesis record of a simulated event, aggregates opened."""
    for entry in event["Records"]:
        shard = int(entry["eventID"].split(":")[0].rsplit("-", 1)[1])
        data = base64.b64decode(entry["kinesis"]["data"], validate=True)
        if kpl.is_aggregate(data):
            for user in kpl.deaggregate(data):
                yield shard, user.data
        else:
            yield shard, data


def block_of(raw: bytes) -> str:
    (item,) = decode_kinesis_data(raw, origin="chaos")
    record = getattr(item, "record", None)
    if record is None:
        raise ValueError(f"a simulated record did not decode: {getattr(item, 'reason', '?')}")
    return str(record.block_id) if hasattr(record, "block_id") else ""


def split_late(
    events: Sequence[Path], late_blocks: set[str], out: Path, rng: Random, *, late_at: datetime
) -> tuple[list[Path], list[Path], int]:
    """Rewrite the stream without the records of ``late_blocks`` (same files, same delivery
    instants, aggregates rebuilt from what is left) into ``out/on-time``, and deliver every record
    of those blocks at ``late_at`` in ``out/late``. Returns both file lists and how many records
    (copies included) were held back."""
    on_time: list[Path] = []
    held: list[bytes] = []
    for n, path in enumerate(events):
        event = json.loads(path.read_text(encoding="utf-8"))
        kept: dict[int, list[bytes]] = {}
        for shard, raw in user_records(event):
            if block_of(raw) in late_blocks:
                held.append(raw)
            else:
                kept.setdefault(shard, []).append(raw)
        at = delivered_at(path)
        for shard, raws in sorted(kept.items()):
            records = pack(raws, rng, at=at, shard=shard, first_seq=n * 1000)
            name = f"{n:06d}-{int(at.timestamp() * 1000):013d}-shard-{shard}.json"
            on_time.append(write_event(out / "on-time" / name, at, shard, records))
    late_name = f"{len(events):06d}-{int(late_at.timestamp() * 1000):013d}-shard-7.json"
    late = [redelivery(out / "late", late_name.removesuffix(".json"), held, rng, at=late_at)]
    return on_time, late, len(held)
