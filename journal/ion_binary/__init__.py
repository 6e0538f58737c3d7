"""Ion 1.0 binary, read and written once for the whole project: the ingest path, the buffer and
the ledger use it (and the ingest Lambda, so no ionhash or pyqldb here).

amazon.ion 0.9.3 (the version pyqldb pins, so the one local runs and the settler use) is pure
Python: ``simpleion.loads`` takes about 3 ms of CPU for one stream record, ``simpleion.dumps``
about a millisecond for a small document. This package reads and writes the same values itself:

- ``decode(data)`` / ``decode_all(data)`` give exactly what ``simpleion.loads(data)`` /
  ``simpleion.loads(data, single_value=False)`` give (the same ``IonPy*`` values, symbol tokens
  and timestamp precision) and raise what they raise: the fast reader takes the Ion that QLDB and
  amazon.ion write (a version marker, at most one local symbol table of plain strings, one value)
  and hands anything else, malformed bytes included, to simpleion. It never accepts what
  simpleion refuses; ``read_fast`` is the fast reader alone, for tests.
- ``encode(value)`` writes one value (plain Python or ``IonPy*``) with a local symbol table.
- ``copy_value(value)`` is ``decode(encode(value))``, several times faster.
- ``check(data)`` / ``segments(data)``: the structure of Ion binary checked before amazon.ion
  0.15's C extension reads it (it can hang on malformed input), and a Firehose object split into
  its Ion binary streams; ``IonBinaryError`` names the offset.

By reason to change: ``encoding`` (the version marker, VarUInt fields and the errors, shared by
all), ``writer``, ``reader`` (the fast reader), ``structure`` (the check and the segments); this
module chooses the reader and copies values. Only ``amazon.ion`` is imported.

Checked against amazon.ion in ``tests/journal/test_journal_ion_binary.py`` (samples, edge cases,
generated values and mutated real records, in both environments),
``tests/ingest/test_ingest_ionbin.py``, ``tests/ingest/test_ingest_fast_decode.py`` and
``tests/ledger/test_ledger_ion_binary.py``.

Which reader ``decode`` uses is chosen at import (``FAST_READER``, read at each call, so a test
may switch it here): the fast one, unless amazon.ion reads through its C extension (0.15 in the
ingest Lambda), which is faster still and is then used directly. Measured on this project's
2-core machine, CPU time per record over the 698 stream records of a simulated stream (``demo
--transactions 300 --seed 3``), symbol-table cache emptied before each pass, medians of 5 passes,
ranges over 3 to 6 rounds:

    =======================  ==================  ==============================
    reader                   .venv (0.9.3)       .venv-ingest (0.15, C ext.)
    =======================  ==================  ==============================
    simpleion.loads          2,950-3,350 us      100-135 us   <- used there
    fast reader              160-205 us <- used  150-170 us
    =======================  ==================  ==============================
"""

from __future__ import annotations

from typing import Any

from amazon.ion import simpleion
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
    IonPyTimestamp,
)

from journal.ion_binary.encoding import BVM, IonBinaryError, IonCodecError
from journal.ion_binary.reader import read_fast
from journal.ion_binary.structure import Segment, check, check_value, segments
from journal.ion_binary.writer import (
    _decimal_body as _decimal_body,  # the Ion hash's (ledger.hashing) part of the writer
)
from journal.ion_binary.writer import (
    _timestamp_body as _timestamp_body,
)
from journal.ion_binary.writer import encode, ion_type_of, struct_items

__all__ = [
    "BVM",
    "FAST_READER",
    "IonBinaryError",
    "IonCodecError",
    "Segment",
    "check",
    "check_value",
    "copy_value",
    "decode",
    "decode_all",
    "encode",
    "ion_type_of",
    "read_fast",
    "segments",
    "struct_items",
]

_STRING = IonType.STRING


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
