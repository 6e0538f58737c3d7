"""A fast Ion 1.0 binary codec, shared by the ingest path, the buffer and the ledger.

amazon.ion 0.9.3 (the version pyqldb pins, so the one local runs and the settler use) is pure
Python: ``simpleion.loads`` takes about 3 ms of CPU for one stream record, ``simpleion.dumps``
about a millisecond for a small document. This module reads and writes the same values itself:

- ``decode(data)`` / ``decode_all(data)`` give exactly what ``simpleion.loads(data)`` /
  ``simpleion.loads(data, single_value=False)`` give (the same ``IonPy*`` values, symbol tokens
  and timestamp precision) and raise what they raise: the fast reader takes the Ion that QLDB and
  amazon.ion write (a version marker, at most one local symbol table of plain strings, one value)
  and hands anything else, malformed bytes included, to simpleion. It never accepts what
  simpleion refuses; ``read_fast`` is the fast reader alone, for tests.
- ``encode(value)`` writes one value (plain Python or ``IonPy*``) with a local symbol table.

Checked against amazon.ion in ``tests/journal/test_journal_ion_binary.py`` (samples, edge cases,
generated values and mutated real records, in both environments),
``tests/ingest/test_ingest_fast_decode.py`` and ``tests/ledger/test_ledger_ion_binary.py``.

Which reader ``decode`` uses is chosen at import (``FAST_READER``): the fast one, unless
amazon.ion reads through its C extension (0.15 in the ingest Lambda), which is faster still and
is then used directly. Measured on this project's 2-core machine, CPU time per record over the
698 stream records of a simulated stream (``demo --transactions 300 --seed 3``), symbol-table
cache emptied before each pass, medians of 5 passes, ranges over 3 to 6 rounds:

    =======================  ==================  ==============================
    reader                   .venv (0.9.3)       .venv-ingest (0.15, C ext.)
    =======================  ==================  ==============================
    simpleion.loads          2,950-3,350 us      100-135 us   <- used there
    fast reader              160-205 us <- used  150-170 us
    =======================  ==================  ==============================
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
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
from amazon.ion.symbols import SYSTEM_SYMBOL_TABLE, SymbolToken

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
            for k, x in struct_items(v):
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
#
# The fast reader covers the Ion that QLDB and amazon.ion write: a version marker, at most one
# local symbol table of plain strings, then one value. Anything else (shared symbol table imports,
# several values, symbol zero, NOP padding, sorted structs, 4-byte floats, system symbols as values,
# extreme decimal exponents, malformed bytes...) raises ``_Unsupported`` and ``decode`` hands the
# bytes to simpleion instead, so errors and rare shapes are amazon.ion's own answer.

_MAX_DEPTH = 200  # deeper values go to simpleion (the fast reader recurses)
_MAX_EXPONENT = 100_000  # amazon.ion scales coefficients in a context with Emax 999999


class _Unsupported(Exception):
    """Outside what the fast reader handles (or malformed): simpleion decides."""


_SYSTEM_TOKENS: tuple[SymbolToken | None, ...] = (
    None,
    *(SYSTEM_SYMBOL_TABLE.get(sid) for sid in range(1, _FIRST_LOCAL)),
)
_STRING, _INT, _BOOL, _FLOAT = IonType.STRING, IonType.INT, IonType.BOOL, IonType.FLOAT
_DECIMAL, _TIMESTAMP, _SYMBOL = IonType.DECIMAL, IonType.TIMESTAMP, IonType.SYMBOL
_BLOB, _CLOB, _LIST, _SEXP, _STRUCT = (
    IonType.BLOB, IonType.CLOB, IonType.LIST, IonType.SEXP, IonType.STRUCT,
)  # fmt: skip
_NULL_TYPES: dict[int, IonType] = {
    0x0F: IonType.NULL, 0x1F: _BOOL, 0x2F: _INT, 0x3F: _INT, 0x4F: _FLOAT, 0x5F: _DECIMAL,
    0x6F: _TIMESTAMP, 0x7F: _SYMBOL, 0x8F: _STRING, 0x9F: _CLOB, 0xAF: _BLOB, 0xBF: _LIST,
    0xCF: _SEXP, 0xDF: _STRUCT,
}  # fmt: skip
_unpack_double = struct.Struct(">d").unpack_from


def _read_varuint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    n = 0
    while pos < end:
        b = data[pos]
        pos += 1
        n = (n << 7) | (b & 0x7F)
        if b & 0x80:
            return n, pos
    raise _Unsupported("VarUInt runs past its container")


def _read_varint(data: bytes, pos: int, end: int) -> tuple[int, bool, int]:
    """A VarInt: (value, negative sign bit, position after it)."""
    if pos >= end:
        raise _Unsupported("VarInt runs past its container")
    b = data[pos]
    pos += 1
    negative = bool(b & 0x40)
    n = b & 0x3F
    while not b & 0x80:
        if pos >= end:
            raise _Unsupported("VarInt runs past its container")
        b = data[pos]
        pos += 1
        n = (n << 7) | (b & 0x7F)
    return (-n if negative else n), negative, pos


def _decimal_value(data: bytes, pos: int, end: int) -> Decimal:
    """Exponent VarInt then sign-and-magnitude coefficient, as amazon.ion's ``_parse_decimal``."""
    exponent, _, pos = _read_varint(data, pos, end)
    if not -_MAX_EXPONENT < exponent < _MAX_EXPONENT or end - pos > 1000:
        raise _Unsupported("decimal out of the fast reader's range")
    if pos >= end:
        return Decimal((0, (0,), exponent))
    first = data[pos]
    sign = 1 if first & 0x80 else 0
    coefficient = int.from_bytes(bytes((first & 0x7F,)) + data[pos + 1 : end], "big")
    if coefficient == 0:
        return Decimal((sign, (0,), exponent))
    return Decimal((sign, tuple(map(int, str(coefficient))), exponent))


def _timestamp_value(data: bytes, pos: int, end: int) -> Any:
    """As amazon.ion's binary reader builds it (``Timestamp.adjust_from_utc_fields``)."""
    offset, negative, pos = _read_varint(data, pos, end)
    tz = None if (negative and offset == 0) else OffsetTZInfo(timedelta(minutes=offset))
    year, pos = _read_varuint(data, pos, end)
    precision = TimestampPrecision.YEAR
    month = day = 1
    hour = minute = second = 0
    fraction = None
    if pos < end:
        month, pos = _read_varuint(data, pos, end)
        precision = TimestampPrecision.MONTH
        if pos < end:
            day, pos = _read_varuint(data, pos, end)
            precision = TimestampPrecision.DAY
            if pos < end:
                hour, pos = _read_varuint(data, pos, end)
                minute, pos = _read_varuint(data, pos, end)
                precision = TimestampPrecision.MINUTE
                if pos < end:
                    second, pos = _read_varuint(data, pos, end)
                    precision = TimestampPrecision.SECOND
                    if pos < end:
                        fraction = _decimal_value(data, pos, end)
                        if fraction == 0 and fraction.as_tuple().exponent > -1:  # type: ignore[operator]
                            fraction = None
    if tz is None or not offset:
        # What adjust_from_utc_fields then from_value build, in one step (UTC or unknown offset:
        # no adjustment), checked against amazon.ion by the differential tests.
        value = IonPyTimestamp(
            year, month, day, hour, minute, second, None, tz,
            precision=precision, fractional_precision=None, fractional_seconds=fraction,
        )  # fmt: skip
        value.ion_type = _TIMESTAMP
        value.ion_annotations = ()
        return value
    ts = Timestamp.adjust_from_utc_fields(
        year, month, day, hour, minute, second, None, tz,
        precision=precision, fractional_precision=None, fractional_seconds=fraction,
    )  # fmt: skip
    return IonPyTimestamp.from_value(_TIMESTAMP, ts)


def _token(tokens: list[SymbolToken | None], sid: int) -> SymbolToken:
    token = tokens[sid] if 0 < sid < len(tokens) else None
    if token is None:
        raise _Unsupported(f"symbol id {sid}")
    return token


def _read(
    data: bytes, pos: int, end: int, tokens: list[SymbolToken | None], depth: int
) -> tuple[Any, int]:
    """The value whose type descriptor is at ``pos`` (inside ``end``), and the position after."""
    td = data[pos]
    pos += 1
    high = td >> 4
    low = td & 0x0F
    if low == 0x0F:
        null_type = _NULL_TYPES.get(td)
        if null_type is None:
            raise _Unsupported(f"type descriptor {td:#x}")
        null = IonPyNull()
        null.ion_type = null_type
        return null, pos
    if high == 1:
        if low > 1:
            raise _Unsupported(f"bool {td:#x}")
        b = IonPyBool(bool(low))
        b.ion_type = _BOOL
        return b, pos
    if low == 0x0E:
        length = data[pos] & 0x7F  # most lengths fit one VarUInt byte
        if data[pos] & 0x80:
            pos += 1
        else:
            length, pos = _read_varuint(data, pos, end)
    else:
        length = low
    stop = pos + length
    if stop > end:
        raise _Unsupported("a value runs past its container")
    if high == 8:
        s = IonPyText(data[pos:stop].decode("utf-8"))
        s.ion_type = _STRING
        return s, stop
    if high == 0xD:
        if low == 1 or depth >= _MAX_DEPTH:
            raise _Unsupported("sorted struct or deep nesting")
        d = IonPyDict()
        d.ion_type = _STRUCT
        add = d.add_item
        while pos < stop:
            sid = data[pos] & 0x7F  # most symbol ids fit one VarUInt byte
            if data[pos] & 0x80:
                pos += 1
            else:
                sid, pos = _read_varuint(data, pos, stop)
            if pos >= stop:
                raise _Unsupported("field name without a value")
            key = _token(tokens, sid).text
            value, pos = _read(data, pos, stop, tokens, depth + 1)
            add(key, value)
        if pos != stop:
            raise _Unsupported("struct length")
        return d, stop
    if high == 2:
        i = IonPyInt(int.from_bytes(data[pos:stop], "big"))
        i.ion_type = _INT
        return i, stop
    if high == 6:
        if not length:
            raise _Unsupported("empty timestamp")
        return _timestamp_value(data, pos, stop), stop
    if high in {0xA, 9}:
        lob = IonPyBytes(data[pos:stop])
        lob.ion_type = _BLOB if high == 0xA else _CLOB
        return lob, stop
    if high in {0xB, 0xC}:
        if depth >= _MAX_DEPTH:
            raise _Unsupported("deep nesting")
        items = IonPyList()
        items.ion_type = _LIST if high == 0xB else _SEXP
        items.ion_annotations = ()  # list.__init__ does not run amazon.ion's mix-in's
        append = items.append
        while pos < stop:
            value, pos = _read(data, pos, stop, tokens, depth + 1)
            append(value)
        if pos != stop:
            raise _Unsupported("list length")
        return items, stop
    if high == 5:
        dec = _decimal_value(data, pos, stop) if length else Decimal()
        return IonPyDecimal(dec), stop
    if high == 3:
        n = int.from_bytes(data[pos:stop], "big")
        if not n:
            raise _Unsupported("negative zero int")
        i = IonPyInt(-n)
        i.ion_type = _INT
        return i, stop
    if high == 4:
        if length == 8:
            return IonPyFloat(_unpack_double(data, pos)[0]), stop
        if length == 0:
            return IonPyFloat(0.0), stop
        raise _Unsupported(f"float of {length} bytes")
    if high == 7:
        if length > 8:
            raise _Unsupported("symbol id too long")
        sid = int.from_bytes(data[pos:stop], "big")
        if sid < _FIRST_LOCAL:
            raise _Unsupported("symbol zero or a system symbol as a value")
        token = _token(tokens, sid)
        return IonPySymbol(token.text, token.sid, token.location), stop
    if high == 0xE:
        if low < 3 or low == 0x0F:
            raise _Unsupported(f"annotation wrapper {td:#x}")
        alen, p = _read_varuint(data, pos, stop)
        aend = p + alen
        if alen == 0 or aend >= stop:
            raise _Unsupported("annotation wrapper without annotations or value")
        annotations = []
        while p < aend:
            sid, p = _read_varuint(data, p, aend)
            annotations.append(_token(tokens, sid))
        inner = data[p]
        if inner >> 4 == 0xE or inner < 0x0F:
            raise _Unsupported("annotation wrapper around a wrapper or padding")
        value, p = _read(data, p, stop, tokens, depth)
        if p != stop:
            raise _Unsupported("annotation wrapper length")
        value.ion_annotations = tuple(annotations)
        return value, stop
    raise _Unsupported(f"type descriptor {td:#x}")


def _local_symbols(data: bytes, pos: int, end: int) -> tuple[list[SymbolToken | None], int]:
    """A local symbol table ``$ion_symbol_table::{symbols: ["..."]}`` of plain strings (the only
    shape QLDB and amazon.ion write) and the position after it."""
    if data[pos] & 0x0F == 0x0E:
        length, p = _read_varuint(data, pos + 1, end)
    else:
        length, p = data[pos] & 0x0F, pos + 1
    stop = p + length
    if stop > end:
        raise _Unsupported("local symbol table runs past the stream")
    return _symbol_table(data[pos:stop]), stop


@lru_cache(maxsize=256)
def _symbol_table(table: bytes) -> list[SymbolToken | None]:
    """The symbol tokens of one local symbol table (records of one shape share theirs); callers
    only read the list."""
    tokens, stop = _symbol_table_at(table, 0, len(table))
    if stop != len(table):
        raise _Unsupported("local symbol table length")
    return tokens


def _symbol_table_at(data: bytes, pos: int, end: int) -> tuple[list[SymbolToken | None], int]:
    td = data[pos]
    if td >> 4 != 0xE or (td & 0x0F) < 3 or (td & 0x0F) == 0x0F:
        raise _Unsupported("not a plain local symbol table")
    pos += 1
    length, pos = (_read_varuint(data, pos, end)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
    stop = pos + length
    if stop > end or data[pos : pos + 2] != b"\x81\x83":  # one annotation: $ion_symbol_table
        raise _Unsupported("not a plain local symbol table")
    pos += 2
    td = data[pos]
    if td >> 4 != 0xD or td & 0x0F in (1, 0x0F):
        raise _Unsupported("local symbol table is not a plain struct")
    pos += 1
    length, pos = (_read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
    if pos + length != stop:
        raise _Unsupported("local symbol table length")
    tokens: list[SymbolToken | None] = list(_SYSTEM_TOKENS)
    if pos == stop:  # amazon.ion 0.15's C extension reads the next value wrongly after this
        raise _Unsupported("empty local symbol table")
    if data[pos] != 0x87:  # the one field: symbols
        raise _Unsupported("local symbol table field other than symbols")
    pos += 1
    td = data[pos]
    if td >> 4 != 0xB or td & 0x0F == 0x0F:
        raise _Unsupported("symbols is not a list")
    pos += 1
    length, pos = (_read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
    if pos + length != stop:
        raise _Unsupported("local symbol table holds more than symbols")
    sid = _FIRST_LOCAL
    while pos < stop:
        td = data[pos]
        if td >> 4 != 8 or td & 0x0F == 0x0F:
            raise _Unsupported("a local symbol that is not a string")
        pos += 1
        length, pos = (_read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
        if pos + length > stop:
            raise _Unsupported("a local symbol runs past the table")
        tokens.append(SymbolToken(data[pos : pos + length].decode("utf-8"), sid, None))
        pos += length
        sid += 1
    return tokens, stop


def _annotation_sid(data: bytes, pos: int, end: int) -> int | None:
    """The first annotation's symbol id of the annotation wrapper at ``pos`` (None: no wrapper)."""
    if pos >= end or data[pos] >> 4 != 0xE or data[pos] == 0xE0:
        return None
    p = pos + 1
    if data[pos] & 0x0F == 0x0E:
        _, p = _read_varuint(data, p, end)
    _, p = _read_varuint(data, p, end)
    return _read_varuint(data, p, end)[0]


def read_fast(data: bytes) -> Any:
    """The one value of an Ion binary stream by the fast reader alone; raises ``IonCodecError``
    for anything outside what it reads (``decode`` then uses simpleion). Exposed for tests."""
    try:
        data = bytes(data)
        end = len(data)
        if data[:4] != BVM or end < 5:
            raise _Unsupported("no version marker or no value")
        pos = 4
        tokens: list[SymbolToken | None] = list(_SYSTEM_TOKENS)
        if _annotation_sid(data, pos, end) == 3:  # $ion_symbol_table::
            tokens, pos = _local_symbols(data, pos, end)
            if _annotation_sid(data, pos, end) == 3:
                raise _Unsupported("a second symbol table")
        if pos >= end or data[pos] in range(0x0F) or data[pos] == 0xE0:
            raise _Unsupported("no value, padding or a second version marker")
        sid = _annotation_sid(data, pos, end)
        if sid is not None and _token(tokens, sid).text == "$ion_symbol_table":
            raise _Unsupported("a top-level value annotated $ion_symbol_table")
        value, pos = _read(data, pos, end, tokens, 0)
        if pos != end:
            raise _Unsupported("more than one top-level value")
        if value.ion_type is _SYMBOL and value.text == "$ion_1_0":
            raise _Unsupported("a top-level $ion_1_0 symbol is a version marker")
        return value
    except IonCodecError:
        raise
    except Exception as exc:  # _Unsupported, and whatever malformed bytes make Python raise
        raise IonCodecError(f"not read by the fast reader: {type(exc).__name__}: {exc}") from None


def _c_extension_active() -> bool:
    """Whether amazon.ion reads through its C extension (0.15 and later, where built)."""
    return bool(getattr(simpleion, "c_ext", False)) and bool(
        getattr(simpleion, "__IS_C_EXTENSION_SUPPORTED", False)
    )


FAST_READER: bool = not _c_extension_active()
"""Whether ``decode`` and ``decode_all`` use the fast reader here (else simpleion directly)."""


def decode(data: bytes) -> Any:
    """The one Ion value of an Ion binary stream, exactly as ``simpleion.loads(data)`` gives it
    (and raising what it raises)."""
    raw = bytes(data)
    if FAST_READER:
        try:
            return read_fast(raw)
        except IonCodecError:
            pass
    return simpleion.loads(raw)


def decode_all(data: bytes) -> list[Any]:
    """Every top-level value, exactly as ``simpleion.loads(data, single_value=False)`` gives them
    (and raising what it raises)."""
    raw = bytes(data)
    if FAST_READER:
        try:
            return [read_fast(raw)]
        except IonCodecError:
            pass
    return list(simpleion.loads(raw, single_value=False))


# --- copying ------------------------------------------------------------------------------------


class _CopyFallback(Exception):
    pass


def _copy(v: Any) -> Any:
    if v.ion_annotations:
        raise _CopyFallback  # its annotation symbol ids would be renumbered by a round trip
    cls = type(v)
    t = v.ion_type
    if cls is IonPyText and t is _STRING:
        s = IonPyText(v)
        s.ion_type = t
        return s
    if cls is IonPyDict:
        d = IonPyDict()
        d.ion_type = t
        add = d.add_item
        for k, x in struct_items(v):
            if type(k) is not str:
                raise _CopyFallback
            add(k, _copy(x))
        return d
    if cls is IonPyInt or cls is IonPyBool:
        i = cls(v)
        i.ion_type = t
        return i
    if cls is IonPyList:
        items = IonPyList(_copy(x) for x in v)
        items.ion_type = t
        items.ion_annotations = ()
        return items
    if cls is IonPyNull:
        null = IonPyNull()
        null.ion_type = t
        return null
    if cls is IonPyDecimal and v.is_finite():
        return IonPyDecimal(v)
    if cls is IonPyFloat:
        return IonPyFloat(v)
    if cls is IonPyBytes:
        lob = IonPyBytes(v)
        lob.ion_type = t
        return lob
    if cls is IonPyTimestamp:
        return decode(encode(v))
    raise _CopyFallback  # symbols (sids), plain Python values, anything else


def copy_value(value: Any) -> Any:
    """A private copy of an Ion value, exactly ``decode(encode(value))``: a direct copy of the
    ``IonPy*`` values ``decode`` gives (several times faster), the round trip for anything else
    (plain Python values, symbols, annotations)."""
    try:
        return _copy(value)
    except (_CopyFallback, AttributeError):
        return decode(encode(value))
