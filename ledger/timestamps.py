"""Ion timestamps as QLDB's date functions see them: the precision (year, month, day, minute,
second), the fractional seconds and the offset a timestamp keeps, and building one back with
exactly those. A timestamp without an offset (day precision or coarser, or ``-00:00``) is read
as UTC: the date function pages say ``2010T`` "is equivalent to 2010-01-01T00:00:00.000Z".
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from amazon.ion.core import OffsetTZInfo, Timestamp, TimestampPrecision

YEAR, MONTH, DAY = TimestampPrecision.YEAR, TimestampPrecision.MONTH, TimestampPrecision.DAY
MINUTE, SECOND = TimestampPrecision.MINUTE, TimestampPrecision.SECOND
_ORDER = {YEAR: 0, MONTH: 1, DAY: 2, MINUTE: 3, SECOND: 4}


class TimestampRangeError(ValueError):
    """A result outside Ion's timestamp range (years 1 to 9999)."""


def precision_of(ts: datetime) -> TimestampPrecision:
    p = getattr(ts, "precision", None)
    return p if isinstance(p, TimestampPrecision) else SECOND


def finer(a: TimestampPrecision, b: TimestampPrecision) -> TimestampPrecision:
    return a if _ORDER[a] >= _ORDER[b] else b


def fraction_of(ts: datetime) -> Decimal | None:
    """The fractional seconds as written (``.006`` is ``Decimal('0.006')``), None for none."""
    if precision_of(ts) is not SECOND:
        return None
    frac = getattr(ts, "fractional_seconds", None)
    if isinstance(frac, Decimal):
        return frac if frac.as_tuple().exponent != 0 else None
    digits = getattr(ts, "fractional_precision", None)
    if digits is None:
        return Decimal(ts.microsecond).scaleb(-6) if ts.microsecond else None
    if digits == 0:
        return None
    return Decimal(ts.microsecond).scaleb(-6).quantize(Decimal(1).scaleb(-digits))


def offset_minutes(ts: datetime) -> int | None:
    """The offset in minutes, None when unknown (no offset, or ``-00:00``)."""
    if ts.tzinfo is None:
        return None
    delta = ts.utcoffset()
    return None if delta is None else int(delta.total_seconds() // 60)


def as_utc_if_unknown(ts: datetime) -> datetime:
    """``ts`` with its own offset, or UTC when it has none (the pages' reading of ``2010T``)."""
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def make(
    dt: datetime, precision: TimestampPrecision, fraction: Decimal | None, zone: tzinfo | None
) -> Timestamp:
    """An Ion timestamp of ``dt``'s fields at ``precision`` (coarser fields zeroed), with
    ``fraction`` as its fractional seconds (second precision only) and ``zone`` as its offset
    (None: unknown; always None above minute precision, as Ion has no offset there)."""
    if not 1 <= dt.year <= 9999:
        raise TimestampRangeError(f"year {dt.year} is outside Ion's timestamp range (1 to 9999)")
    o = _ORDER[precision]
    if o < _ORDER[MINUTE]:
        zone = None
    if zone is not None and not isinstance(zone, OffsetTZInfo):
        off = dt.replace(tzinfo=zone).utcoffset() or timedelta(0)
        zone = OffsetTZInfo(off)
    frac = fraction if precision is SECOND else None
    fields = (
        dt.year, dt.month if o >= 1 else 1, dt.day if o >= 2 else 1, dt.hour if o >= 3 else 0,
        dt.minute if o >= 3 else 0, dt.second if o >= 4 else 0,
    )  # fmt: skip
    if frac is None:
        return Timestamp(*fields, 0, zone, precision=precision, fractional_precision=0)
    return Timestamp(*fields, None, zone, precision=precision, fractional_seconds=frac)


def ion_text(ts: Any) -> str:
    """The Ion text of a timestamp (``2001T``, ``2001-01-01T00:00:00.000Z``)."""
    from amazon.ion import simpleion

    text: str = simpleion.dumps(ts, binary=False, omit_version_marker=True)
    return text
