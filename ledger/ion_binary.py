"""A fast Ion 1.0 binary codec for stored documents.

amazon.ion 0.9.3 (the version pyqldb pins) is pure Python and takes about a millisecond to write
or read one small document; the ledger stores every revision as Ion binary, so it carries its own
codec for the values simpleion produces. ``encode`` writes one top-level value (plain Python or
simpleion ``IonPy*`` values) with a local symbol table; ``decode`` reads one back as the same
``IonPy*`` values ``simpleion.loads`` gives. Both are checked against amazon.ion in
``tests/ledger/test_ion_binary.py``; ``decode`` falls back to simpleion for streams it does not
expect (shared symbol table imports, several values).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import IonType, OffsetTZInfo, Timestamp, TimestampPrecision
from amazon.ion.simple_types import (
    IonPyBool,
    IonPyBytes,
    IonPyDecimal,
    IonPyDict,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPySymbol,
    IonPyText,
    IonPyTimestamp,
)
from amazon.ion.symbols import SymbolToken

BVM = b"\xe0\x01\x00\xea"
_SYSTEM = (
    "$ion", "$ion_1_0", "$ion_symbol_table", "name", "version", "imports", "symbols", "max_id",
    "$ion_shared_symbol_table",
)  # fmt: skip
_FIRST_LOCAL = len(_SYSTEM) + 1

_NULL_TID = {
    IonType.NULL: 0x0F, IonType.BOOL: 0x1F, IonType.INT: 0x2F, IonType.FLOAT: 0x4F,
    IonType.DECIMAL: 0x5F, IonType.TIMESTAMP: 0x6F, IonType.SYMBOL: 0x7F, IonType.STRING: 0x8F,
    IonType.CLOB: 0x9F, IonType.BLOB: 0xAF, IonType.LIST: 0xBF, IonType.SEXP: 0xCF,
    IonType.STRUCT: 0xDF,
}  # fmt: skip
_TYPE_OF_NULL = {v >> 4: k for k, v in _NULL_TID.items()}


class IonCodecError(ValueError):
    """Bytes that are not the Ion this codec reads, or a value it cannot write."""


def ion_type_of(value: Any) -> IonType:
    """The Ion type of a simpleion or plain Python value."""
    t = getattr(value, "ion_type", None)
    if isinstance(t, IonType):
        return t
    if value is None:
        return IonType.NULL
    if isinstance(value, bool):
        return IonType.BOOL
    if isinstance(value, int):
        return IonType.INT
    if isinstance(value, float):
        return IonType.FLOAT
    if isinstance(value, Decimal):
        return IonType.DECIMAL
    if isinstance(value, datetime):
        return IonType.TIMESTAMP
    if isinstance(value, str):
        return IonType.STRING
    if isinstance(value, SymbolToken):
        return IonType.SYMBOL
    if isinstance(value, bytes | bytearray):
        return IonType.BLOB
    if isinstance(value, Mapping):
        return IonType.STRUCT
    if isinstance(value, list | tuple):
        return IonType.LIST
    raise IonCodecError(f"not an Ion value: {type(value).__name__}")


# --- writing ------------------------------------------------------------------------------------


def _varuint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n | 0x80,))
    out = [(n & 0x7F) | 0x80]
    n >>= 7
    while n:
        out.append(n & 0x7F)
        n >>= 7
    return bytes(reversed(out))


def _varint(n: int, negative: bool = False) -> bytes:
    sign = 0x40 if (n < 0 or negative) else 0
    m = -n if n < 0 else n
    if m < 0x40:
        return bytes((0x80 | sign | m,))
    out = [(m & 0x7F) | 0x80]
    m >>= 7
    while m >= 0x40:
        out.append(m & 0x7F)
        m >>= 7
    out.append(sign | m)
    return bytes(reversed(out))


def _uint(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""


def _int_field(n: int, negative: bool = False) -> bytes:
    """Ion ``Int`` (sign-and-magnitude, fixed length) as used by decimal coefficients."""
    m = -n if n < 0 else n
    size = m.bit_length() // 8 + 1
    raw = bytearray(m.to_bytes(size, "big"))
    if n < 0 or negative:
        raw[0] |= 0x80
    return bytes(raw)


def _header(tid: int, length: int) -> bytes:
    if length < 14:
        return bytes((tid << 4 | length,))
    return bytes((tid << 4 | 14,)) + _varuint(length)


def _decimal_body(value: Decimal) -> bytes:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise IonCodecError(f"Ion has no decimal {value}")
    coefficient = 0
    for d in digits:
        coefficient = coefficient * 10 + d
    body = _varint(exponent)
    if coefficient:
        body += _int_field(-coefficient if sign else coefficient)
    elif sign:
        body += b"\x80"
    return body


def _timestamp_body(value: datetime) -> bytes:
    precision = getattr(value, "precision", None)
    if precision is None:
        precision = TimestampPrecision.SECOND
    out = bytearray()
    dt = value
    if dt.tzinfo is None:
        out += b"\xc0"
    else:
        offset = dt.utcoffset() or timedelta(0)
        dt = dt - offset
        out += _varint(int(offset.total_seconds() // 60))
    out += _varuint(dt.year)
    if precision.includes_month:
        out += _varuint(dt.month)
    if precision.includes_day:
        out += _varuint(dt.day)
    if precision.includes_minute:
        out += _varuint(dt.hour) + _varuint(dt.minute)
    if precision.includes_second:
        out += _varuint(dt.second)
        if isinstance(value, Timestamp):
            fraction = getattr(value, "fractional_seconds", None)
            if fraction is not None:
                sign, digits, exponent = fraction.as_tuple()
                assert isinstance(exponent, int)
                coefficient = int("".join(map(str, digits)) or "0")
                if coefficient or exponent < 0:
                    out += _varint(exponent)
                    if coefficient:
                        out += _int_field(-coefficient if sign else coefficient)
                    elif sign:
                        out += b"\x80"
        else:
            out += _varint(-6) + _int_field(dt.microsecond) if dt.microsecond else _varint(-6)
    return bytes(out)


class _Writer:
    __slots__ = ("symbols",)

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {}

    def sid(self, text: str) -> int:
        n = self.symbols.get(text)
        if n is None:
            n = _FIRST_LOCAL + len(self.symbols)
            self.symbols[text] = n
        return n

    def value(self, v: Any) -> bytes:
        t = getattr(v, "ion_type", None)
        if t is None:
            t = ion_type_of(v)
        annotations = getattr(v, "ion_annotations", None)
        body = self._bare(v, t)
        if annotations:
            sids = b"".join(_varuint(self.sid(_text(a))) for a in annotations)
            inner = _varuint(len(sids)) + sids + body
            return _header(0xE, len(inner)) + inner
        return body

    def _bare(self, v: Any, t: IonType) -> bytes:
        if v is None or isinstance(v, IonPyNull):
            return bytes((_NULL_TID[t],))
        if t is IonType.STRING:
            raw = str(v).encode("utf-8")
            return _header(0x8, len(raw)) + raw
        if t is IonType.STRUCT:
            parts = []
            items = v.iteritems() if hasattr(v, "iteritems") else v.items()
            for k, x in items:
                parts.append(_varuint(self.sid(_text(k))))
                parts.append(self.value(x))
            body = b"".join(parts)
            return _header(0xD, len(body)) + body
        if t is IonType.INT:
            n = int(v)
            if n == 0:
                return b"\x20"
            raw = _uint(-n if n < 0 else n)
            return _header(0x3 if n < 0 else 0x2, len(raw)) + raw
        if t is IonType.BOOL:
            return b"\x11" if v else b"\x10"
        if t is IonType.DECIMAL:
            d = Decimal(v)
            if d.is_zero() and not d.is_signed() and d.as_tuple().exponent == 0:
                return b"\x50"
            body = _decimal_body(d)
            return _header(0x5, len(body)) + body
        if t is IonType.TIMESTAMP:
            body = _timestamp_body(v)
            return _header(0x6, len(body)) + body
        if t is IonType.LIST or t is IonType.SEXP:
            body = b"".join(self.value(x) for x in v)
            return _header(0xB if t is IonType.LIST else 0xC, len(body)) + body
        if t is IonType.FLOAT:
            f = float(v)
            if f == 0.0 and str(f)[0] != "-":
                return b"\x40"
            return b"\x48" + struct.pack(">d", f)
        if t is IonType.SYMBOL:
            text = _text(v)
            if text is None:
                return b"\x70"
            raw = _uint(self.sid(text))
            return _header(0x7, len(raw)) + raw
        if t is IonType.BLOB or t is IonType.CLOB:
            raw = bytes(v)
            return _header(0xA if t is IonType.BLOB else 0x9, len(raw)) + raw
        if t is IonType.NULL:
            return b"\x0f"
        raise IonCodecError(f"cannot write Ion type {t}")


def _text(token: Any) -> Any:
    return getattr(token, "text", token)


def encode(value: Any) -> bytes:
    """One Ion value as an Ion binary stream (BVM, local symbol table, value)."""
    w = _Writer()
    body = w.value(value)
    if not w.symbols:
        return BVM + body
    syms = b"".join(
        _header(0x8, len(r)) + r for r in (s.encode("utf-8") for s in w.symbols)
    )  # fmt: skip
    lst = _header(0xB, len(syms)) + syms
    table_struct = _varuint(7) + lst
    table = _header(0xD, len(table_struct)) + table_struct
    annot = _varuint(1) + _varuint(3)
    wrapper_body = annot + table
    return BVM + _header(0xE, len(wrapper_body)) + wrapper_body + body


# --- reading ------------------------------------------------------------------------------------


class _Fallback(Exception):
    pass


class _Reader:
    __slots__ = ("data", "pos", "symbols")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.symbols: list[str | None] = [None, *_SYSTEM]

    def varuint(self) -> int:
        data = self.data
        n = 0
        while True:
            b = data[self.pos]
            self.pos += 1
            n = (n << 7) | (b & 0x7F)
            if b & 0x80:
                return n

    def varint(self) -> tuple[int, bool]:
        data = self.data
        b = data[self.pos]
        self.pos += 1
        negative = bool(b & 0x40)
        n = b & 0x3F
        while not b & 0x80:
            b = data[self.pos]
            self.pos += 1
            n = (n << 7) | (b & 0x7F)
        return (-n if negative else n), negative

    def symbol(self, sid: int) -> str | None:
        if sid >= len(self.symbols):
            raise IonCodecError(f"symbol id {sid} is not in the symbol table")
        return self.symbols[sid]

    def length(self, low: int) -> int:
        return self.varuint() if low == 14 else low

    def read(self, end: int, depth: int = 0) -> tuple[Any, bool]:
        """One value; returns (value, is_nop_pad)."""
        data = self.data
        td = data[self.pos]
        self.pos += 1
        high, low = td >> 4, td & 0x0F
        if high == 0xE:
            if depth == 0 and td == 0xE0:
                raise _Fallback()
            length = self.length(low)
            stop = self.pos + length
            alen = self.varuint()
            aend = self.pos + alen
            annotations = []
            while self.pos < aend:
                annotations.append(self.symbol(self.varuint()))
            value, _ = self.read(stop, depth + 1)
            if self.pos != stop:
                raise IonCodecError("annotation wrapper length does not match its value")
            if hasattr(value, "ion_annotations"):
                value.ion_annotations = tuple(annotations)
            return value, False
        if low == 15:
            t = _TYPE_OF_NULL.get(high)
            if t is None:
                raise IonCodecError(f"invalid type descriptor {td:#x}")
            return IonPyNull.from_value(t, None), False
        if high == 0:
            self.pos += self.length(low)
            return None, True
        if high == 1:
            v = IonPyBool(bool(low))
            v.ion_type = IonType.BOOL
            v.ion_annotations = ()
            return v, False
        length = self.length(low) if high != 0xD or low != 1 else self.varuint()
        start = self.pos
        stop = start + length
        if stop > end:
            raise IonCodecError("a value runs past its container")
        self.pos = stop
        if high == 8:
            s = IonPyText(data[start:stop].decode("utf-8"))
            s.ion_type = IonType.STRING
            s.ion_annotations = ()
            return s, False
        if high in {2, 3}:
            n = int.from_bytes(data[start:stop], "big")
            if high == 3:
                if n == 0:
                    raise IonCodecError("negative zero int")
                n = -n
            i = IonPyInt(n)
            i.ion_type = IonType.INT
            i.ion_annotations = ()
            return i, False
        if high == 0xD:
            self.pos = start
            d = IonPyDict()
            d.ion_annotations = ()
            while self.pos < stop:
                name = self.symbol(self.varuint())
                value, pad = self.read(stop, depth + 1)
                if not pad:
                    d.add_item(name, value)
            return d, False
        if high in {11, 12}:
            self.pos = start
            items = IonPyList()
            while self.pos < stop:
                value, pad = self.read(stop, depth + 1)
                if not pad:
                    items.append(value)
            self.pos = stop
            items.ion_type = IonType.LIST if high == 0xB else IonType.SEXP
            items.ion_annotations = ()
            return items, False
        if high == 5:
            self.pos = start
            dec = self._decimal(stop) if length else Decimal(0)
            self.pos = stop
            dv = IonPyDecimal(dec)
            dv.ion_type = IonType.DECIMAL
            dv.ion_annotations = ()
            return dv, False
        if high == 6:
            self.pos = start
            ts = self._timestamp(stop)
            self.pos = stop
            return ts, False
        if high == 4:
            if length == 0:
                f = 0.0
            elif length == 8:
                f = struct.unpack(">d", data[start:stop])[0]
            elif length == 4:
                f = struct.unpack(">f", data[start:stop])[0]
            else:
                raise IonCodecError(f"invalid float length {length}")
            fv = IonPyFloat(f)
            fv.ion_type = IonType.FLOAT
            fv.ion_annotations = ()
            return fv, False
        if high == 7:
            sid = int.from_bytes(data[start:stop], "big")
            sym = IonPySymbol(self.symbol(sid) if sid else None, None if sid else 0, None)
            sym.ion_annotations = ()
            return sym, False
        if high in {10, 9}:
            b = IonPyBytes(data[start:stop])
            b.ion_type = IonType.BLOB if high == 0xA else IonType.CLOB
            b.ion_annotations = ()
            return b, False
        raise IonCodecError(f"invalid type descriptor {td:#x}")

    def _decimal(self, stop: int) -> Decimal:
        exponent, _ = self.varint()
        if self.pos >= stop:
            return Decimal((0, (0,), exponent))
        raw = bytearray(self.data[self.pos : stop])
        negative = bool(raw[0] & 0x80)
        raw[0] &= 0x7F
        coefficient = int.from_bytes(raw, "big")
        if coefficient == 0:
            return Decimal((1 if negative else 0, (0,), exponent))
        digits = tuple(int(c) for c in str(coefficient))
        return Decimal((1 if negative else 0, digits, exponent))

    def _timestamp(self, stop: int) -> Any:
        offset, negative = self.varint()
        tz = None if (negative and offset == 0) else OffsetTZInfo(timedelta(minutes=offset))
        precision = TimestampPrecision.YEAR
        year = self.varuint()
        month, day, hour, minute, second = 1, 1, 0, 0, 0
        fraction = None
        if self.pos < stop:
            month = self.varuint()
            precision = TimestampPrecision.MONTH
        if self.pos < stop:
            day = self.varuint()
            precision = TimestampPrecision.DAY
        if self.pos < stop:
            hour = self.varuint()
            minute = self.varuint()
            precision = TimestampPrecision.MINUTE
        if self.pos < stop:
            second = self.varuint()
            precision = TimestampPrecision.SECOND
        if self.pos < stop:
            fraction = self._decimal(stop)
            if fraction == 0 and fraction.as_tuple().exponent > -1:  # type: ignore[operator]
                fraction = None
        ts = Timestamp.adjust_from_utc_fields(
            year, month, day, hour, minute, second, None, tz,
            precision=precision, fractional_precision=None, fractional_seconds=fraction,
        )  # fmt: skip
        return IonPyTimestamp.from_value(IonType.TIMESTAMP, ts)

    def top(self) -> Any:
        data = self.data
        if data[:4] != BVM:
            raise _Fallback()
        self.pos = 4
        end = len(data)
        # An optional local symbol table: $ion_symbol_table::{symbols: [...]}.
        if self.pos < end and data[self.pos] >> 4 == 0xE:
            save = self.pos
            self.pos += 1
            low = data[save] & 0x0F
            length = self.length(low)
            stop = self.pos + length
            alen = self.varuint()
            if alen == 1 and self.varuint() == 3:
                table, _ = self.read(stop, 1)
                if not isinstance(table, Mapping) or "imports" in table:
                    raise _Fallback()
                syms = table.get("symbols") or []
                self.symbols.extend(str(s) if isinstance(s, str) else None for s in syms)
                self.pos = stop
            else:
                self.pos = save
        value, pad = self.read(end)
        if pad or self.pos != end:
            raise _Fallback()
        return value


def decode(data: bytes) -> Any:
    """The one Ion value of an Ion binary stream, as simpleion values."""
    try:
        return _Reader(bytes(data)).top()
    except (_Fallback, IndexError):
        return simpleion.loads(bytes(data))
