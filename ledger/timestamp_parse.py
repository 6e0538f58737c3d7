"""Reading a string by one of QLDB's timestamp format strings (``TO_TIMESTAMP(s, 'format')``):
the symbols of the "Timestamp format strings" page that ``ledger.timestamp_format`` writes, read
back as the TO_TIMESTAMP page says. Zero padding is optional for the one-letter symbols (``y M d
H h m s``) and required for the padded ones (``yyyy MM dd HH hh mm ss``); ``yy`` is 1900 plus
values from 70 and 2000 plus the others; month names and AM/PM are case-insensitive. The result
has the precision of the finest field the format gives (``'MM-yyyy'`` gives ``2016-02T``) and
the format's offset (none, an unknown offset, when it has no ``X``/``x``). A string that does not
match, an impossible date, or a format that skips a coarser field than one it gives (a day but
no month) is a ``FormatError``, never a guessed timestamp.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ledger.timestamp_format import MONTHS, FormatError
from ledger.timestamps import DAY, MINUTE, MONTH, SECOND, YEAR, make

_DIGITS = {  # symbol -> (field, fewest digits, most digits)
    "y": ("year", 1, 4), "yyyy": ("year", 4, 4), "yy": ("year2", 2, 2),
    "M": ("month", 1, 2), "MM": ("month", 2, 2), "d": ("day", 1, 2), "dd": ("day", 2, 2),
    "H": ("hour", 1, 2), "HH": ("hour", 2, 2), "h": ("hour12", 1, 2), "hh": ("hour12", 2, 2),
    "m": ("minute", 1, 2), "mm": ("minute", 2, 2), "s": ("second", 1, 2), "ss": ("second", 2, 2),
    "S": ("fraction", 1, 1), "SS": ("fraction", 2, 2), "SSS": ("fraction", 3, 3),
}  # fmt: skip
_OFFSET = re.compile(r"Z|[+-]\d{2}(?::?\d{2})?")


def _tokens(pattern: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pieces of a pattern: ``sym`` (a run of one letter), ``lit`` (text)."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = pattern.find("'", i + 1)
            while end != -1 and end + 1 < len(pattern) and pattern[end + 1] == "'":
                end = pattern.find("'", end + 2)
            if end == -1:
                raise FormatError(f"unclosed quote in format {pattern!r}")
            out.append(("lit", pattern[i + 1 : end].replace("''", "'") if end > i + 1 else "'"))
            i = end + 1
        elif c.isalpha():
            n = 1
            while i + n < len(pattern) and pattern[i + n] == c:
                n += 1
            out.append(("sym", c * n))
            i += n
        else:
            out.append(("lit", c))
            i += 1
    return out


def _read(sym: str, text: str, pos: int, fields: dict[str, Any]) -> int:
    """Read ``sym`` at ``pos`` into ``fields``; the position after it."""
    if sym in _DIGITS:
        name, least, most = _DIGITS[sym]
        m = re.compile(rf"\d{{{least},{most}}}").match(text, pos)
        if m is None:
            raise FormatError(f"{text!r} has no {sym!r} at position {pos + 1}")
        if name in fields:
            raise FormatError(f"format gives the {name} twice")
        fields[name] = m.group() if name == "fraction" else int(m.group())
        return m.end()
    if sym in ("MMM", "MMMM"):
        for i, month in enumerate(MONTHS):
            name = month if sym == "MMMM" else month[:3]
            if text[pos : pos + len(name)].lower() == name.lower():
                fields["month"] = i + 1
                return pos + len(name)
        raise FormatError(f"{text!r} has no month name ({sym!r}) at position {pos + 1}")
    if sym == "a":
        half = text[pos : pos + 2].upper()
        if half not in ("AM", "PM"):
            raise FormatError(f"{text!r} has no AM or PM at position {pos + 1}")
        fields["half"] = half
        return pos + 2
    if (sym[0] == "X" and len(sym) <= 5) or (sym[0] == "x" and len(sym) <= 3):
        m = _OFFSET.match(text, pos)
        if m is None or (m.group() == "Z" and sym[0] == "x"):
            raise FormatError(f"{text!r} has no offset ({sym!r}) at position {pos + 1}")
        off = m.group()
        minutes = 0 if off == "Z" else int(off[1:3]) * 60 + int(off[-2:] if len(off) > 3 else 0)
        fields["offset"] = -minutes if off.startswith("-") else minutes
        return m.end()
    raise FormatError(f"format symbol {sym!r} is not one of QLDB's timestamp format strings")


def _assemble(fields: dict[str, Any]) -> Any:
    if "year2" in fields:
        y = fields.pop("year2")
        fields.setdefault("year", y + (1900 if y >= 70 else 2000))
    if ("hour12" in fields) != ("half" in fields):
        raise FormatError("a 12-hour hour (h, hh) needs AM/PM (a), and AM/PM needs one")
    if "hour12" in fields:
        h = fields.pop("hour12")
        if not 1 <= h <= 12:
            raise FormatError(f"hour {h} is not a 12-hour hour (1 to 12)")
        fields["hour"] = h % 12 + (12 if fields.pop("half") == "PM" else 0)
    order = ("year", "month", "day", "hour", "minute", "second", "fraction")
    given = [f in fields for f in order]
    last = max((i for i, g in enumerate(given) if g), default=-1)
    if last < 0 or not all(given[: last + 1]):
        missing = next(f for f, g in zip(order, given, strict=True) if not g)
        raise FormatError(f"format does not give the {missing} (an Ion timestamp needs it)")
    if last == 3:
        raise FormatError("format gives the hour but not the minute (Ion has no hour precision)")
    precision = (YEAR, MONTH, DAY, MINUTE, MINUTE, SECOND, SECOND)[last]
    frac = fields.get("fraction")
    try:
        dt = datetime(
            fields["year"], fields.get("month", 1), fields.get("day", 1), fields.get("hour", 0),
            fields.get("minute", 0), fields.get("second", 0),
        )  # fmt: skip
    except ValueError as exc:
        raise FormatError(f"not a date: {exc}") from None
    zone = None
    if "offset" in fields:
        zone = timezone(timedelta(minutes=fields["offset"]))
    return make(dt, precision, None if frac is None else Decimal(f"0.{frac}"), zone)


def parse_formatted(text: str, pattern: str) -> Any:
    """The timestamp ``text`` gives when read by ``pattern`` (the module doc says how)."""
    fields: dict[str, Any] = {}
    pos = 0
    for what, piece in _tokens(pattern):
        if what == "lit":
            if text[pos : pos + len(piece)] != piece:
                raise FormatError(f"{text!r} does not match format {pattern!r} at {pos + 1}")
            pos += len(piece)
        else:
            pos = _read(piece, text, pos, fields)
    if pos != len(text):
        raise FormatError(f"{text!r} has more than format {pattern!r} reads ({text[pos:]!r})")
    return _assemble(fields)
