"""Scalar functions: what is not implemented exactly is refused, never answered approximately.

Spec: TO_STRING, https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.to_string.html
(``TO_STRING(`1969-07-20T20:18Z`, 'yyyy')`` is ``"1969"``). The format patterns are not done yet:
until they are, a format is an error (it used to be ignored, returning the whole timestamp).
"""

from __future__ import annotations

import pytest

from ledger import EmbeddedLedger, StatementError


def test_to_string_with_a_format_is_refused_not_ignored(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'ts': `1969-07-20T20:18Z`}")
    with pytest.raises(StatementError, match="format pattern is not supported"):
        led.execute("SELECT to_string(t.ts, 'yyyy') AS y FROM T AS t")
