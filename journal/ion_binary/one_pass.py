"""One pass over a stream record's Ion binary: structure, values and canonical encoding together.

``read_fields(data)`` walks the bytes of one Ion binary stream holding one struct (a QLDB stream
record) once, and gives its top-level fields as ``(name, value, canonical)``: the value read, and
the bytes ``journal.canonical`` encodes that value to (its fingerprint is a SHA-256 of such
bytes). It replaces, for the records QLDB writes, three walks of the ingest path: the structure
check (``structure.check``), the parse (``simpleion.loads`` or the fast reader) and the
fingerprint's walk of the parsed value. ``read_record(data)`` gives, with the fields, a revision's
document (``payload.revision.data``) as Ion binary made of the record's own bytes (its version
marker and local symbol table, then the document's bytes): the buffer stores that instead of
writing the document again.

Values are plain Python, which ``journal.records.record_from_ion`` reads as it reads amazon.ion's
(``str``, ``int``, ``bytes``, ``list``, ``dict``, ``None`` for a null, amazon.ion's
``IonPyTimestamp``), except under the path ``ionpy`` (a revision's ``payload.revision.data``):
there, values are the ``IonPy*`` objects the fast reader (``reader``) builds, which are what a
revision's document is everywhere after ingest.

It reads only the common shape and answers None for anything else, never guessing: malformed
bytes of any kind (what ``structure.check`` refuses), and also, though well-formed, a second value
or symbol table, shared symbol tables, annotations, symbols, clobs, sexps, NOP padding, sorted
structs, repeated field names, 4-byte floats, negative zero, timestamp fractions finer than a
microsecond, nesting deeper than ``MAX_DEPTH``; outside ``ionpy`` also bools, floats and
decimals. On None the caller takes the general path (check, parse, typed record, fingerprint),
which gives the rejection and its reason, or the record. Where this reads a record, it reads
exactly what the general path reads (``tests/ingest/test_ingest_one_pass.py`` holds the two
to the same values, canonical bytes and fingerprints, for real, generated and mutated records,
in both amazon.ion environments).
"""

from __future__ import annotations

import struct
from decimal import Decimal
from functools import lru_cache
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import (
    IonPyBool,
    IonPyBytes,
    IonPyDecimal,
    IonPyDict,
    IonPyFloat,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPyText,
)

from journal.ion_binary import reader
from journal.ion_binary.encoding import BVM, read_varuint

DATA_PATH = ("payload", "revision", "data")
"""A revision's document: read as ``IonPy*`` values, and given as its bytes too."""

MAX_DEPTH = 40
"""Nesting read here; deeper records take the general path (which refuses past 100)."""

Field = tuple[str, Any, bytes]
_Path = tuple[str, ...] | None  # a field path below a value (``ionpy``)
_Span = list[int] | None  # where the bytes of the value at that path start and end

_NULL_NAMES: dict[int, bytes] = {
    0x0F: b"nNULL", 0x1F: b"nBOOL", 0x2F: b"nINT", 0x3F: b"nINT", 0x4F: b"nFLOAT",
    0x5F: b"nDECIMAL", 0x6F: b"nTIMESTAMP", 0x7F: b"nSYMBOL", 0x8F: b"nSTRING", 0x9F: b"nCLOB",
    0xAF: b"nBLOB", 0xBF: b"nLIST", 0xCF: b"nSEXP", 0xDF: b"nSTRUCT",
}  # fmt: skip
_STRING, _INT, _BOOL, _BLOB = IonType.STRING, IonType.INT, IonType.BOOL, IonType.BLOB
_LIST, _STRUCT = IonType.LIST, IonType.STRUCT
_NULL_TYPES = reader._NULL_TYPES
_unpack_double = struct.Struct(">d").unpack_from


# The exponents every amazon.ion reads alike: decimal128's (Emin - precision + 1 .. Emax).
DECIMAL_EXPONENTS = (-6176, 6111)


class _Outside(Exception):
    """Not the shape read here (or malformed): the general path decides."""


class _Symbols:
    """A symbol table's texts by symbol id, and each text as the canonical encoding's struct
    field prefix (``<length>:<utf-8>=``)."""

    __slots__ = ("names", "prefixes")

    def __init__(self, tokens: list[Any]) -> None:
        self.names: list[str | None] = [None if t is None else t.text for t in tokens]
        self.prefixes: list[bytes] = [
            b"" if n is None else b"%d:%b=" % (len(n.encode("utf-8")), n.encode("utf-8"))
            for n in self.names
        ]


_SYSTEM = _Symbols(list(reader._SYSTEM_TOKENS))


@lru_cache(maxsize=256)
def _local(table: bytes) -> _Symbols:
    return _Symbols(reader._symbol_table(table))


def _container(
    data: bytes, pos: int, end: int, syms: _Symbols, depth: int, *, ionpy: _Path, at: _Span = None
) -> tuple[Any, bytes, int]:
    """The value whose type descriptor is at ``pos``: (value, canonical bytes, position after).
    ``ionpy``: the field path below this value whose value is read as ``IonPy*`` (``()``: this
    value itself)."""
    td = data[pos]
    pos += 1
    high = td >> 4
    low = td & 0x0F
    as_ionpy = ionpy == ()
    if low == 0x0F:
        name = _NULL_NAMES.get(td)
        if name is None:
            raise _Outside("type descriptor")
        if td == 0x0F and not as_ionpy:
            return None, name, pos
        null = IonPyNull()  # a typed null is not a missing field to record_from_ion
        null.ion_type = _NULL_TYPES[td]
        return null, name, pos
    if high == 1:  # its low nibble is the value, not a length
        if low > 1 or not as_ionpy:
            raise _Outside("bool")
        b = IonPyBool(bool(low))
        b.ion_type = _BOOL
        return b, b"b1" if low else b"b0", pos
    if low == 0x0E:
        length, pos = read_varuint(data, pos, end)
    else:
        length = low
    stop = pos + length
    if stop > end:
        raise _Outside("value past its container")
    if high == 8:
        raw = data[pos:stop]
        text = raw.decode("utf-8")
        if as_ionpy:
            text = IonPyText(text)
            text.ion_type = _STRING
        return text, b"s%d:%b" % (length, raw), stop
    if high == 0xD:
        if low == 1 or depth >= MAX_DEPTH:
            raise _Outside("sorted struct or deep nesting")
        return _struct(data, pos, stop, syms, depth + 1, ionpy=ionpy, at=at)
    if high in {2, 3}:
        n = int.from_bytes(data[pos:stop], "big")
        if high == 3:
            if not n:
                raise _Outside("negative zero")
            n = -n
        if as_ionpy:
            i = IonPyInt(n)
            i.ion_type = _INT
            return i, b"i%d" % n, stop
        return n, b"i%d" % n, stop
    if high == 0xB:
        if depth >= MAX_DEPTH:
            raise _Outside("deep nesting")
        items: list[Any] = IonPyList() if as_ionpy else []
        parts: list[bytes] = []
        inner = () if as_ionpy else None
        while pos < stop:
            value, enc, pos = _container(data, pos, stop, syms, depth + 1, ionpy=inner)
            items.append(value)
            parts.append(enc)
        if as_ionpy:
            items.ion_type = _LIST  # type: ignore[attr-defined]
            items.ion_annotations = ()  # type: ignore[attr-defined]
        return items, b"[" + b",".join(parts) + b"]", stop
    if high == 0xA:
        raw = data[pos:stop]
        if as_ionpy:
            lob = IonPyBytes(raw)
            lob.ion_type = _BLOB
            return lob, b"x%d:%b" % (length, raw), stop
        return raw, b"x%d:%b" % (length, raw), stop
    if high == 6:
        if not length:
            raise _Outside("empty timestamp")
        ts = reader._timestamp_value(data, pos, stop)
        fraction = ts.fractional_seconds
        if fraction is not None and fraction.as_tuple().exponent < -6:
            raise _Outside("timestamp fraction finer than a microsecond")
        enc = b"t%b|%d|%b" % (
            ts.isoformat().encode(),
            ts.precision.value,
            str(ts.fractional_precision).encode(),
        )
        return ts, enc, stop
    if as_ionpy:
        if high == 5:
            value = reader._decimal_value(data, pos, stop) if length else Decimal()
            exponent = value.as_tuple().exponent
            if (
                not isinstance(exponent, int)
                or not DECIMAL_EXPONENTS[0] <= exponent <= DECIMAL_EXPONENTS[1]
            ):
                # amazon.ion's C extension (0.15) clamps exponents beyond decimal128's to its
                # bounds (0d16406 reads as 0E+6111): the general path reads what it reads.
                raise _Outside("decimal exponent beyond decimal128's")
            dec = IonPyDecimal(value)
            return dec, b"d%b" % str(Decimal(dec)).encode(), stop
        if high == 4:
            if length == 8:
                f = IonPyFloat(_unpack_double(data, pos)[0])
            elif length == 0:
                f = IonPyFloat(0.0)
            else:
                raise _Outside("float size")
            return f, b"f" + float(f).hex().encode(), stop
    raise _Outside("type not read here")


def _struct(
    data: bytes, pos: int, stop: int, syms: _Symbols, depth: int, *, ionpy: _Path, at: _Span = None
) -> tuple[Any, bytes, int]:
    out, items = _fields(data, pos, stop, syms, depth, ionpy=ionpy, at=at)
    if ionpy == ():
        out.ion_type = _STRUCT
    items.sort()
    return out, b"{" + b",".join(items) + b"}", stop


def _fields(
    data: bytes, pos: int, stop: int, syms: _Symbols, depth: int, *, ionpy: _Path, at: _Span = None
) -> tuple[Any, list[bytes]]:
    """The fields of the struct whose content is ``data[pos:stop]``: the struct read, and each
    field's item of the canonical encoding, in field order. ``at`` (outside ``ionpy``) gets the
    start and end of the bytes of the value at the path ``ionpy``."""
    as_ionpy = ionpy == ()
    out: Any = IonPyDict() if as_ionpy else {}
    seen: set[str] | None = set() if as_ionpy else None
    items: list[bytes] = []
    names, prefixes = syms.names, syms.prefixes
    inner: tuple[str, ...] | None = () if as_ionpy else None
    while pos < stop:
        sid = data[pos]
        if sid & 0x80:
            sid &= 0x7F
            pos += 1
        else:
            sid, pos = read_varuint(data, pos, stop)
        if pos >= stop or not 0 < sid < len(names):
            raise _Outside("field name")
        name = names[sid]
        if name is None:
            raise _Outside("field name without text")
        below = inner if ionpy is None or as_ionpy else (ionpy[1:] if ionpy[0] == name else None)
        td = data[pos]
        high = td >> 4
        low = td & 0x0F
        # Inline, the commonest values of a record: strings (ids, names) and blobs (hashes) of
        # under 128 bytes, and small non-negative ints; anything else (or malformed) below.
        if high in {8, 0xA} and (low < 14 or (low == 14 and data[pos + 1] & 0x80)):
            if low == 14:
                p = pos + 2
                q = p + (data[pos + 1] & 0x7F)
            else:
                p = pos + 1
                q = p + low
            if q > stop:
                raise _Outside("value past its container")
            raw = data[p:q]
            if high == 8:
                value: Any = raw.decode("utf-8")
                enc = b"s%d:%b" % (q - p, raw)
                if as_ionpy:
                    value = IonPyText(value)
                    value.ion_type = _STRING
            else:
                enc = b"x%d:%b" % (q - p, raw)
                if as_ionpy:
                    value = IonPyBytes(raw)
                    value.ion_type = _BLOB
                else:
                    value = raw
            pos = q
        elif high == 2 and low < 9 and not as_ionpy:
            q = pos + 1 + low
            if q > stop:
                raise _Outside("value past its container")
            value = int.from_bytes(data[pos + 1 : q], "big")
            enc = b"i%d" % value
            pos = q
        elif below == () and not as_ionpy and at is not None:  # the value at the path
            start = pos
            value, enc, pos = _container(data, pos, stop, syms, depth, ionpy=below)
            at += (start, pos)
        else:
            value, enc, pos = _container(data, pos, stop, syms, depth, ionpy=below, at=at)
        if as_ionpy:
            if name in seen:  # type: ignore[operator]
                raise _Outside("repeated field name")
            seen.add(name)  # type: ignore[union-attr]
            out.add_item(name, value)
        else:
            if name in out:
                raise _Outside("repeated field name")
            out[name] = value
        items.append(prefixes[sid] + enc)
    if pos != stop:
        raise _Outside("struct length")
    return out, items


def read_record(
    data: bytes, ionpy: tuple[str, ...] = DATA_PATH
) -> tuple[list[Field], bytes | None] | None:
    """The top-level fields of the one struct of ``data`` as ``(name, value, canonical)``, in
    order, and the value at the path ``ionpy`` as a self-contained Ion binary stream (None: no
    such field): the record's own bytes of that value behind its version marker and local symbol
    table, which read back as the value read here, not written again. None when ``data`` is not
    of the shape read here (see the module's docstring)."""
    try:
        end = len(data)
        if data[:4] != BVM or end < 5:
            return None
        pos = 4
        syms = _SYSTEM
        if reader._annotation_sid(data, pos, end) == 3:  # $ion_symbol_table::
            stop = reader._local_symbols(data, pos, end)[1]
            syms = _local(data[pos:stop])
            pos = stop
        header = pos  # the version marker and the symbol table: what the value's bytes need
        td = data[pos]
        if td >> 4 != 0xD or td & 0x0F in (1, 0x0F):
            return None  # annotations (a second table too), not a struct, or padding
        if td & 0x0F == 0x0E:
            length, pos = read_varuint(data, pos + 1, end)
        else:
            length, pos = td & 0x0F, pos + 1
        if pos + length != end:
            return None  # a value past the end, or more after it
        found: list[int] = []
        out, items = _fields(data, pos, end, syms, 1, ionpy=ionpy, at=found)
        fields = [(name, v, item) for (name, v), item in zip(out.items(), items, strict=True)]
        value = data[:header] + data[found[0] : found[1]] if len(found) == 2 else None
        return fields, value
    except Exception:  # _Outside, and whatever malformed bytes make the value constructors raise
        return None


def read_fields(data: bytes, ionpy: tuple[str, ...] = DATA_PATH) -> list[Field] | None:
    """``read_record``'s fields alone."""
    read = read_record(data, ionpy)
    return None if read is None else read[0]
