"""QLDB's timestamp format strings (``TO_STRING(ts, 'format')``), as the Developer Guide's
"Timestamp format strings" page lists them: ``yy y yyyy M MM MMM MMMM d dd a h hh H HH m mm s ss
S SS SSS X XX XXX x xx xxx``, plus ``XXXX`` / ``XXXXX`` that its TO_STRING examples use. Text in
single quotes is literal (``''`` is a quote); any other character that is not a letter is a
separator, kept as is; any other letter is refused (``FormatError``), never passed through or
guessed, so a pattern this module does not know is an error, not a wrong string.
"""

from __future__ import annotations

from datetime import datetime, timedelta

MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip


class FormatError(ValueError):
    """A format pattern with a symbol QLDB does not document."""


def _offset(delta: timedelta | None, width: int, z: bool) -> str:
    minutes = int((delta or timedelta(0)).total_seconds() // 60)
    if z and minutes == 0:
        return "Z"
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    if width == 1:
        return f"{sign}{h:02d}" + (f"{m:02d}" if m else "")
    if width in (2, 4):
        return f"{sign}{h:02d}{m:02d}"
    return f"{sign}{h:02d}:{m:02d}"


def _symbol(ts: datetime, letter: str, n: int) -> str:
    hour12 = ts.hour % 12 or 12
    table: dict[tuple[str, int], str] = {
        ("y", 1): str(ts.year), ("y", 2): f"{ts.year % 100:02d}", ("y", 4): f"{ts.year:04d}",
        ("M", 1): str(ts.month), ("M", 2): f"{ts.month:02d}", ("M", 3): MONTHS[ts.month - 1][:3],
        ("M", 4): MONTHS[ts.month - 1], ("d", 1): str(ts.day), ("d", 2): f"{ts.day:02d}",
        ("a", 1): "AM" if ts.hour < 12 else "PM", ("h", 1): str(hour12), ("h", 2): f"{hour12:02d}",
        ("H", 1): str(ts.hour), ("H", 2): f"{ts.hour:02d}", ("m", 1): str(ts.minute),
        ("m", 2): f"{ts.minute:02d}", ("s", 1): str(ts.second), ("s", 2): f"{ts.second:02d}",
        ("S", 1): f"{ts.microsecond // 100_000}", ("S", 2): f"{ts.microsecond // 10_000:02d}",
        ("S", 3): f"{ts.microsecond // 1000:03d}",
    }  # fmt: skip
    if (letter, n) in table:
        return table[(letter, n)]
    if letter == "X" and n <= 5:
        return _offset(ts.utcoffset(), n, z=True)
    if letter == "x" and n <= 3:
        return _offset(ts.utcoffset(), n, z=False)
    raise FormatError(f"format symbol {letter * n!r} is not one of QLDB's timestamp format strings")


def format_timestamp(ts: datetime, pattern: str) -> str:
    """``ts`` written by ``pattern`` (the module doc says which symbols)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "'":
            end = i + 1
            text: list[str] = []
            while True:
                if end >= len(pattern):
                    raise FormatError(f"unclosed quote in format {pattern!r}")
                if pattern[end] == "'":
                    if end + 1 < len(pattern) and pattern[end + 1] == "'":
                        text.append("'")
                        end += 2
                        continue
                    break
                text.append(pattern[end])
                end += 1
            out.append("".join(text) if end > i + 1 else "'")
            i = end + 1
        elif c.isalpha():
            n = 1
            while i + n < len(pattern) and pattern[i + n] == c:
                n += 1
            out.append(_symbol(ts, c, n))
            i += n
        else:
            out.append(c)
            i += 1
    return "".join(out)
