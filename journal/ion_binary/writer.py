"""The Ion binary writer: ``encode(value)`` writes one value (plain Python or ``IonPy*``) as an Ion
binary stream with a local symbol table (``simpleion.dumps`` takes about a millisecond for a small
document under amazon.ion 0.9.3). Also what the Ion hash (``ledger.hashing``) reuses of it:
``ion_type_of``, ``struct_items`` and the decimal and timestamp bodies."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from amazon.ion.core import IonType, Timestamp
from amazon.ion.simple_types import IonPyDict, IonPyNull, IonPyText
from amazon.ion.symbols import SymbolToken

from journal.ion_binary.encoding import BVM, FIRST_LOCAL_SID, IonCodecError

_NULL_TID = {
    IonType.NULL: 0x0F, IonType.BOOL: 0x1F, IonType.INT: 0x2F, IonType.FLOAT: 0x4F,
    IonType.DECIMAL: 0x5F, IonType.TIMESTAMP: 0x6F, IonType.SYMBOL: 0x7F, IonType.STRING: 0x8F,
    IonType.CLOB: 0x9F, IonType.BLOB: 0xAF, IonType.LIST: 0xBF, IonType.SEXP: 0xCF,
    IonType.STRUCT: 0xDF,
}  # fmt: skip


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


_SMALL_VARUINT = tuple(bytes((n | 0x80,)) for n in range(128))


def _timestamp_body(value: datetime) -> bytes:
    """A timestamp's binary representation (offset, fields down to its precision, fraction)."""
    precision = getattr(value, "precision", None)
    # TimestampPrecision YEAR..SECOND are 0..4 (an enum in 0.9.3, plain ints in 0.15).
    level = 4 if precision is None else getattr(precision, "value", precision)
    dt = value
    if dt.tzinfo is None:
        out = b"\xc0"
    else:
        offset = dt.utcoffset()
        if offset:
            dt = dt - offset
            out = _varint(int(offset.total_seconds() // 60))
        else:
            out = b"\x80"
    out += _varuint(dt.year)
    if level >= 1:
        out += _SMALL_VARUINT[dt.month]
    if level >= 2:
        out += _SMALL_VARUINT[dt.day]
    if level >= 3:
        out += _SMALL_VARUINT[dt.hour] + _SMALL_VARUINT[dt.minute]
    if level >= 4:
        out += _SMALL_VARUINT[dt.second]
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
    return out


def struct_items(value: Any) -> Iterable[tuple[Any, Any]]:
    """Every (field name, value) of a struct in order, repeated names included."""
    # amazon.ion 0.9.3's IonPyDict keeps name -> MultimapValue; its iteritems() is a slow
    # generator, so the values are read from where 0.9.3 keeps them (else the generic way).
    store = getattr(value, "_Multimap__store", None)
    if store is not None:
        try:
            return [(k, x) for k, values in store.items() for x in values._MultimapValue__store]
        except AttributeError:
            pass
    iteritems = getattr(value, "iteritems", None)
    return iteritems() if iteritems is not None else value.items()  # type: ignore[no-any-return]


class _Writer:
    __slots__ = ("symbols",)

    def __init__(self) -> None:
        self.symbols: dict[str, int] = {}

    def sid(self, text: str) -> int:
        n = self.symbols.get(text)
        if n is None:
            n = FIRST_LOCAL_SID + len(self.symbols)
            self.symbols[text] = n
        return n

    def value(self, v: Any) -> bytes:
        cls = type(v)
        # The commonest classes of documents first: plain ones (one Ion type, no annotations),
        # and simpleion's strings and structs without annotations (decoded revisions).
        if cls is str or (
            cls is IonPyText and v.ion_type is IonType.STRING and not v.ion_annotations
        ):
            raw: bytes = v.encode("utf-8")
            n = len(raw)
            return (bytes((0x80 | n,)) if n < 14 else _header(0x8, n)) + raw
        if cls is dict:
            return self._struct(v.items())
        if cls is IonPyDict and not v.ion_annotations:
            return self._struct(struct_items(v))
        if cls is int:
            return self._bare(v, IonType.INT)
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

    def _struct(self, items: Iterable[tuple[Any, Any]]) -> bytes:
        parts = []
        for k, x in items:
            parts.append(_varuint(self.sid(k if type(k) is str else _text(k))))
            parts.append(self.value(x))
        body = b"".join(parts)
        return _header(0xD, len(body)) + body

    def _bare(self, v: Any, t: IonType) -> bytes:
        if v is None or isinstance(v, IonPyNull):
            return bytes((_NULL_TID[t],))
        if t is IonType.STRING:
            raw = str(v).encode("utf-8")
            return _header(0x8, len(raw)) + raw
        if t is IonType.STRUCT:
            return self._struct(struct_items(v))
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
