"""Scalar and conditional functions, checked against the examples on their pages of the QLDB
Developer Guide (https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.NAME.html).
Each case quotes the page's example as ``expression -- result``; the expression runs as a SELECT
item over a one-document table (the pages' runnable form ``FROM << 0 >>`` is the same projection).
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger import EmbeddedLedger, ParseError, StatementError
from tests.ledger.function_cases import is_null, select_value

# "EXISTS function in Amazon QLDB": non-empty container true, anything else false, missing error.
EXISTS = [
    ("EXISTS(`[]`)", False),  # -- false (empty list)
    ("EXISTS(`[1, 2, 3]`)", True),  # -- true (non-empty list)
    ("EXISTS(`[missing]`)", True),  # -- true (non-empty list)
    ("EXISTS(`{}`)", False),  # -- false (empty struct)
    ("EXISTS(`{ a: 1 }`)", True),  # -- true (non-empty struct)
    ("EXISTS(`()`)", False),  # -- false (empty s-expression)
    ("EXISTS(`(+ 1 2)`)", True),  # -- true (non-empty s-expression)
    ("EXISTS(1)", False),  # -- false
    ("EXISTS(`2017T`)", False),  # -- false
    ("EXISTS(null)", False),  # -- false
]

# "SIZE function in Amazon QLDB".
SIZE = [
    ("SIZE(`[]`)", 0),  # -- 0
    ("SIZE(`[null]`)", 1),  # -- 1
    ("SIZE(`[1,2,3]`)", 3),  # -- 3
    ("SIZE(<<'foo', 'bar'>>)", 2),  # -- 2
    ("SIZE(`{foo: bar}`)", 1),  # -- 1 (number of key-value pairs)
    ("SIZE(`[{foo: 1}, {foo: 2}]`)", 2),  # -- 2
]

# "SUBSTRING function in Amazon QLDB".
SUBSTRING = [
    ("SUBSTRING('123456789', 0)", "123456789"),
    ("SUBSTRING('123456789', 1)", "123456789"),
    ("SUBSTRING('123456789', 2)", "23456789"),
    ("SUBSTRING('123456789', -4)", "123456789"),
    ("SUBSTRING('123456789', 0, 999)", "123456789"),
    ("SUBSTRING('123456789', 0, 2)", "1"),
    ("SUBSTRING('123456789', 1, 999)", "123456789"),
    ("SUBSTRING('123456789', 1, 2)", "12"),
    ("SUBSTRING('1', 1, 0)", ""),
    ("SUBSTRING('1', -4, 0)", ""),
    ("SUBSTRING('1234', 10, 10)", ""),
]

# "TRIM function in Amazon QLDB".
TRIM = [
    ("TRIM('   foobar   ')", "foobar"),  # TRIM(' foobar ') -- 'foobar'
    ("TRIM('  \tfoobar\t  ')", "\tfoobar\t"),  # TRIM(' \tfoobar\t ') -- '\tfoobar\t'
    ("TRIM(LEADING FROM '   foobar   ')", "foobar   "),  # -- 'foobar '
    ("TRIM(TRAILING FROM '   foobar   ')", "   foobar"),  # -- ' foobar'
    ("TRIM(BOTH FROM '   foobar   ')", "foobar"),  # -- 'foobar'
    ("TRIM(BOTH '1' FROM '11foobar11')", "foobar"),  # -- 'foobar'
    ("TRIM(BOTH '12' FROM '1112211foobar22211122')", "foobar"),  # -- 'foobar'
    ("TRIM(leading 'x' FROM 'xxaxx')", "axx"),  # keywords in any case
    ("TRIM(TRAILING 'x' FROM 'xxaxx')", "xxa"),
    ("TRIM(BOTH null FROM 'x')", None),  # null and missing propagate as null
    ("TRIM(LEADING FROM missing)", None),
]

# "COALESCE function", "NULLIF function", "UPPER function", "LOWER function",
# "CHAR_LENGTH function" / "CHARACTER_LENGTH function" in Amazon QLDB.
OTHERS = [
    ("COALESCE(1)", 1),
    ("COALESCE(null)", None),
    ("COALESCE(null, null)", None),
    ("COALESCE(missing)", None),
    ("COALESCE(missing, missing)", None),
    ("COALESCE(1, null)", 1),
    ("COALESCE(null, null, 1)", 1),
    ("COALESCE(null, 'string')", "string"),
    ("COALESCE(missing, 1)", 1),
    ("NULLIF(1, 1)", None),
    ("NULLIF(1, 2)", 1),
    ("NULLIF(1.0, 1)", None),
    ("NULLIF(1, '1')", 1),
    ("NULLIF([1], [1])", None),
    ("NULLIF(1, NULL)", 1),
    ("NULLIF(NULL, 1)", None),
    ("NULLIF(null, null)", None),
    ("NULLIF(missing, null)", None),
    ("NULLIF(missing, missing)", None),
    ("UPPER('AbCdEfG!@#$')", "ABCDEFG!@#$"),
    ("LOWER('AbCdEfG!@#$')", "abcdefg!@#$"),
    ("CHAR_LENGTH('')", 0),
    ("CHAR_LENGTH('abcdefg')", 7),
    ("CHAR_LENGTH('\U0001f601\U0001f61e\U0001f638\U0001f638')", 4),  # -- 4 (non-BMP)
    ("CHARACTER_LENGTH('e\u032b')", 2),  # -- 2 (the letter 'e' and combining U+032B)
    ("CHAR_LENGTH(null)", None),  # null and missing propagate as null
    ("CHAR_LENGTH(missing)", None),
]


@pytest.mark.parametrize(("expression", "expected"), EXISTS + SIZE + SUBSTRING + TRIM + OTHERS)
def test_function_returns_the_developer_guide_result(
    led: EmbeddedLedger, expression: str, expected: Any
) -> None:
    got = select_value(led, expression)
    if expected is None:
        assert is_null(got)
    else:
        assert got == expected
        assert type(got) is not bool or type(expected) is bool


@pytest.mark.parametrize(
    "expression",
    [
        "EXISTS(missing)",  # EXISTS page: EXISTS(missing) -- error
        "SIZE(12)",  # SIZE page: SIZE(12) -- error
        "SUBSTRING('123', 1, -1)",  # SUBSTRING page: the length can't be negative
        "TRIM(BOTH 1 FROM 'x')",  # TRIM page: the characters are a string
        "TRIM(LEADING FROM 5)",
    ],
)
def test_documented_errors_are_errors(led: EmbeddedLedger, expression: str) -> None:
    with pytest.raises(StatementError):
        select_value(led, expression)


@pytest.mark.parametrize(
    "expression", ["TRIM('x' FROM 'xax')", "TRIM(BOTH 'x' 'y' FROM 'xax')", "TRIM(BOTH 'x')"]
)
def test_trim_forms_qldb_does_not_have_are_refused(led: EmbeddedLedger, expression: str) -> None:
    # TRIM page: TRIM ( [ LEADING | TRAILING | BOTH [ characters ] FROM ] string)
    with pytest.raises(ParseError):
        select_value(led, expression)


def test_a_field_may_still_be_named_like_these_functions(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE W")
    led.execute("INSERT INTO W VALUE {'trim': 1, 'cast': 2, 'extract': 3, 'leading': 4}")
    [row] = led.execute("SELECT trim, w.cast, extract, leading FROM W AS w")
    assert dict(row) == {"trim": 1, "cast": 2, "extract": 3, "leading": 4}
