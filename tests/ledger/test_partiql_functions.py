"""Scalar functions: what is not implemented exactly is refused, never answered approximately.

Spec: TO_STRING, https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.to_string.html
and "Timestamp format strings",
https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.timestamp-format.html: the
expected strings below are the TO_STRING page's examples (``TO_STRING(`1969-07-20T20:18Z`,
'MMMM d, y')`` is ``"July 20, 1969"``) and the format table's symbols.
"""

from __future__ import annotations

import pytest

from ledger import EmbeddedLedger, StatementError

DOCUMENTED = [
    ("`1969-07-20T20:18Z`", "MMMM d, y", "July 20, 1969"),
    ("`1969-07-20T20:18Z`", "MMM d, yyyy", "Jul 20, 1969"),
    ("`1969-07-20T20:18Z`", "M-d-yy", "7-20-69"),
    ("`1969-07-20T20:18Z`", "MM-d-y", "07-20-1969"),
    ("`1969-07-20T20:18Z`", "MMMM d, y h:m a", "July 20, 1969 8:18 PM"),
    ("`1969-07-20T20:18Z`", "y-MM-dd''T''H:m:ssX", "1969-07-20T20:18:00Z"),
    ("`1969-07-20T20:18+08:00`", "y-MM-dd''T''H:m:ssXXXX", "1969-07-20T20:18:00+0800"),
    ("`1969-07-20T20:18+08:00`", "y-MM-dd''T''H:m:ssXXXXX", "1969-07-20T20:18:00+08:00"),
    ("`1969-07-20T20:18Z`", "yyyy", "1969"),
    ("`2007-02-03T04:05:06.789-07:00`", "dd hh HH mm ss S SS SSS", "03 04 04 05 06 7 78 789"),
    ("`2007-02-03T04:05:06-07:00`", "X XX XXX x xx xxx", "-07 -0700 -07:00 -07 -0700 -07:00"),
    ("`2007-02-03T04:05:06Z`", "x xx xxx", "+00 +0000 +00:00"),
]


@pytest.mark.parametrize(("ts", "pattern", "expected"), DOCUMENTED)
def test_to_string_formats_as_documented(
    led: EmbeddedLedger, ts: str, pattern: str, expected: str
) -> None:
    led.execute("CREATE TABLE T")
    led.execute(f"INSERT INTO T VALUE {{'ts': {ts}}}")
    [row] = led.execute(f"SELECT to_string(t.ts, '{pattern}') AS s FROM T AS t")
    assert dict(row) == {"s": expected}


def test_to_string_formats_a_stored_timestamp(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'ts': `1969-07-20T20:18Z`}")
    [row] = led.execute("SELECT to_string(t.ts, 'yyyy') AS y FROM T AS t")
    assert dict(row) == {"y": "1969"}


@pytest.mark.parametrize("pattern", ["yyy", "Q", "EEEE", "XXXXXX", "''unclosed"])
def test_an_undocumented_format_symbol_is_refused_not_passed_through(
    led: EmbeddedLedger, pattern: str
) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'ts': `1969-07-20T20:18Z`}")
    with pytest.raises(StatementError, match="format"):
        led.execute(f"SELECT to_string(t.ts, '{pattern}') AS s FROM T AS t")
