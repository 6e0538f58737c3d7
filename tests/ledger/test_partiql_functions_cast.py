"""CAST, checked against the "CAST function in Amazon QLDB" page
(https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.cast.html): its unknown-type,
boolean and integer examples are quoted as ``expression -- result``. The rest of that page was not
readable in the stored copy; the float, decimal, timestamp, symbol, string, struct, list and bag
cases are the examples of the PartiQL reference's CAST section (partiql-lang-kotlin
docs/documentation/Functions.md), which the QLDB page says it is based on. A conversion the pages
call an error is a ``StatementError``, never a value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ledger import EmbeddedLedger, ParseError, StatementError
from ledger.evaluate import kind, text_of
from ledger.timestamps import ion_text
from tests.ledger.function_cases import MISSING, is_null, select_value

QLDB_PAGE = [
    ("CAST(null AS null)", None),
    ("CAST(missing AS null)", None),
    ("CAST(missing AS missing)", MISSING),
    ("CAST(null AS missing)", MISSING),
    ("CAST(null AS boolean)", None),  # (null AS any data type name results in null)
    ("CAST(missing AS boolean)", MISSING),  # (missing AS any data type name results in missing)
    ("CAST(true AS boolean)", True),  # no-op
    ("CAST(0 AS boolean)", False),
    ("CAST(1 AS boolean)", True),
    ("CAST(`1e0` AS boolean)", True),  # (float)
    ("CAST(`1d0` AS boolean)", True),  # (decimal)
    ("CAST('a' AS boolean)", False),
    ("CAST('true' AS boolean)", True),  # (SqlName string 'true')
    ("CAST(`'true'` AS boolean)", True),  # (Ion symbol `'true'`)
    ("CAST(`'false'` AS boolean)", False),  # (Ion symbol `'false'`)
    ("CAST(true AS integer)", 1),
    ("CAST(false AS integer)", 0),
    ("CAST(1 AS integer)", 1),
    ("CAST(`1d0` AS integer)", 1),
    ("CAST(`1d3` AS integer)", 1000),
    ("CAST(1.00 AS integer)", 1),
    ("CAST(1.45 AS integer)", 1),
    ("CAST(1.75 AS integer)", 1),
    ("CAST('12' AS integer)", 12),
    ("CAST(`'22'` AS integer)", 22),
]

PARTIQL_REFERENCE = [
    ("CAST(true AS float)", 1.0),
    ("CAST(false AS float)", 0.0),
    ("CAST(1 AS float)", 1.0),
    ("CAST(`1d3` AS float)", 1000.0),
    ("CAST('12' AS float)", 12.0),
    ("CAST(`'22'` AS float)", 22.0),
    ("CAST(true AS decimal)", Decimal("1")),
    ("CAST(1 AS decimal)", Decimal("1")),
    ("CAST(`1d3` AS decimal)", Decimal("1E+3")),
    ("CAST(1.00 AS decimal)", Decimal("1.00")),
    ("CAST('12' AS decimal)", Decimal("12")),
    ("CAST(`2001T` AS timestamp)", "2001T"),
    ("CAST('2001-01-01T' AS timestamp)", "2001-01-01T"),
    ("CAST(`'2010-01-01T00:00:00.000Z'` AS timestamp)", "2010-01-01T00:00:00.000Z"),
    ("CAST(`'xx'` AS symbol)", "xx"),
    ("CAST('xx' AS symbol)", "xx"),
    ("CAST(42 AS symbol)", "42"),
    ("CAST(`1e0` AS symbol)", "1"),
    ("CAST(`1d0` AS symbol)", "1"),
    ("CAST(true AS symbol)", "true"),
    ("CAST(`2001T` AS symbol)", "2001T"),
    ("CAST(`'xx'` AS string)", "xx"),
    ("CAST(42 AS string)", "42"),
    ("CAST(`1e0` AS string)", "1.0"),
    ("CAST(`1d0` AS string)", "1"),
    ("CAST(false AS string)", "false"),
    ("CAST(`2001-01-01T00:00:00.000Z` AS string)", "2001-01-01T00:00:00.000Z"),
    ("CAST(`{ a: 1 }` AS struct)", {"a": 1}),
    ("CAST(`[1, 2, 3]` AS list)", [1, 2, 3]),
    ("CAST(<<'a', { 'b':2 }>> AS list)", ["a", {"b": 2}]),
    ("CAST([1,[2],3] AS bag)", [1, [2], 3]),
]


@pytest.mark.parametrize(("expression", "expected"), QLDB_PAGE + PARTIQL_REFERENCE)
def test_cast_returns_the_documented_result(
    led: EmbeddedLedger, expression: str, expected: Any
) -> None:
    got = select_value(led, expression)
    if expected is None:
        assert is_null(got)
    elif expected is MISSING:
        assert got == MISSING
    elif kind(got) == "timestamp":
        assert ion_text(got) == expected
    elif "AS symbol" in expression:
        assert type(got).__name__ == "IonPySymbol" and text_of(got) == expected
    else:
        assert got == expected
        assert type(got) is not bool or type(expected) is bool
        assert isinstance(got, float) == isinstance(expected, float)
        assert isinstance(got, Decimal) == isinstance(expected, Decimal)
        if isinstance(expected, Decimal):
            assert str(got) == str(expected)  # the precision is kept (1.00 stays 1.00)


def test_cast_as_symbol_is_a_symbol(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T VALUE {'one': 1}")
    [row] = led.execute("SELECT CAST(42 AS symbol) AS y, CAST(`'x'` AS string) AS s FROM T")
    assert type(row["y"]).__name__ == "IonPySymbol"
    assert isinstance(row["s"], str) and type(row["s"]).__name__ != "IonPySymbol"


@pytest.mark.parametrize(
    "expression",
    [
        # CAST page: any value that is not an unknown type can't be cast to NULL or MISSING.
        "CAST(true AS null)",
        "CAST(true AS missing)",
        "CAST(1 AS null)",
        "CAST(1 AS missing)",
        "CAST('aa' AS integer)",  # -- error
        "CAST(`'x'` AS integer)",  # PartiQL reference: -- error
        "CAST('aa' AS float)",
        "CAST('aa' AS decimal)",
        "CAST(true AS timestamp)",
        "CAST(2001 AS timestamp)",
        "CAST(true AS struct)",
        "CAST({ 'b':2 } AS list)",
        "CAST(`2001T` AS integer)",
        "CAST(`nan` AS integer)",
        "CAST([1] AS string)",
    ],
)
def test_documented_cast_errors_are_errors(led: EmbeddedLedger, expression: str) -> None:
    with pytest.raises(StatementError, match="cannot cast"):
        select_value(led, expression)


@pytest.mark.parametrize(
    "expression", ["CAST(1 AS varchar)", "CAST(1 AS blob)", "CAST(1, integer)", "CAST(1 integer)"]
)
def test_types_and_forms_cast_does_not_have_are_refused_at_parse(
    led: EmbeddedLedger, expression: str
) -> None:
    with pytest.raises(ParseError):
        select_value(led, expression)


def test_cast_reads_document_fields_and_parameters(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE P")
    led.execute("INSERT INTO P VALUE {'n': '12', 'd': 1.75}")
    [row] = led.execute(
        "SELECT CAST(p.n AS integer) AS n, CAST(p.d AS integer) AS d, CAST(? AS string) AS s "
        "FROM P AS p WHERE CAST(p.n AS integer) = 12",
        7,
    )
    assert (row["n"], row["d"], row["s"]) == (12, 1, "7")
