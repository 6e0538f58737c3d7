"""Ion hashes for the ledger's journal: revision hashes and statement digests.

``ion_hash`` is the Ion Hash (SHA-256) of a value as the Ion Hash specification defines it, the
hash QLDB uses (``dot(IonHash(data), IonHash(metadata))`` for a revision, the statement text's hash
dot-folded with each parameter's for a digest). It is computed here, directly on simpleion or
plain Python values: the ionhash package (1.2.1) needs every nested value converted to simpleion
types first, which costs more than the hash itself on the replay path. ``tests/ledger`` checks
that both give the same bytes on the samples and on generated values; ``ionhash_reference``
gives the package's answer when it imports (amazon.ion 0.11 and later break it, which does not
affect this module).
"""

from __future__ import annotations

import hashlib
import logging
import math
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from amazon.ion.core import IonType, Timestamp
from amazon.ion.simple_types import (
    IonPyDecimal,
    IonPyDict,
    IonPyInt,
    IonPyList,
    IonPyNull,
    IonPyText,
    IonPyTimestamp,
)

from journal.hashes import dot
from journal.ion_binary import (
    _decimal_body,
    _timestamp_body,
    decode,
    encode,
    ion_type_of,
    struct_items,
)

log = logging.getLogger(__name__)


_B, _E, _ESC = b"\x0b", b"\x0e", b"\x0c"
_NULL_TQ = {
    IonType.NULL: 0x0F, IonType.BOOL: 0x1F, IonType.INT: 0x2F, IonType.FLOAT: 0x4F,
    IonType.DECIMAL: 0x5F, IonType.TIMESTAMP: 0x6F, IonType.SYMBOL: 0x7F, IonType.STRING: 0x8F,
    IonType.CLOB: 0x9F, IonType.BLOB: 0xAF, IonType.LIST: 0xBF, IonType.SEXP: 0xCF,
    IonType.STRUCT: 0xDF,
}  # fmt: skip


_sha256 = hashlib.sha256
_STRING, _STRUCT, _INT, _TIMESTAMP = IonType.STRING, IonType.STRUCT, IonType.INT, IonType.TIMESTAMP
_LIST, _SEXP, _DECIMAL, _BOOL = IonType.LIST, IonType.SEXP, IonType.DECIMAL, IonType.BOOL
_FLOAT, _SYMBOL, _BLOB, _CLOB = IonType.FLOAT, IonType.SYMBOL, IonType.BLOB, IonType.CLOB


def _escape(raw: bytes) -> bytes:
    if b"\x0b" in raw or b"\x0e" in raw or b"\x0c" in raw:
        return raw.replace(_ESC, b"\x0c\x0c").replace(_B, b"\x0c\x0b").replace(_E, b"\x0c\x0e")
    return raw


def _scalar(tq: int, representation: bytes) -> bytes:
    if not representation:
        return bytes((0x0B, tq, 0x0E))
    return _B + bytes((tq,)) + _escape(representation) + _E


@lru_cache(maxsize=4096)
def _symbol(text: str | None) -> bytes:
    if text is None:
        return b"\x0b\x71\x0e"
    return _scalar(0x70, text.encode("utf-8"))


def _struct(items: Iterable[tuple[Any, Any]]) -> bytes:
    fields = []
    by_class = _BY_CLASS
    for k, x in items:
        name = _symbol(k if type(k) is str else str(getattr(k, "text", k)))
        fast = by_class.get(type(x))
        fields.append(_sha256(name + (fast(x) if fast is not None else _typed(x))).digest())
    fields.sort()
    return b"\x0b\xd0" + _escape(b"".join(fields)) + _E


def _serialize(v: Any) -> bytes:
    fast = _BY_CLASS.get(type(v))
    return fast(v) if fast is not None else _typed(v)


def _typed(v: Any) -> bytes:
    """Any value by its ``ion_type`` and annotations (or, without one, its Python type)."""
    t = getattr(v, "ion_type", None)
    if t is None:
        return _serialize_bare(v, ion_type_of(v))
    annotations = getattr(v, "ion_annotations", None)
    typed = _TYPED.get(t)
    body = typed(v) if typed is not None and not isinstance(v, IonPyNull) else _serialize_bare(v, t)
    if annotations:
        names = b"".join(_symbol(getattr(a, "text", a)) for a in annotations)
        return _B + b"\xe0" + names + body + _E
    return body


def _string(v: Any) -> bytes:
    raw: bytes = v.encode("utf-8")
    if b"\x0b" in raw or b"\x0e" in raw or b"\x0c" in raw:
        raw = _escape(raw)
    return b"\x0b\x80" + raw + _E


def _int(v: Any) -> bytes:
    n = int(v)
    if n == 0:
        return b"\x0b\x20\x0e"
    m = -n if n < 0 else n
    return _scalar(0x30 if n < 0 else 0x20, m.to_bytes((m.bit_length() + 7) // 8, "big"))


def _timestamp(v: Any) -> bytes:
    return b"\x0b\x60" + _escape(_timestamp_body(v)) + _E


def _list(v: Any) -> bytes:
    return b"\x0b\xb0" + b"".join(map(_serialize, v)) + _E


def _blob(v: Any) -> bytes:
    return _scalar(0xA0, bytes(v))


def _serialize_bare(v: Any, t: IonType) -> bytes:
    if v is None or isinstance(v, IonPyNull):
        return bytes((0x0B, _NULL_TQ[t], 0x0E))
    if t is _STRING:
        return b"\x0b\x80" + _escape(str(v).encode("utf-8")) + _E
    if t is _STRUCT:
        return _struct(struct_items(v))
    if t is _INT:
        return _int(v)
    if t is _TIMESTAMP:
        return b"\x0b\x60" + _escape(_timestamp_body(v)) + _E
    if t is _LIST or t is _SEXP:
        tq = b"\xb0" if t is _LIST else b"\xc0"
        return _B + tq + b"".join(map(_serialize, v)) + _E
    if t is _DECIMAL:
        d = Decimal(v)
        if not d.is_signed() and d.is_zero() and d.as_tuple().exponent == 0:
            return b"\x0b\x50\x0e"
        return _scalar(0x50, _decimal_body(d))
    if t is _BOOL:
        return b"\x0b\x11\x0e" if v else b"\x0b\x10\x0e"
    if t is _FLOAT:
        f = float(v)
        if f == 0.0 and math.copysign(1.0, f) > 0:
            return b"\x0b\x40\x0e"
        return _scalar(0x40, struct.pack(">d", f))
    if t is _SYMBOL:
        return _symbol(getattr(v, "text", v))
    if t is _BLOB or t is _CLOB:
        return _scalar(0xA0 if t is _BLOB else 0x90, bytes(v))
    if t is IonType.NULL:
        return b"\x0b\x0f\x0e"
    raise TypeError(f"cannot hash Ion type {t}")


# Dispatch without looking the type up: plain Python classes whose Ion type is fixed (not their
# subclasses: bool is not int here, simpleion's values carry ``ion_type``), and simpleion values
# by their ``ion_type`` (their null forms and the rarer types go through ``_serialize_bare``).
_PLAIN: dict[type, Callable[[Any], bytes]] = {
    str: _string,
    dict: lambda v: _struct(v.items()),
    int: _int,
    bytes: _blob,
    list: _list,
    Timestamp: _timestamp,
    datetime: _timestamp,
}
_TYPED: dict[IonType, Callable[[Any], bytes]] = {
    _STRING: _string,
    _STRUCT: lambda v: _struct(struct_items(v)),
    _INT: _int,
    _TIMESTAMP: _timestamp,
    _LIST: _list,
}


def _unannotated(cls: type, t: IonType, body: Callable[[Any], bytes]) -> Callable[[Any], bytes]:
    """The fast path of a simpleion class: ``body`` when the value is of Ion type ``t`` without
    annotations (one class holds several types: ``IonPyText`` strings and symbols, ``IonPyInt``
    ints and bools, ``IonPyList`` lists and sexps), else the general ``_typed``."""

    def fast(v: Any) -> bytes:
        if v.ion_type is t and not v.ion_annotations:
            return body(v)
        return _typed(v)

    return fast


# Dispatch by exact class, tried first: the plain classes, and simpleion's classes through their
# fast path (decoded revisions are simpleion values; their null forms are ``IonPyNull``, which
# is not here and goes through ``_typed``).
_BY_CLASS: dict[type, Callable[[Any], bytes]] = {
    **_PLAIN,
    IonPyText: _unannotated(IonPyText, _STRING, _string),
    IonPyDict: _unannotated(IonPyDict, _STRUCT, lambda v: _struct(struct_items(v))),
    IonPyInt: _unannotated(IonPyInt, _INT, _int),
    IonPyTimestamp: _unannotated(IonPyTimestamp, _TIMESTAMP, _timestamp),
    IonPyList: _unannotated(IonPyList, _LIST, _list),
    IonPyDecimal: _unannotated(IonPyDecimal, _DECIMAL, lambda v: _serialize_bare(v, _DECIMAL)),
}


def ion_hash(value: Any) -> bytes:
    """The SHA-256 Ion hash of ``value`` (a Python ``str`` hashes as an Ion string)."""
    return hashlib.sha256(_serialize(value)).digest()


def ionhash_reference(value: Any) -> bytes | None:
    """The ionhash package's answer for ``value`` (None when it does not import): the reference
    ``ion_hash`` is checked against."""
    try:
        from ionhash.fast_value_hasher import hash_value
        from ionhash.hasher import hashlib_hash_function_provider
    except Exception as exc:  # ImportError, or ionhash failing against a newer amazon.ion
        log.info("ionhash unavailable: %s", exc)
        return None
    return bytes(hash_value(as_ion(value), hashlib_hash_function_provider("SHA256")))


def _is_ionpy(value: Any) -> bool:
    """True when ``value`` and everything inside carries simpleion's ``ion_type``."""
    if getattr(value, "ion_type", None) is None:
        return False
    if isinstance(value, Mapping):
        items = value.iteritems() if hasattr(value, "iteritems") else value.items()
        return all(_is_ionpy(v) for _, v in items)
    if isinstance(value, list):
        return all(_is_ionpy(v) for v in value)
    return True


def as_ion(value: Any) -> Any:
    """``value`` as simpleion values (a round trip through Ion binary when it holds plain ones)."""
    return value if _is_ionpy(value) else decode(encode(value))


_META_ID, _META_VERSION, _META_TX_TIME, _META_TX_ID = (
    _symbol(name) for name in ("id", "version", "txTime", "txId")
)


def metadata_hash(doc_id: str, version: int, tx_time: Any, tx_id: str) -> bytes:
    """The Ion hash of a revision's ``metadata`` struct, ``{id: string, version: int, txTime:
    timestamp, txId: string}``, without building the struct: what ``ion_hash`` gives for it
    (``tx_time`` an Ion timestamp, its precision kept; tests/ledger checks both and ionhash)."""
    fields = [
        _sha256(_META_ID + b"\x0b\x80" + _escape(doc_id.encode("utf-8")) + _E).digest(),
        _sha256(_META_VERSION + _serialize_bare(version, _INT)).digest(),
        _sha256(_META_TX_TIME + b"\x0b\x60" + _escape(_timestamp_body(tx_time)) + _E).digest(),
        _sha256(_META_TX_ID + b"\x0b\x80" + _escape(tx_id.encode("utf-8")) + _E).digest(),
    ]
    fields.sort()
    return _sha256(b"\x0b\xd0" + _escape(b"".join(fields)) + _E).digest()


@lru_cache(maxsize=8192)
def text_hash(text: str) -> bytes:
    """The Ion hash of a string (a statement's text)."""
    return hashlib.sha256(_scalar(0x80, text.encode("utf-8"))).digest()


def statement_digest(text: str, params: Sequence[Any]) -> bytes:
    """QLDB's statement digest: the text's Ion hash dot-folded with each parameter's Ion hash."""
    digest = text_hash(text)
    for p in params:
        digest = dot(digest, ion_hash(p))
    return digest
