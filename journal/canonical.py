"""A canonical, library-version-independent fingerprint of Ion values.

Two copies of one stream record are the same record when their content is the same, whatever
amazon.ion version wrote or read them, and whichever QLDB stream of the ledger carried them (the
stream id in ``qldbStreamArn`` is left out). The fingerprint types every scalar (a decimal 1.0 is
not the int 1, a timestamp keeps its precision and offset), sorts struct fields, and keeps list
order and annotations.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyDict, IonPyInt, IonPyList, IonPyText

_STRING, _INT, _STRUCT, _LIST = IonType.STRING, IonType.INT, IonType.STRUCT, IonType.LIST


def _typed_null(value: Any) -> bool:
    """A typed null (``null.string``...): amazon.ion loads it as an ``IonPyNull`` whose
    ``ion_type`` is the type, not NULL."""
    return type(value).__name__ == "IonPyNull"


def _symbol_text(token: Any) -> str:
    """A symbol's text; amazon.ion gives a ``SymbolToken`` (whose sid depends on the encoding
    and version that read it) or a plain string."""
    text = getattr(token, "text", token)
    return "$?" if text is None else str(text)


def _enc(value: Any, out: list[bytes]) -> None:
    # Fast paths for the exact IonPy classes of most of a record (strings, ints, structs, lists
    # without annotations): the same bytes the general branches below give them.
    cls = type(value)
    if (
        cls is IonPyText or cls is IonPyInt or cls is IonPyDict or cls is IonPyList
    ) and not value.ion_annotations:
        t = value.ion_type
        if cls is IonPyText and t == _STRING:
            data = value.encode("utf-8")
            out.append(b"s%d:%b" % (len(data), data))
            return
        if cls is IonPyInt and t == _INT:
            out.append(b"i%d" % value)
            return
        if cls is IonPyDict and t == _STRUCT:
            _enc_struct(value, out)
            return
        if cls is IonPyList and t == _LIST:
            parts: list[bytes] = []
            for v in value:
                sub: list[bytes] = []
                _enc(v, sub)
                parts.append(b"".join(sub))
            out.append(b"[" + b",".join(parts) + b"]")
            return
    _enc_general(value, out)


def _enc_struct(value: Mapping[Any, Any], out: list[bytes]) -> None:
    items = []
    # items(), not keys: an Ion struct may repeat a field name, and every copy counts.
    for k, v in value.items():
        sub: list[bytes] = []
        _enc(v, sub)
        key = str(k).encode("utf-8")
        items.append(str(len(key)).encode() + b":" + key + b"=" + b"".join(sub))
    items.sort()
    out.append(b"{" + b",".join(items) + b"}")


def _enc_general(value: Any, out: list[bytes]) -> None:
    t = getattr(value, "ion_type", None)
    ann = getattr(value, "ion_annotations", ()) or ()
    if ann:
        out.append(b"@" + repr([_symbol_text(a) for a in ann]).encode())
    if value is None or t is IonType.NULL or getattr(value, "is_null", False) or _typed_null(value):
        out.append(b"n" + (t.name.encode() if t is not None else b"NULL"))
        return
    if t is IonType.SYMBOL:
        data = _symbol_text(value).encode("utf-8")
        out.append(b"y" + str(len(data)).encode() + b":" + data)
    elif t is IonType.BOOL or isinstance(value, bool):  # amazon.ion 0.9.3 loads bools as ints
        out.append(b"b1" if value else b"b0")
    elif isinstance(value, int):
        out.append(b"i" + str(int(value)).encode())
    elif isinstance(value, float):
        out.append(b"f" + float(value).hex().encode())
    elif isinstance(value, Decimal):
        out.append(b"d" + str(Decimal(value)).encode())
    elif isinstance(value, datetime):
        precision = getattr(value, "precision", None)
        # amazon.ion 0.9.3 gives a TimestampPrecision enum, 0.15 its int value: encode the int.
        precision = getattr(precision, "value", precision)
        fraction = getattr(value, "fractional_precision", None)
        out.append(b"t" + value.isoformat().encode() + f"|{precision}|{fraction}".encode())
    elif isinstance(value, str):
        kind = b"y" if t is IonType.SYMBOL else b"s"
        data = str(value).encode("utf-8")
        out.append(kind + str(len(data)).encode() + b":" + data)
    elif isinstance(value, bytes | bytearray):
        kind = b"c" if t is IonType.CLOB else b"x"
        out.append(kind + str(len(value)).encode() + b":" + bytes(value))
    elif isinstance(value, Mapping):
        _enc_struct(value, out)
    elif isinstance(value, list | tuple):
        parts: list[bytes] = []
        for v in value:
            sub: list[bytes] = []
            _enc(v, sub)
            parts.append(b"".join(sub))
        kind = b"(" if t is IonType.SEXP else b"["
        out.append(kind + b",".join(parts) + b"]")
    else:
        raise TypeError(f"not an Ion value: {type(value).__name__}")


def fingerprint(value: Any) -> str:
    """SHA-256 hex of the canonical encoding of ``value``."""
    out: list[bytes] = []
    _enc(value, out)
    return hashlib.sha256(b"".join(out)).hexdigest()


def _ledger_part(arn: str) -> str:
    return arn.rsplit("/", 1)[0] if ":stream/" in arn else arn


def record_fingerprint(value: Mapping[str, Any]) -> str:
    """Fingerprint of a top-level stream record without the stream id of its ARN."""
    stripped = {k: v for k, v in value.items() if k != "qldbStreamArn"}
    stripped["qldbStreamArn"] = _ledger_part(str(value.get("qldbStreamArn", "")))
    return fingerprint(stripped)


_ARN_FIELD = b"13:qldbStreamArn="


def record_fingerprint_of_fields(fields: Iterable[tuple[str, Any, bytes]]) -> str:
    """``record_fingerprint`` of a record given as its top-level fields ``(name, value,
    canonical)``, ``canonical`` being each field's item of the struct encoding above (``<length
    of the name>:<name>=<encoding of the value>``, as ``journal.ion_binary.one_pass`` writes it):
    the same fingerprint without walking the values again. The record has each field once and
    its ``qldbStreamArn`` is a string."""
    items: list[bytes] = []
    arn = ""
    for name, value, item in fields:
        if name == "qldbStreamArn":
            if not isinstance(value, str):
                raise TypeError("qldbStreamArn is not a string")
            arn = value
        else:
            items.append(item)
    ledger = _ledger_part(arn).encode("utf-8")
    items.append(b"%bs%d:%b" % (_ARN_FIELD, len(ledger), ledger))
    items.sort()
    return hashlib.sha256(b"{" + b",".join(items) + b"}").hexdigest()
