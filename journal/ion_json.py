"""Ion down-converted to JSON, as QLDB's JSON journal export and the Ion specification do it:
decimals as JSON numbers with their exact digits, timestamps as strings in their Ion text form
(precision and offset kept), blobs and clobs as base64 strings, symbols as strings, s-expressions
as arrays, typed nulls as ``null``, annotations dropped; a float NaN or infinity, which JSON has
no number for, becomes its name as a string.

Used by ``qldb-settle export --format json`` and by the PostgreSQL destination's ``data jsonb``.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any


def ion_text_line(value: Any) -> str:
    """One Ion value as one line of Ion text (no version marker)."""
    from amazon.ion import simpleion

    return str(simpleion.dumps(value, binary=False, omit_version_marker=True))


def ion_timestamp_text(value: datetime) -> str:
    """A timestamp in its Ion text form, precision and offset kept (``1963-08-19T``)."""
    return ion_text_line(value)


def json_text(value: Any) -> str:
    """``value`` as JSON: decimals exact as numbers, timestamps and blobs as strings."""
    out: list[str] = []
    _json(value, out)
    return "".join(out)


def _json(v: Any, out: list[str]) -> None:
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyNull
    from amazon.ion.symbols import SymbolToken

    t = getattr(v, "ion_type", None)
    if v is None or isinstance(v, IonPyNull):
        out.append("null")
    elif t is IonType.BOOL or isinstance(v, bool):
        out.append("true" if v else "false")
    elif isinstance(v, Decimal):
        out.append(_decimal(v))
    elif isinstance(v, float):
        out.append(repr(float(v)) if math.isfinite(v) else json.dumps(str(v)))
    elif isinstance(v, int):
        out.append(str(int(v)))
    elif isinstance(v, datetime):
        out.append(json.dumps(ion_timestamp_text(v)))
    elif isinstance(v, SymbolToken):
        out.append(json.dumps(v.text if v.text is not None else f"$sid{v.sid}"))
    elif isinstance(v, str):
        out.append(json.dumps(str(v), ensure_ascii=False))
    elif isinstance(v, bytes | bytearray):
        out.append(json.dumps(base64.b64encode(bytes(v)).decode("ascii")))
    elif isinstance(v, Mapping):
        out.append("{")
        items = v.iteritems() if hasattr(v, "iteritems") else v.items()
        for i, (k, x) in enumerate(items):
            if i:
                out.append(", ")
            out.append(json.dumps(str(getattr(k, "text", k)), ensure_ascii=False) + ": ")
            _json(x, out)
        out.append("}")
    elif isinstance(v, list | tuple):
        out.append("[")
        for i, x in enumerate(v):
            if i:
                out.append(", ")
            _json(x, out)
        out.append("]")
    else:
        raise TypeError(f"not an Ion value: {type(v).__name__}")


def _decimal(d: Decimal) -> str:
    """A decimal as a JSON number with its exact digits (``12.50`` stays ``12.50``)."""
    text = str(d)
    if "E" in text or "e" in text:
        sign, digits, exponent = d.as_tuple()
        assert isinstance(exponent, int)
        mantissa = "".join(map(str, digits)) or "0"
        text = ("-" if sign else "") + mantissa + "E" + str(exponent)
    if text in ("-0", "0") and d.is_signed():
        return "-0"
    return text
