"""The fast Ion binary reader: ``read_fast(data)`` reads the Ion that QLDB and amazon.ion write
into the same ``IonPy*`` values as amazon.ion 0.9.3's ``simpleion.loads`` (which ``decode`` in
``journal.ion_binary`` falls back to for anything else)."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

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

from journal.ion_binary.encoding import BVM, FIRST_LOCAL_SID, IonCodecError, read_varuint

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
    *(SYSTEM_SYMBOL_TABLE.get(sid) for sid in range(1, FIRST_LOCAL_SID)),
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
_new_datetime = datetime.__new__
_DECIMAL_ZERO = Decimal(0)


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
    return _decimal_and_exponent(data, pos, end)[0]


def _decimal_and_exponent(data: bytes, pos: int, end: int) -> tuple[Decimal, int]:
    """``_decimal_value`` and its exponent. A non-zero coefficient is given to ``Decimal`` as
    text (``<sign><digits>E<exponent>``, exact like the digit tuple, and parsed in C): the same
    digits and exponent."""
    exponent, _, pos = _read_varint(data, pos, end)
    if not -_MAX_EXPONENT < exponent < _MAX_EXPONENT or end - pos > 1000:
        raise _Unsupported("decimal out of the fast reader's range")
    if pos >= end:
        return Decimal((0, (0,), exponent)), exponent
    first = data[pos]
    sign = 1 if first & 0x80 else 0
    coefficient = int.from_bytes(bytes((first & 0x7F,)) + data[pos + 1 : end], "big")
    if coefficient == 0:
        return Decimal((sign, (0,), exponent)), exponent
    return Decimal(f"{'-' if sign else ''}{coefficient}E{exponent}"), exponent


@lru_cache(maxsize=4096)
def _offset_tz(minutes: int) -> OffsetTZInfo:
    """The ``OffsetTZInfo`` of an offset, one per offset (a tzinfo holds no state of a value)."""
    return OffsetTZInfo(timedelta(minutes=minutes))


def _timestamp_value(data: bytes, pos: int, end: int) -> Any:
    """As amazon.ion's binary reader builds it (``Timestamp.adjust_from_utc_fields``)."""
    offset, negative, pos = _read_varint(data, pos, end)
    tz = None if (negative and offset == 0) else _offset_tz(offset)
    year, pos = read_varuint(data, pos, end)
    precision = TimestampPrecision.YEAR
    month = day = 1
    hour = minute = second = 0
    fraction = None
    exponent = 0  # the fraction's
    if pos < end:
        month, pos = read_varuint(data, pos, end)
        precision = TimestampPrecision.MONTH
        if pos < end:
            day, pos = read_varuint(data, pos, end)
            precision = TimestampPrecision.DAY
            if pos < end:
                hour, pos = read_varuint(data, pos, end)
                minute, pos = read_varuint(data, pos, end)
                precision = TimestampPrecision.MINUTE
                if pos < end:
                    second, pos = read_varuint(data, pos, end)
                    precision = TimestampPrecision.SECOND
                    if pos < end:
                        fraction, exponent = _decimal_and_exponent(data, pos, end)
                        if fraction == 0 and exponent > -1:
                            fraction = None
    if tz is None or not offset:
        # What adjust_from_utc_fields then from_value build, in one step (UTC or unknown offset:
        # no adjustment), checked against amazon.ion by the differential tests: the datetime,
        # then the fields amazon.ion's Timestamp normalizes (both versions alike, a third of
        # the time of its constructor): no fraction is 0 digits and Decimal(0); a fraction keeps
        # its digits, up to 6 of them in the microseconds.
        if fraction is None:
            value = _new_datetime(IonPyTimestamp, year, month, day, hour, minute, second, 0, tz)
            value.fractional_precision = 0
            value.fractional_seconds = _DECIMAL_ZERO
        else:
            if not 0 <= fraction < 1:
                raise _Unsupported("timestamp fraction outside [0, 1)")
            value = _new_datetime(
                IonPyTimestamp, year, month, day, hour, minute, second,
                int(fraction * 1_000_000), tz,
            )  # fmt: skip
            value.fractional_precision = min(-exponent, 6)
            value.fractional_seconds = fraction
        value.precision = precision
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
            length, pos = read_varuint(data, pos, end)
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
                sid, pos = read_varuint(data, pos, stop)
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
        if sid < FIRST_LOCAL_SID:
            raise _Unsupported("symbol zero or a system symbol as a value")
        token = _token(tokens, sid)
        return IonPySymbol(token.text, token.sid, token.location), stop
    if high == 0xE:
        if low < 3 or low == 0x0F:
            raise _Unsupported(f"annotation wrapper {td:#x}")
        alen, p = read_varuint(data, pos, stop)
        aend = p + alen
        if alen == 0 or aend >= stop:
            raise _Unsupported("annotation wrapper without annotations or value")
        annotations = []
        while p < aend:
            sid, p = read_varuint(data, p, aend)
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
        length, p = read_varuint(data, pos + 1, end)
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
    length, pos = (read_varuint(data, pos, end)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
    stop = pos + length
    if stop > end or data[pos : pos + 2] != b"\x81\x83":  # one annotation: $ion_symbol_table
        raise _Unsupported("not a plain local symbol table")
    pos += 2
    td = data[pos]
    if td >> 4 != 0xD or td & 0x0F in (1, 0x0F):
        raise _Unsupported("local symbol table is not a plain struct")
    pos += 1
    length, pos = (read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
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
    length, pos = (read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
    if pos + length != stop:
        raise _Unsupported("local symbol table holds more than symbols")
    sid = FIRST_LOCAL_SID
    while pos < stop:
        td = data[pos]
        if td >> 4 != 8 or td & 0x0F == 0x0F:
            raise _Unsupported("a local symbol that is not a string")
        pos += 1
        length, pos = (read_varuint(data, pos, stop)) if td & 0x0F == 0x0E else (td & 0x0F, pos)
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
        _, p = read_varuint(data, p, end)
    _, p = read_varuint(data, p, end)
    return read_varuint(data, p, end)[0]


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
