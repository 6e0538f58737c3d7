"""QLDB's date and time functions, as their Developer Guide pages say: DATE_ADD, DATE_DIFF,
EXTRACT, TO_TIMESTAMP (``ledger.timestamp_parse`` reads its format strings). Results keep Ion's
timestamp precision and offset: DATE_ADD adds precision only as far as the part it adds needs
("result adds precision as necessary": ``DATE_ADD(month, 1, `2010T`)`` is ``2010-02T``), keeps
the fractional seconds and the offset, and a timestamp without an offset is UTC once it gets
minutes (``DATE_ADD(hour, 1, `2017T`)`` is ``2017-01-01T01:00Z``). Arguments of the wrong type
are an ``EvalError``; null and missing give null (the caller propagates them).
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.evaluate import EvalError, kind, number, text_of
from ledger.timestamp_format import FormatError
from ledger.timestamp_parse import parse_formatted
from ledger.timestamps import (
    DAY,
    MINUTE,
    MONTH,
    SECOND,
    YEAR,
    TimestampRangeError,
    as_utc_if_unknown,
    finer,
    fraction_of,
    make,
    offset_minutes,
    precision_of,
)

_PRECISION = {"year": YEAR, "month": MONTH, "day": DAY, "hour": MINUTE, "minute": MINUTE}
_STEP = {"day": timedelta(days=1), "hour": timedelta(hours=1), "minute": timedelta(minutes=1)}


def _timestamp(name: str, v: Any) -> datetime:
    if kind(v) != "timestamp":
        raise EvalError(f"{name}() needs a timestamp, not {kind(v)}")
    return v  # type: ignore[no-any-return]


def _integer(name: str, v: Any) -> int:
    if kind(v) != "number" or isinstance(v, float | bool) or number(v) != int(number(v)):
        raise EvalError(f"{name}() needs an integer interval, not {kind(v)} {v!r}")
    return int(number(v))


def date_add(part: str, interval: Any, ts: Any) -> Any:
    """ "DATE_ADD function in Amazon QLDB": ``ts`` moved by ``interval`` ``part``s. Months and
    years keep the day when the month has it and otherwise end on its last day (Jan 31 plus a
    month is Feb 28 or 29)."""
    n = _integer("date_add", interval)
    t = _timestamp("date_add", ts)
    precision = finer(precision_of(t), _PRECISION.get(part, SECOND))
    zone = t.tzinfo
    if zone is None and precision in (MINUTE, SECOND) and precision_of(t) not in (MINUTE, SECOND):
        zone = UTC  # 2017T plus an hour is 2017-01-01T01:00Z
    base = t.replace(tzinfo=None)
    try:
        if part in ("year", "month"):
            months = base.year * 12 + base.month - 1 + (n * 12 if part == "year" else n)
            year, month = divmod(months, 12)
            day = min(base.day, calendar.monthrange(year, month + 1)[1]) if year >= 1 else 1
            moved = base.replace(year=year, month=month + 1, day=day)
        else:
            moved = base + _STEP.get(part, timedelta(seconds=1)) * n
    except (ValueError, OverflowError):
        raise EvalError(f"date_add({part}, {n}, ...) is outside Ion's timestamp range") from None
    try:
        return make(moved, precision, fraction_of(t), zone)
    except TimestampRangeError as exc:
        raise EvalError(f"date_add(): {exc}") from None


def _whole_months(a: datetime, b: datetime) -> int:
    """Complete months from ``a`` to ``b`` (both at one offset), truncated toward zero."""
    months = (b.year - a.year) * 12 + (b.month - a.month)
    rest_a = (a.day, a.time())
    rest_b = (b.day, b.time())
    if months > 0 and rest_b < rest_a:
        months -= 1
    elif months < 0 and rest_b > rest_a:
        months += 1
    return months


def date_diff(part: str, ts1: Any, ts2: Any) -> int:
    """ "DATE_DIFF function in Amazon QLDB": complete ``part``s from ``ts1`` to ``ts2`` (positive
    when ``ts2`` is later): ``DATE_DIFF(month, `2010-12-31T`, `2011-01-01T`)`` is 0 and
    ``DATE_DIFF(day, `2010-01-01T23:00Z`, `2010-01-02T01:00Z`)`` is 0. ``ts2`` is read at
    ``ts1``'s offset; one without an offset is UTC."""
    a = as_utc_if_unknown(_timestamp("date_diff", ts1))
    b = as_utc_if_unknown(_timestamp("date_diff", ts2)).astimezone(a.tzinfo)
    a, b = a.replace(tzinfo=None), b.replace(tzinfo=None)
    if part in ("year", "month"):
        months = _whole_months(a, b)
        return int(months / 12) if part == "year" else months
    if part == "day":
        days = (b.date() - a.date()).days
        if days > 0 and b.time() < a.time():
            days -= 1
        elif days < 0 and b.time() > a.time():
            days += 1
        return days
    seconds = {"hour": 3600, "minute": 60}.get(part, 1)
    delta = b - a
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    whole = abs(micros) // (seconds * 1_000_000)
    return whole if micros >= 0 else -whole


def extract(part: str, ts: Any) -> int:
    """ "EXTRACT function in Amazon QLDB": the part's integer value, read at the timestamp's own
    offset (``EXTRACT(HOUR FROM `2017-01-02T03:04:05+07:08`)`` is 3, ``TIMEZONE_MINUTE`` 8);
    the fields a timestamp's precision does not hold are their first value (``EXTRACT(MONTH
    FROM `2010T`)`` is 1), an unknown offset is 0."""
    t = _timestamp("extract", ts)
    if part in ("timezone_hour", "timezone_minute"):
        minutes = offset_minutes(t) or 0
        sign = -1 if minutes < 0 else 1
        h, m = divmod(abs(minutes), 60)
        return sign * (h if part == "timezone_hour" else m)
    value: int = getattr(t, part)
    return value


def to_timestamp(args: list[Any]) -> Any:
    """ "TO_TIMESTAMP function in Amazon QLDB": an Ion timestamp's text without a format
    (``TO_TIMESTAMP('2007T')`` is ``2007T``), or the string read by the format's symbols
    (``TO_TIMESTAMP('Feb 2016', 'MMM yyyy')`` is ``2016-02T``)."""
    if kind(args[0]) != "string":
        raise EvalError(f"to_timestamp() needs a string, not {kind(args[0])}")
    text = text_of(args[0])
    if len(args) == 1:
        return ion_timestamp(text, "to_timestamp")
    if len(args) != 2 or kind(args[1]) != "string":
        raise EvalError("to_timestamp() takes a string and a format string")
    try:
        return parse_formatted(text, text_of(args[1]))
    except FormatError as exc:
        raise EvalError(f"to_timestamp(): {exc}") from None


def ion_timestamp(text: str, name: str) -> Any:
    """The Ion timestamp ``text`` writes (its precision and offset kept); an ``EvalError``
    for anything else."""
    from amazon.ion import simpleion

    try:
        value = simpleion.loads(text)
    except Exception:
        value = None
    if kind(value) != "timestamp" or getattr(value, "ion_type", None) is None:
        raise EvalError(f"{name}(): {text!r} is not an Ion timestamp")
    return value
