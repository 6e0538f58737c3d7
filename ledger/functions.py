"""QLDB's functions (``Call`` nodes), each as the Developer Guide's page for it says: EXISTS,
COALESCE, NULLIF (which do not propagate null and missing), CAST (``ledger.functions_cast``:
missing stays missing), UPPER, LOWER, TRIM (all its forms), CHAR_LENGTH / CHARACTER_LENGTH,
SUBSTRING, SIZE, TO_STRING, UTCNOW, TXID and the date functions of ``ledger.functions_time``.
Every other function propagates null and missing: an unknown argument gives null. An argument of
the wrong type is an ``EvalError``, never a guessed value. Functions QLDB does not list (ABS,
MOD, CARDINALITY among them) are refused at parse, as QLDB refuses them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from amazon.ion.core import Timestamp, TimestampPrecision

from ledger.evaluate import EvalError, equal, kind, number, text_of
from ledger.functions_cast import cast
from ledger.functions_time import date_add, date_diff, extract, to_timestamp
from ledger.nodes import AGGREGATES, MISSING
from ledger.timestamp_format import FormatError, format_timestamp

if TYPE_CHECKING:
    from ledger.evaluate import Scope

_UNKNOWN = ("null", "missing")


def call_function(name: str, args: list[Any], scope: Scope | None) -> Any:
    """The value of ``name(*args)`` (``name`` lower-case, arguments evaluated)."""
    if name in AGGREGATES:
        raise EvalError(
            f"aggregate function {name.removesuffix('(*)')}() is allowed only as a whole SELECT "
            "item (GROUP BY is refused here)"
        )
    if name == "utcnow":
        now = scope.now if scope is not None else datetime.now(UTC)
        now = now.astimezone(UTC)
        return Timestamp(
            now.year, now.month, now.day, now.hour, now.minute, now.second,
            now.microsecond - now.microsecond % 1000, tzinfo=UTC,
            precision=TimestampPrecision.SECOND, fractional_precision=3,
        )  # fmt: skip
    if name == "txid":
        return _txid(scope)
    if name == "cast":
        return cast(args[0], args[1])
    if name == "exists":
        return _exists(args[0])
    if name == "coalesce":
        for v in args:
            if kind(v) not in _UNKNOWN:
                return v
        return None
    if name == "nullif":
        # NULLIF(missing, null) is null: the result is never missing.
        if equal(args[0], args[1]) is True or args[0] is MISSING:
            return None
        return args[0]
    if any(kind(a) in _UNKNOWN for a in args):
        return None  # null and missing propagate as null
    v = args[0] if args else MISSING
    if name in ("upper", "lower", "trim", "char_length", "character_length", "substring"):
        return _string_function(name, v, args)
    if name == "size":
        if kind(v) in ("list", "struct"):
            return len(v)
        raise EvalError(f"{name}() needs a list, struct or bag, not {kind(v)}")
    if name == "to_string":
        return _to_string(v, args)
    if name == "date_add":
        return date_add(args[0], args[1], args[2])
    if name == "date_diff":
        return date_diff(args[0], args[1], args[2])
    if name == "extract":
        return extract(args[0], args[1])
    if name == "to_timestamp":
        return to_timestamp(args)
    raise EvalError(f"unknown function {name}()")


def _txid(scope: Scope | None) -> str:
    """TXID page: the id of the transaction the statement runs in (its documents' ``txId``)."""
    while scope is not None and scope.txid is None:
        scope = scope.outer
    if scope is None or scope.txid is None:
        raise EvalError("txid() needs a transaction (it is not a constant)")
    return scope.txid


def _exists(v: Any) -> bool:
    """EXISTS page: true for a non-empty list, sexp, struct or bag; false for an empty one and
    for anything that is not a container (null included); EXISTS(missing) is an error."""
    if v is MISSING:
        raise EvalError("exists() of missing is an error (QLDB's EXISTS does not take missing)")
    return kind(v) in ("list", "struct") and len(v) > 0


def _string_function(name: str, v: Any, args: list[Any]) -> Any:
    if kind(v) != "string":
        raise EvalError(f"{name}() needs a string, not {kind(v)}")
    s = text_of(v)
    if name == "upper":
        return s.upper()
    if name == "lower":
        return s.lower()
    if name == "trim":
        return _trim(s, args)
    if name == "substring":
        return _substring(s, args[1:])
    return len(s)  # code points, as CHAR_LENGTH counts


def _trim(s: str, args: list[Any]) -> str:
    """TRIM page: blank spaces only by default (``TRIM(' \\tfoobar\\t ')`` is
    ``'\\tfoobar\\t'``); LEADING/TRAILING/BOTH ``chars``: any of those characters, as a set
    (``TRIM(BOTH '12' FROM '1112211foobar22211122')`` is ``'foobar'``)."""
    if len(args) == 1:
        return s.strip(" ")
    side, chars = text_of(args[1]), args[2]
    if kind(chars) != "string":
        raise EvalError(f"trim() characters must be a string, not {kind(chars)}")
    cs = text_of(chars)
    if side == "leading":
        return s.lstrip(cs)
    if side == "trailing":
        return s.rstrip(cs)
    return s.strip(cs)


def _substring(s: str, rest: list[Any]) -> str:
    """SUBSTRING page: the first character is 1; a start before it shortens the length
    (SUBSTRING('123456789', 0, 2) is '1'); a negative length is an error."""
    for x in rest:
        if kind(x) != "number" or number(x) != int(number(x)):
            raise EvalError(f"substring() positions must be integers, not {kind(x)}")
    start = int(rest[0]) if rest else 1
    length = int(rest[1]) if len(rest) > 1 else None
    if length is not None and length < 0:
        raise EvalError(f"substring() length must not be negative, not {length}")
    begin = max(start - 1, 0)
    end = None if length is None else max(start - 1 + length, 0)
    return s[begin:end]


def _to_string(v: Any, args: list[Any]) -> str:
    if len(args) > 1:  # QLDB's format strings (ledger.timestamp_format), never ignored
        if kind(v) != "timestamp" or kind(args[1]) != "string":
            raise EvalError(
                f"to_string() needs a timestamp and a format string, not {kind(v)} and "
                f"{kind(args[1])}"
            )
        try:
            return format_timestamp(v, text_of(args[1]))
        except FormatError as exc:
            raise EvalError(str(exc)) from exc
    return text_of(v) if kind(v) == "string" else str(v)
