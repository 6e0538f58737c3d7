"""Aggregate functions as QLDB runs them: ``COUNT(*)``, ``COUNT``, ``SUM``, ``MIN``, ``MAX``,
``AVG`` over all the rows a SELECT reads, one result row, null and missing values skipped.

Spec: the QLDB Developer Guide's PartiQL functions (aggregate functions: COUNT, SUM, MIN, MAX, AVG,
https://docs.aws.amazon.com/qldb/latest/developerguide/ql-functions.html) and the PartiQL
specification's aggregates (a default item name ``_1``, ``_2``...). ``GROUP BY`` is refused here
(the SELECT reference shows none): an item beside aggregates that is not one has no value, and an
aggregate anywhere but as a whole SELECT item is refused (never a row per document, never a silently
wrong count).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from ledger import EmbeddedLedger, StatementError
from ledger.evaluate import is_null


@pytest.fixture
def vehicles(led: EmbeddedLedger) -> EmbeddedLedger:
    led.execute("CREATE TABLE Vehicle")
    led.execute(
        "INSERT INTO Vehicle << {'VIN': 'A', 'Year': 2011, 'Make': 'Audi'}, "
        "{'VIN': 'B', 'Year': 2015, 'Make': 'Tesla'}, {'VIN': 'C', 'Year': 2009}, "
        "{'VIN': 'D', 'Year': null, 'Make': 'Ford'} >>"
    )
    return led


def test_count_star_counts_the_rows(vehicles: EmbeddedLedger) -> None:
    assert [dict(r) for r in vehicles.execute("SELECT COUNT(*) FROM Vehicle")] == [{"_1": 4}]
    [row] = vehicles.execute("SELECT COUNT(*) AS n FROM Vehicle AS v WHERE v.Year > 2010")
    assert dict(row) == {"n": 2}


def test_count_of_an_expression_skips_null_and_missing(vehicles: EmbeddedLedger) -> None:
    [row] = vehicles.execute(
        "SELECT COUNT(v.Make) AS makes, COUNT(v.Year) AS years FROM Vehicle AS v"
    )
    assert dict(row) == {"makes": 3, "years": 3}


def test_sum_min_max_avg(vehicles: EmbeddedLedger) -> None:
    [row] = vehicles.execute(
        "SELECT SUM(v.Year) AS s, MIN(v.Year) AS lo, MAX(v.Year) AS hi, AVG(v.Year) AS mean, "
        "MIN(v.Make) AS first FROM Vehicle AS v"
    )
    assert dict(row) == {
        "s": 6035, "lo": 2009, "hi": 2015, "mean": Decimal(6035) / Decimal(3), "first": "Audi",
    }  # fmt: skip


def test_over_no_rows_count_is_zero_and_the_others_null(vehicles: EmbeddedLedger) -> None:
    [row] = vehicles.execute(
        "SELECT COUNT(*) AS n, SUM(v.Year) AS s, MAX(v.Year) AS hi FROM Vehicle AS v "
        "WHERE v.VIN = 'none'"
    )
    assert row["n"] == 0 and is_null(row["s"]) and is_null(row["hi"])


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT v.VIN, COUNT(*) FROM Vehicle AS v",  # no GROUP BY to give v.VIN a value
        "SELECT * FROM Vehicle AS v WHERE COUNT(*) > 1",
        "SELECT SUM(v.Make) FROM Vehicle AS v",  # not numbers
        "SELECT MAX(v) FROM Vehicle AS v",  # structs do not order
        "SELECT SUM(*) FROM Vehicle",
        "SELECT v.VIN FROM Vehicle AS v GROUP BY v.VIN",
    ],
)
def test_what_qldb_cannot_answer_is_refused(vehicles: EmbeddedLedger, statement: str) -> None:
    with pytest.raises(StatementError):
        vehicles.execute(statement)
