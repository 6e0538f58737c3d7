"""KPL aggregated records: strict detection, checking and splitting, and an encoder.

A Kinesis record whose data starts with the magic ``F3 89 9A C2`` is a KPL aggregate: the magic,
a protobuf ``AggregatedRecord``, then the 16-byte MD5 of the protobuf bytes (RECORDS.md section 5)::

    message AggregatedRecord {
      repeated string partition_key_table     = 1;
      repeated string explicit_hash_key_table = 2;
      repeated Record records                 = 3;
    }
    message Record {
      required uint64 partition_key_index     = 1;
      optional uint64 explicit_hash_key_index = 2;
      required bytes  data                    = 3;
      repeated Tag    tags                    = 4;
    }
    message Tag { required string key = 1; optional string value = 2; }

``deaggregate`` checks the MD5 first, then decodes the protobuf with a hand-written strict wire
decoder: unknown fields and wire types, truncated varints and lengths, a repeated scalar field,
a missing required field, an index outside its key table and an aggregate without records are
all refused with ``DecodeError("aggregate", reason)`` saying exactly what is wrong. Unlike
aws-kinesis-agg, a broken aggregate is never passed on as a plain record.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from journal.errors import DecodeError

MAGIC = b"\xf3\x89\x9a\xc2"
MD5_SIZE = 16

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = 0, 1, 2, 3, 4, 5
_WIRE_NAMES = {
    _VARINT: "varint",
    _I64: "64-bit",
    _LEN: "length-delimited",
    _SGROUP: "start-group",
    _EGROUP: "end-group",
    _I32: "32-bit",
}
_MAX_VARINT_BYTES = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class UserRecord:
    """One user record of an aggregate; ``index`` is its Kinesis sub-sequence number."""

    index: int
    partition_key: str
    explicit_hash_key: str | None
    data: bytes


class _ProtoError(Exception):
    """A protobuf wire-format error; ``truncated`` when the bytes ran out."""

    def __init__(self, message: str, *, truncated: bool = False) -> None:
        super().__init__(message)
        self.truncated = truncated


def is_aggregate(data: bytes) -> bool:
    """True when ``data`` starts with the KPL magic (then it must be a valid aggregate)."""
    return data[: len(MAGIC)] == MAGIC


# --- wire decoding ------------------------------------------------------------------------------


class _Reader:
    """Reads protobuf wire format from ``buf[start:end]``; offsets reported are absolute in the
    Kinesis record (magic included), so an operator can find the byte."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, start: int, end: int) -> None:
        self.buf = buf
        self.pos = start
        self.end = end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def varint(self, what: str) -> int:
        start = self.pos
        result = 0
        for i in range(_MAX_VARINT_BYTES):
            if self.pos >= self.end:
                raise _ProtoError(
                    f"truncated varint ({what}) at offset {start}: the bytes end after {i}",
                    truncated=True,
                )
            b = self.buf[self.pos]
            self.pos += 1
            result |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if result >= 1 << 64:
                    raise _ProtoError(f"varint ({what}) at offset {start} overflows 64 bits")
                return result
        raise _ProtoError(f"varint ({what}) at offset {start} is longer than 10 bytes")

    def key(self, message: str) -> tuple[int, int, int]:
        """(field number, wire type, offset of the key)."""
        at = self.pos
        key = self.varint(f"{message} field key")
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _ProtoError(f"{message}: field number 0 at offset {at} is invalid")
        if wire not in _WIRE_NAMES:
            raise _ProtoError(f"{message}: unknown wire type {wire} at offset {at}")
        return field, wire, at

    def length_delimited(self, message: str, field: int) -> tuple[int, int]:
        """(start, end) of a length-delimited field's payload."""
        length = self.varint(f"{message} field {field} length")
        left = self.end - self.pos
        if length > left:
            raise _ProtoError(
                f"field {field} length {length} beyond end ({message}, offset {self.pos}, "
                f"{left} bytes left)",
                truncated=True,
            )
        start = self.pos
        self.pos += length
        return start, self.pos


def _expect(message: str, field: int, wire: int, expected: int, at: int) -> None:
    if wire != expected:
        raise _ProtoError(
            f"{message} field {field} at offset {at} has wire type {wire} "
            f"({_WIRE_NAMES[wire]}), expected {expected} ({_WIRE_NAMES[expected]})"
        )


def _utf8(buf: bytes, start: int, end: int, what: str) -> str:
    try:
        return buf[start:end].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _ProtoError(f"{what} at offset {start} is not UTF-8 ({exc.reason})") from None


@dataclass(slots=True)
class _RawRecord:
    partition_key_index: int | None = None
    explicit_hash_key_index: int | None = None
    data: bytes | None = None


def _parse_tag(buf: bytes, start: int, end: int, where: str) -> None:
    r = _Reader(buf, start, end)
    has_key = has_value = False
    while not r.at_end():
        field, wire, at = r.key(where)
        if field in (1, 2):
            _expect(where, field, wire, _LEN, at)
            s, e = r.length_delimited(where, field)
            if field == 1:
                if has_key:
                    raise _ProtoError(f"{where} repeats field 1 (key) at offset {at}")
                has_key = True
                _utf8(buf, s, e, f"{where}.key")
            else:
                if has_value:
                    raise _ProtoError(f"{where} repeats field 2 (value) at offset {at}")
                has_value = True
                _utf8(buf, s, e, f"{where}.value")
        else:
            raise _ProtoError(f"{where}: unknown field {field} at offset {at}")
    if not has_key:
        raise _ProtoError(f"{where} has no key (required)")


def _parse_record(buf: bytes, start: int, end: int, where: str) -> _RawRecord:
    rec = _RawRecord()
    r = _Reader(buf, start, end)
    tags = 0
    while not r.at_end():
        field, wire, at = r.key(where)
        if field in (1, 2):
            _expect(where, field, wire, _VARINT, at)
            name = "partition_key_index" if field == 1 else "explicit_hash_key_index"
            value = r.varint(f"{where}.{name}")
            if getattr(rec, name) is not None:
                raise _ProtoError(f"{where} repeats field {field} ({name}) at offset {at}")
            setattr(rec, name, value)
        elif field == 3:
            _expect(where, field, wire, _LEN, at)
            s, e = r.length_delimited(where, field)
            if rec.data is not None:
                raise _ProtoError(f"{where} repeats field 3 (data) at offset {at}")
            rec.data = buf[s:e]
        elif field == 4:
            _expect(where, field, wire, _LEN, at)
            s, e = r.length_delimited(where, field)
            _parse_tag(buf, s, e, f"{where}.tags[{tags}]")
            tags += 1
        else:
            raise _ProtoError(f"{where}: unknown field {field} at offset {at}")
    if rec.partition_key_index is None:
        raise _ProtoError(f"{where} has no partition_key_index (required)")
    if rec.data is None:
        raise _ProtoError(f"{where} has no data (required)")
    return rec


def _parse_aggregate(
    buf: bytes,
    start: int,
    end: int,
    on_field_end: Callable[[int], None] | None = None,
) -> tuple[UserRecord, ...]:
    pk_table: list[str] = []
    ehk_table: list[str] = []
    raw: list[_RawRecord] = []
    r = _Reader(buf, start, end)
    while not r.at_end():
        field, wire, at = r.key("AggregatedRecord")
        if field not in (1, 2, 3):
            raise _ProtoError(f"AggregatedRecord: unknown field {field} at offset {at}")
        _expect("AggregatedRecord", field, wire, _LEN, at)
        s, e = r.length_delimited("AggregatedRecord", field)
        if field == 1:
            pk_table.append(_utf8(buf, s, e, f"partition_key_table[{len(pk_table)}]"))
        elif field == 2:
            ehk_table.append(_utf8(buf, s, e, f"explicit_hash_key_table[{len(ehk_table)}]"))
        else:
            raw.append(_parse_record(buf, s, e, f"records[{len(raw)}]"))
        if on_field_end is not None:
            on_field_end(r.pos)
    if not raw:
        raise _ProtoError("the aggregate holds no records")
    out = []
    for i, rec in enumerate(raw):
        pki, ehki = rec.partition_key_index, rec.explicit_hash_key_index
        assert pki is not None and rec.data is not None
        if pki >= len(pk_table):
            raise _ProtoError(
                f"records[{i}].partition_key_index {pki} is outside the partition key table "
                f"({len(pk_table)} entries)"
            )
        if ehki is not None and ehki >= len(ehk_table):
            raise _ProtoError(
                f"records[{i}].explicit_hash_key_index {ehki} is outside the explicit hash key "
                f"table ({len(ehk_table)} entries)"
            )
        out.append(
            UserRecord(
                index=i,
                partition_key=pk_table[pki],
                explicit_hash_key=ehk_table[ehki] if ehki is not None else None,
                data=rec.data,
            )
        )
    return tuple(out)


def _diagnose_md5(data: bytes) -> str:
    """Say why the MD5 trailer does not match: trailing garbage, truncation, or altered bytes."""
    body_start = len(MAGIC)
    # Trailing garbage: a field boundary followed by the MD5 of everything before it.
    md5 = hashlib.md5(usedforsecurity=False)
    fed = [body_start]
    found: list[int] = []

    def check(pos: int) -> None:
        md5.update(data[fed[0] : pos])
        fed[0] = pos
        if not found and pos + MD5_SIZE < len(data) and data[pos : pos + MD5_SIZE] == md5.digest():
            found.append(pos)

    with contextlib.suppress(_ProtoError):
        _parse_aggregate(data, body_start, len(data), on_field_end=check)
    if found:
        extra = len(data) - found[0] - MD5_SIZE
        return f"trailing garbage: {extra} bytes after the MD5 trailer at offset {found[0]}"
    computed = hashlib.md5(data[body_start:-MD5_SIZE], usedforsecurity=False).hexdigest()
    mismatch = (
        f"MD5 mismatch: trailer {data[-MD5_SIZE:].hex()}, computed {computed} over "
        f"{len(data) - body_start - MD5_SIZE} protobuf bytes"
    )
    try:
        _parse_aggregate(data, body_start, len(data) - MD5_SIZE)
    except _ProtoError as body_error:
        # Truncated: the bytes after the magic run out in the middle of a field.
        try:
            _parse_aggregate(data, body_start, len(data))
        except _ProtoError as exc:
            if exc.truncated:
                return f"truncated: MD5 trailer missing; protobuf: {exc}"
        if body_error.truncated:
            return f"truncated: MD5 trailer cut short; protobuf: {body_error}"
        return f"{mismatch}; protobuf: {body_error}"
    return f"{mismatch}; the protobuf is well-formed, so its content was altered"


def deaggregate(data: bytes) -> tuple[UserRecord, ...]:
    """Split a KPL aggregate into its user records, or raise ``DecodeError("aggregate", ...)``."""
    if not is_aggregate(data):
        raise DecodeError("aggregate", f"no KPL magic (starts with {data[:4].hex() or 'nothing'})")
    if len(data) < len(MAGIC) + MD5_SIZE:
        raise DecodeError(
            "aggregate",
            f"truncated: MD5 trailer missing ({len(data)} bytes, shorter than magic + MD5)",
        )
    body = data[len(MAGIC) : -MD5_SIZE]
    if hashlib.md5(body, usedforsecurity=False).digest() != data[-MD5_SIZE:]:
        raise DecodeError("aggregate", _diagnose_md5(data))
    try:
        return _parse_aggregate(data, len(MAGIC), len(data) - MD5_SIZE)
    except _ProtoError as exc:
        raise DecodeError("aggregate", f"protobuf: {exc}") from None


# --- encoding -----------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


def aggregate(records: Sequence[tuple[str, bytes]]) -> bytes:
    """A KPL aggregate of ``(partition key, data)`` user records, as the KPL writes it (partition
    keys deduplicated in the table, no explicit hash keys)."""
    if not records:
        raise ValueError("an aggregate needs at least one record")
    keys: dict[str, int] = {}
    for key, _ in records:
        keys.setdefault(key, len(keys))
    body = bytearray()
    for key in keys:
        body += _field_bytes(1, key.encode("utf-8"))
    for key, data in records:
        rec = _varint(1 << 3 | _VARINT) + _varint(keys[key]) + _field_bytes(3, data)
        body += _field_bytes(3, rec)
    return MAGIC + bytes(body) + hashlib.md5(bytes(body), usedforsecurity=False).digest()
