"""``CAST(expr AS type)`` as the "CAST function in Amazon QLDB" page says: missing gives missing
(null as null), null gives null (missing as missing), any other value cast to null or missing is
an error; a conversion that cannot be made is an ``EvalError``, never a guessed value. The page's
boolean and integer examples are QLDB's own (``CAST('a' AS boolean)`` is false, ``CAST(1.75 AS
integer)`` is 1: numbers are truncated toward zero); the other types follow the PartiQL
reference's CAST rules, which that page is based on (float and decimal parse numeric text,
timestamp parses Ion timestamp text, string and symbol write the value's text, a number cast to
a symbol is narrowed to an integer first, list and bag convert into each other).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPySymbol
from amazon.ion.symbols import SymbolToken

from ledger.evaluate import EvalError, kind, number, text_of
from ledger.functions_time import ion_timestamp
from ledger.nodes import MISSING
from ledger.timestamps import ion_text

_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eEdD][+-]?\d+)?")


def _fail(v: Any, target: str) -> EvalError:
    return EvalError(f"cannot cast {kind(v)} {v!r} to {target}")


def _narrow(v: Any, target: str) -> int:
    x = number(v)
    if isinstance(x, float) and not math.isfinite(x):
        raise _fail(v, target)
    if isinstance(x, Decimal) and not x.is_finite():
        raise _fail(v, target)
    return int(x)  # toward zero: CAST(1.75 AS integer) -- 1


def _text(v: Any, target: str) -> str:
    k = kind(v)
    if k == "string":
        return text_of(v)
    if k == "bool":
        return "true" if v else "false"
    if k == "timestamp":
        return ion_text(v)
    if k == "number":
        if target == "symbol":  # CAST(`1e0` AS symbol) -- '1'
            return str(_narrow(v, target))
        x = number(v)
        return repr(x) if isinstance(x, float) else str(x)  # `1e0` -> "1.0", `1d0` -> "1"
    raise _fail(v, target)


def _parse_number(v: Any, target: str) -> Decimal:
    s = text_of(v)
    if _NUMBER.fullmatch(s) is None:
        raise _fail(v, target)
    return Decimal(s.replace("d", "e").replace("D", "e"))


def cast(v: Any, target: str) -> Any:
    """``v`` converted to ``target`` (a ``ledger.parser.CAST_TYPES`` value)."""
    if v is MISSING:  # CAST(missing AS null) -- null; as any other type: missing
        return None if target == "null" else MISSING
    k = kind(v)
    if k == "null":
        return MISSING if target == "missing" else None
    if target in ("null", "missing"):
        raise EvalError(f"cannot cast {k} {v!r} to {target}: only null and missing can be")
    if target == "bool":
        if k == "bool":
            return bool(v)
        if k == "number":
            return number(v) != 0
        if k == "string":
            return text_of(v).lower() == "true"  # CAST('a' AS boolean) -- false
        raise _fail(v, target)
    if target == "int":
        if k == "bool":
            return 1 if v else 0
        if k == "number":
            return _narrow(v, target)
        if k == "string" and _INT.fullmatch(text_of(v)):
            return int(text_of(v))  # CAST('12' AS integer) -- 12
        raise _fail(v, target)  # CAST('aa' AS integer) -- error
    if target == "float":
        if k == "bool":
            return 1.0 if v else 0.0
        if k == "number":
            return float(number(v))
        if k == "string":
            return float(_parse_number(v, target))
        raise _fail(v, target)
    if target == "decimal":
        if k == "bool":
            return Decimal(1 if v else 0)
        if k == "number":
            x = number(v)
            if isinstance(x, float):
                if not math.isfinite(x):
                    raise _fail(v, target)
                return Decimal(repr(x))
            return Decimal(x)
        if k == "string":
            try:
                return _parse_number(v, target)
            except InvalidOperation:
                raise _fail(v, target) from None
        raise _fail(v, target)
    if target == "timestamp":
        if k == "timestamp":
            return v
        if k == "string":
            return ion_timestamp(text_of(v), "cast")
        raise _fail(v, target)
    if target in ("string", "symbol"):
        text = _text(v, target)
        if target == "string":
            return text
        return IonPySymbol.from_value(IonType.SYMBOL, SymbolToken(text, None))
    if target == "struct":
        if k == "struct":
            return v
        raise _fail(v, target)
    if k == "list":  # list and bag (both Python lists here)
        return list(v)
    raise _fail(v, target)
