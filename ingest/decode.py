"""Decode what the stream delivers into records for the buffer, or rejections with their reason.

Three sources, one outcome (a sequence of ``Incoming`` and ``Rejection`` items, nothing dropped):

- a Lambda Kinesis event (``{"Records": [{"kinesis": {...}}, ...]}``): strict base64, then a KPL
  aggregate (``ingest.kpl``) or one Ion binary user record;
- a raw Ion file, text or binary, holding one or many top-level records;
- a Firehose backup object: Ion binary streams written one after the other, plain or GZIP.

Each user record must be exactly one Ion struct that ``journal.records.record_from_ion`` accepts.
``Incoming.raw`` is the record's Ion binary as received (an Ion text record, or one of several
records after a single version marker, is written back to Ion binary). Only
``amazon.ion`` is used (no ionhash, no pyqldb): this runs in the ingest Lambda with amazon.ion
0.15 and its C extension, and locally with 0.9.3.

What one Ion binary user record costs: one pass over its bytes (``journal.ion_binary.one_pass``)
checks its structure, reads its values and writes their canonical encoding together, then the
typed record is built from those values and the fingerprint hashed from that encoding, and each
statement of a block summary is classified (by its shape, ``ledger.classify``). Only a record
that pass does not read (malformed, invalid, or of a rare shape) takes the general path: the
structure check (``journal.ion_binary.check``: amazon.ion 0.15's C extension can hang on
malformed binary), amazon.ion's parse (or the fast reader of ``journal.ion_binary`` with 0.9.3),
``record_from_ion`` and ``record_fingerprint``, which give the same record or the rejection with
its reason.

A file that is none of these at all raises ``journal.errors.InputError``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import logging
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from amazon.ion import simpleion

from buffer.port import Incoming, Rejection
from ingest import kpl
from journal.canonical import record_fingerprint, record_fingerprint_of_fields
from journal.errors import DecodeError, InputError, RecordError
from journal.ion_binary import BVM, IonBinaryError, check, decode_all, segments
from journal.ion_binary.one_pass import read_record
from journal.records import RECORD_TYPES, BlockSummary, StreamRecord, record_from_ion

log = logging.getLogger(__name__)

DecodedItem = Incoming | Rejection

# Kinesis' limit on the data of one record (the partition key is not counted here).
MAX_KINESIS_DATA = 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True, kw_only=True)
class KinesisDecoded:
    """The items decoded from one Kinesis record of an event, with its sequence number (the
    handler reports failures by it)."""

    sequence_number: str | None
    items: tuple[DecodedItem, ...]


# --- one user record ----------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _statement_kind(text: str) -> str:
    from ledger.classify import statement_kind

    try:
        return statement_kind(text)
    except Exception:  # a classifier bug must not block the shard; the settler then replays
        log.exception("classify failed; statement kept as 'unsupported': %.200r", text)
        return "unsupported"


def _is_statement_limit(exc: RecordError) -> bool:
    return exc.field.endswith(".statement") and "over QLDB's limit" in exc.reason


def _ion_kind(value: Any) -> str:
    t = getattr(value, "ion_type", None)
    return t.name.lower() if t is not None else type(value).__name__


def record_item(
    value: Any, *, raw: bytes, origin: str, arrived_at: datetime | None = None
) -> DecodedItem:
    """One top-level Ion value → ``Incoming``, or a ``Rejection`` saying why not."""

    def reject(kind: str, reason: str) -> Rejection:
        return Rejection(origin=origin, raw=raw, kind=kind, reason=reason, arrived_at=arrived_at)

    if not isinstance(value, Mapping):
        return reject("ion", f"the top-level value is {_ion_kind(value)}, not a struct")
    record_type = value.get("recordType")
    if isinstance(record_type, str) and record_type not in RECORD_TYPES:
        return reject(
            "record-type",
            f"recordType {record_type[:60]!r} is not one of {', '.join(RECORD_TYPES)}",
        )
    try:
        record = record_from_ion(value)
    except RecordError as exc:
        return reject("oversized" if _is_statement_limit(exc) else "field", str(exc))
    try:
        fingerprint = record_fingerprint(value)
    except (TypeError, ValueError) as exc:  # a value amazon.ion produced but we cannot encode
        return reject("ion", f"cannot fingerprint the record: {exc}")
    return _incoming(record, fingerprint, raw=raw, origin=origin, arrived_at=arrived_at)


def _incoming(
    record: StreamRecord, fingerprint: str, *, raw: bytes, origin: str, arrived_at: datetime | None
) -> Incoming:
    kinds: tuple[str, ...] = ()
    if isinstance(record, BlockSummary):
        kinds = tuple(_statement_kind(s.text) for s in record.statements)
    return Incoming(
        record=record,
        raw=raw,
        fingerprint=fingerprint,
        origin=origin,
        arrived_at=arrived_at,
        statement_kinds=kinds,
    )


ONE_PASS = True
"""Whether user records are first read in one pass (read at each call, so a test may compare the
outcomes with and without it)."""


def _one_pass_item(data: bytes, *, origin: str, arrived_at: datetime | None) -> Incoming | None:
    """The record read by one pass over its bytes (``journal.ion_binary.one_pass``: structure,
    values and fingerprint together), or None when that pass does not read it or the record is
    not valid: the general path (check, parse, ``record_item``) then decides, and gives the
    rejection with its reason. Where both read a record they give the same ``Incoming``."""
    if not ONE_PASS:
        return None
    read = read_record(data)
    if read is None:
        return None
    fields, data_ion = read
    value = {name: v for name, v, _ in fields}
    if value.get("recordType") not in RECORD_TYPES:
        return None
    try:
        record = record_from_ion(value, data_ion=data_ion)
        fingerprint = record_fingerprint_of_fields(fields)
    except (RecordError, TypeError):
        return None
    return _incoming(record, fingerprint, raw=data, origin=origin, arrived_at=arrived_at)


def _load_ion(data: bytes) -> list[Any]:
    # Binary input has passed the structure check first (0.15's C extension can hang on malformed
    # binary). ``decode_all`` gives what ``simpleion.loads(data, single_value=False)`` gives, fast
    # with amazon.ion 0.9.3 (journal.ion_binary). amazon.ion raises many exception types on
    # corrupt input (IonException, ValueError, IndexError, struct.error, UnicodeDecodeError...),
    # differently in 0.9.3 and 0.15: the caller turns any of them into a rejection naming the type.
    return decode_all(data)


def decode_user_record(
    data: bytes, *, origin: str, arrived_at: datetime | None = None
) -> DecodedItem:
    """One Kinesis user record (one complete Ion binary stream holding one struct)."""
    item = _one_pass_item(data, origin=origin, arrived_at=arrived_at)
    if item is not None:
        return item
    if data[:4] != BVM:
        return Rejection(
            origin=origin,
            raw=data,
            kind="ion",
            reason=(
                "not Ion binary: does not start with the version marker e00100ea "
                f"(starts with {data[:4].hex() or 'nothing'})"
            ),
            arrived_at=arrived_at,
        )
    try:
        check(data)
        values = _load_ion(data)
    except IonBinaryError as exc:
        return Rejection(
            origin=origin, raw=data, kind="ion", reason=f"invalid Ion binary: {exc}",
            arrived_at=arrived_at,
        )  # fmt: skip
    except Exception as exc:
        return Rejection(
            origin=origin,
            raw=data,
            kind="ion",
            reason=f"invalid Ion binary: {type(exc).__name__}: {str(exc)[:200]}".rstrip(": "),
            arrived_at=arrived_at,
        )
    if len(values) != 1:
        return Rejection(
            origin=origin,
            raw=data,
            kind="ion",
            reason=f"holds {len(values)} top-level values; a stream record is exactly one struct",
            arrived_at=arrived_at,
        )
    return record_item(values[0], raw=data, origin=origin, arrived_at=arrived_at)


def decode_kinesis_data(
    data: bytes, *, origin: str, arrived_at: datetime | None = None
) -> list[DecodedItem]:
    """The decoded data of one Kinesis record: a KPL aggregate (each user record's origin gets
    ``/<sub-sequence number>``) or one user record."""
    if len(data) > MAX_KINESIS_DATA:
        return [
            Rejection(
                origin=origin,
                raw=data,
                kind="oversized",
                reason=f"Kinesis record data is {len(data)} bytes, over the 1 MiB limit "
                f"({MAX_KINESIS_DATA})",
                arrived_at=arrived_at,
            )
        ]
    if kpl.is_aggregate(data):
        try:
            users = kpl.deaggregate(data)
        except DecodeError as exc:
            return [
                Rejection(
                    origin=origin, raw=data, kind="aggregate", reason=exc.reason,
                    arrived_at=arrived_at,
                )
            ]  # fmt: skip
        return [
            decode_user_record(u.data, origin=f"{origin}/{u.index}", arrived_at=arrived_at)
            for u in users
        ]
    return [decode_user_record(data, origin=origin, arrived_at=arrived_at)]


# --- Lambda Kinesis events ----------------------------------------------------------------------


def _json_raw(value: Any) -> bytes:
    try:
        return json.dumps(value, sort_keys=True, default=repr).encode("utf-8")
    except (TypeError, ValueError):
        return repr(value).encode("utf-8", "replace")


def _arrival(value: Any) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"is not a number ({type(value).__name__})")
    return datetime.fromtimestamp(float(value), tz=UTC)


def decode_kinesis_record(
    record: Mapping[str, Any], *, origin: str | None = None
) -> KinesisDecoded:
    """One entry of a Lambda Kinesis event's ``Records`` (or a dict of the same shape, such as
    ``aws_kinesis_agg`` output). ``origin`` defaults to ``<shardId>/<sequenceNumber>`` (from
    ``eventID``), plus ``/<subSequenceNumber>`` when the entry carries one."""
    kinesis = record.get("kinesis") if isinstance(record, Mapping) else None
    seq = kinesis.get("sequenceNumber") if isinstance(kinesis, Mapping) else None
    seq = seq if isinstance(seq, str) and seq else None
    if origin is None:
        event_id = record.get("eventID") if isinstance(record, Mapping) else None
        shard = (
            event_id.split(":", 1)[0] if isinstance(event_id, str) and event_id else "unknown-shard"
        )
        origin = f"{shard}/{seq or 'unknown-sequence'}"
    if isinstance(kinesis, Mapping) and isinstance(kinesis.get("subSequenceNumber"), int):
        origin = f"{origin}/{kinesis['subSequenceNumber']}"

    def reject(kind: str, reason: str) -> KinesisDecoded:
        return KinesisDecoded(
            sequence_number=seq,
            items=(Rejection(origin=origin, raw=_json_raw(record), kind=kind, reason=reason),),
        )

    if not isinstance(kinesis, Mapping):
        return reject("json", "the record has no kinesis object")
    if seq is None:
        return reject("json", "kinesis.sequenceNumber is missing or not a string")
    arrived_at: datetime | None = None
    if kinesis.get("approximateArrivalTimestamp") is not None:
        try:
            arrived_at = _arrival(kinesis["approximateArrivalTimestamp"])
        except (TypeError, ValueError, OverflowError, OSError) as exc:
            return reject("json", f"kinesis.approximateArrivalTimestamp {exc}")
    data = kinesis.get("data")
    if not isinstance(data, str):
        return reject("json", "kinesis.data is missing or not a string")
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        return KinesisDecoded(
            sequence_number=seq,
            items=(
                Rejection(
                    origin=origin,
                    raw=data.encode("utf-8"),
                    kind="base64",
                    reason=f"kinesis.data is not valid base64: {exc} (starts with {data[:16]!r})",
                    arrived_at=arrived_at,
                ),
            ),
        )
    return KinesisDecoded(
        sequence_number=seq,
        items=tuple(decode_kinesis_data(decoded, origin=origin, arrived_at=arrived_at)),
    )


def _event_records(event: Any, name: str) -> Sequence[Any]:
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise InputError(f"{name}: not a Lambda Kinesis event (no Records list)")
    records: list[Any] = event["Records"]
    if records and not any(isinstance(r, Mapping) and "kinesis" in r for r in records):
        first = records[0]
        source = first.get("eventSource") if isinstance(first, Mapping) else None
        if source == "aws:sqs":
            raise InputError(
                f"{name}: an SQS message (eventSource aws:sqs), not a Kinesis event; an "
                "on-failure destination message holds no record data, only the shard and "
                "sequence range to re-read (qldb-settle redrive)"
            )
        raise InputError(
            f"{name}: not a Lambda Kinesis event (no record has a kinesis object"
            + (f"; eventSource {source!r})" if source else ")")
        )
    return records


def decode_kinesis_event(event: Any, *, name: str | None = None) -> list[KinesisDecoded]:
    """A Lambda Kinesis event, record by record. With ``name`` (a file), origins are
    ``<name>#Records[i]``; without, ``<shardId>/<sequenceNumber>``. Raises ``InputError`` when
    ``event`` is not a Kinesis event at all."""
    records = _event_records(event, name or "event")
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            out.append(
                KinesisDecoded(
                    sequence_number=None,
                    items=(
                        Rejection(
                            origin=f"{name or 'event'}#Records[{i}]",
                            raw=_json_raw(rec),
                            kind="json",
                            reason=f"Records[{i}] is not an object",
                        ),
                    ),
                )
            )
            continue
        out.append(decode_kinesis_record(rec, origin=f"{name}#Records[{i}]" if name else None))
    return out


def decode_event(event: Any, *, name: str | None = None) -> list[DecodedItem]:
    """``decode_kinesis_event`` flattened."""
    return [item for rec in decode_kinesis_event(event, name=name) for item in rec.items]


# --- files --------------------------------------------------------------------------------------


def _decode_ion_binary(data: bytes, name: str) -> list[DecodedItem]:
    """Concatenated Ion binary streams (a Firehose object, or a binary .ion file)."""
    items: list[DecodedItem] = []
    n = 0
    for seg in segments(data):
        chunk = data[seg.start : seg.end]
        origin = f"{name}#{n}"
        if seg.error is not None:
            items.append(
                Rejection(
                    origin=origin,
                    raw=chunk,
                    kind="ion",
                    reason=f"invalid Ion binary at byte {seg.start}: {seg.error}",
                )
            )
            n += 1
            continue
        one = _one_pass_item(chunk, origin=origin, arrived_at=None)
        if one is not None:
            items.append(one)
            n += 1
            continue
        try:
            check(chunk)
            values = _load_ion(chunk)
        except IonBinaryError as exc:
            items.append(
                Rejection(
                    origin=origin, raw=chunk, kind="ion",
                    reason=f"invalid Ion binary at byte {seg.start}: {exc}",
                )
            )  # fmt: skip
            n += 1
            continue
        except Exception as exc:  # see _load_ion
            items.append(
                Rejection(
                    origin=origin,
                    raw=chunk,
                    kind="ion",
                    reason=f"invalid Ion binary at byte {seg.start}: {type(exc).__name__}: "
                    f"{str(exc)[:200]}".rstrip(": "),
                )
            )
            n += 1
            continue
        if len(values) == 1:
            items.append(record_item(values[0], raw=chunk, origin=origin))
            n += 1
            continue
        for value in values:  # several records after one version marker
            items.append(_record_from_value(value, f"{name}#{n}"))
            n += 1
    return items


def _record_from_value(value: Any, origin: str) -> DecodedItem:
    try:
        raw = simpleion.dumps(value, binary=True)
    except Exception as exc:  # a value amazon.ion read but cannot write back
        return Rejection(
            origin=origin, raw=repr(value).encode("utf-8", "replace"), kind="ion",
            reason=f"cannot be written back as Ion binary: {type(exc).__name__}: {exc}",
        )  # fmt: skip
    return record_item(value, raw=raw, origin=origin)


def _decode_text(text: str, name: str) -> list[DecodedItem]:
    stripped = text.lstrip()
    try:
        as_json = json.loads(stripped)
    except ValueError:
        pass
    else:
        if isinstance(as_json, Mapping) and "Records" in as_json:
            return decode_event(as_json, name=name)
        if name.endswith(".json"):
            raise InputError(f"{name}: JSON, but not a Lambda Kinesis event (no Records list)")
    try:
        values = simpleion.loads(text, single_value=False)
    except Exception as exc:  # see _load_ion
        raise InputError(
            f"{name}: neither a Lambda Kinesis event (JSON), Ion text nor Ion binary "
            f"({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if not values:
        raise InputError(f"{name}: Ion text without any value")
    return [_record_from_value(v, f"{name}#{i}") for i, v in enumerate(values)]


def decode_bytes(content: bytes, *, name: str) -> list[DecodedItem]:
    """A whole input file: a Lambda Kinesis event (JSON), Ion text or binary, or a Firehose
    backup object (plain or GZIP). Raises ``InputError`` when it is none of them."""
    if not content:
        raise InputError(f"{name}: empty file")
    if content[:2] == GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (OSError, EOFError, zlib.error) as exc:
            return [
                Rejection(
                    origin=name, raw=content, kind="gzip",
                    reason=f"GZIP object cannot be decompressed: {type(exc).__name__}: {exc}",
                )
            ]  # fmt: skip
        if not content:
            raise InputError(f"{name}: GZIP object holding nothing")
    if content[:4] == BVM:
        return _decode_ion_binary(content, name)
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(
            f"{name}: neither a Lambda Kinesis event (JSON), Ion text nor Ion binary "
            f"(not UTF-8 text and no Ion version marker; starts with {content[:8].hex()})"
        ) from None
    return _decode_text(text, name)


def decode_file(path: Path | str) -> list[DecodedItem]:
    """``decode_bytes`` of a file; origins start with the path as given."""
    p = Path(path)
    try:
        content = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return decode_bytes(content, name=str(path))
