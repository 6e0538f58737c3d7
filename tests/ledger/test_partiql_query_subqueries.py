"""Subqueries in ``EXISTS (SELECT ...)`` and ``x IN (SELECT ...)``, against the embedded ledger.

QLDB's "SELECT command in Amazon QLDB" page
(https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html) allows "nested
SELECT queries (subject to Nested query limitations)"; the text of that limitations section was
not found, so what runs here is the uncorrelated form (in EXISTS, on IN's right side, and as a
FROM source ``(SELECT ...) AS x``), each subquery run once before the query around it, and a
correlated subquery (one reading a source of the query around it) is refused
with an error naming the source. IN's right side is coerced as the PartiQL RFC on IN predicates
(partiql-docs, "IN Predicate coercion", partiql-lang-kotlin#524) says: one SELECT item compares
its values, several compare the list of them; ``SELECT VALUE`` compares its values.
"""

from __future__ import annotations

import pytest
from registrations import P1, S1, VIN1, VIN2

from ledger import EmbeddedLedger, StatementError
from ledger.classify import classify
from ledger.errors import ParseError
from ledger.parser import parse


@pytest.fixture
def people(regs: EmbeddedLedger) -> EmbeddedLedger:
    """A ``Person`` table holding the first registration's primary owner only."""
    regs.execute("CREATE TABLE Person")
    regs.execute("INSERT INTO Person {'PersonId': ?, 'LastName': 'Lewis'}", P1)
    return regs


def test_in_subquery_with_select_value(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r"
        " WHERE r.Owners.PrimaryOwner.PersonId IN (SELECT VALUE p.PersonId FROM Person AS p)"
    )
    assert rows == [VIN1]


def test_in_subquery_with_one_item_compares_its_values(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r"
        " WHERE r.Owners.PrimaryOwner.PersonId NOT IN (SELECT p.PersonId FROM Person AS p)"
    )
    assert rows == [VIN2]


def test_in_subquery_with_two_items_compares_lists(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE"
        " [r.Owners.PrimaryOwner.PersonId, 'Lewis'] IN"
        " (SELECT p.PersonId, p.LastName FROM Person p)"
    )
    assert rows == [VIN1]


def test_exists_and_not_exists(people: EmbeddedLedger) -> None:
    q = (
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r"
        " WHERE {} (SELECT * FROM Person AS p WHERE p.LastName = {!r})"
    )
    assert sorted(people.execute(q.format("EXISTS", "Lewis"))) == [VIN1, VIN2]
    assert people.execute(q.format("EXISTS", "Nobody")) == []
    assert sorted(people.execute(q.format("NOT EXISTS", "Nobody"))) == [VIN1, VIN2]


def test_exists_as_a_select_item_and_nested_subqueries(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT EXISTS (SELECT VALUE p FROM Person AS p WHERE p.PersonId IN"
        " (SELECT VALUE r.Owners.PrimaryOwner.PersonId FROM VehicleRegistration AS r)) AS e"
        " FROM VehicleRegistration AS v WHERE v.VIN = ?",
        VIN2,
    )
    assert rows == [{"e": True}]


def test_a_subquery_with_parameters_and_a_wildcard(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE ? IN"
        " (SELECT VALUE x.Owners.SecondaryOwners[*].PersonId FROM VehicleRegistration AS x"
        "  WHERE x.VIN = ?) OR r.VIN = ?",
        [S1],
        VIN1,
        VIN2,
    )
    assert sorted(rows) == [VIN1, VIN2]


def test_a_correlated_subquery_is_refused_naming_the_outer_source(people: EmbeddedLedger) -> None:
    with pytest.raises(StatementError, match="reads 'r', a source of the query around it"):
        people.execute(
            "SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE EXISTS"
            " (SELECT * FROM Person AS p WHERE p.PersonId = r.Owners.PrimaryOwner.PersonId)"
        )


def test_in_select_star_is_refused(people: EmbeddedLedger) -> None:
    with pytest.raises(StatementError, match=r"IN \(SELECT \* \.\.\.\) would compare"):
        people.execute(
            "SELECT VALUE r.VIN FROM VehicleRegistration r WHERE r.VIN IN (SELECT * FROM Person)"
        )


@pytest.mark.parametrize(
    ("text", "token"),
    [
        (
            "SELECT * FROM T WHERE (SELECT 1 FROM U) = 1",
            "'SELECT' starts a subquery used as a value",
        ),
        ("SELECT * FROM T WHERE size(SELECT * FROM U) = 1", "'size' takes no subquery"),
        (
            "UPDATE T AS t SET t.a = 1 WHERE t.b IN (SELECT VALUE 1 FROM U)",
            "'IN' takes a subquery only",
        ),
        ("DELETE FROM T AS t WHERE EXISTS (SELECT * FROM U)", "'EXISTS' takes a subquery only"),
        ("SELECT * FROM T WHERE EXISTS (SELECT * FROM U", "end of statement"),
        ("SELECT * FROM T WHERE x IN (SELECT FROM U)", "'U'"),  # FROM read as the item
    ],
)
def test_malformed_or_misplaced_subqueries_are_refused_at_their_token(
    text: str, token: str
) -> None:
    with pytest.raises(ParseError, match=token):
        parse(text)


def test_a_select_with_a_subquery_is_a_read_for_replay() -> None:
    assert classify("SELECT * FROM T WHERE EXISTS (SELECT * FROM U)").kind == "select"


# --- nested SELECT as a FROM source ("nested SELECT queries" of the SELECT page's sources) -------


def test_a_nested_select_as_a_source(people: EmbeddedLedger) -> None:
    rows = people.execute(
        "SELECT s.VIN FROM (SELECT r.VIN, r.City FROM VehicleRegistration AS r) AS s"
        " WHERE s.City = 'Kent'"
    )
    assert rows == [{"VIN": VIN2}]
    joined = people.execute(
        "SELECT s.VIN, p.LastName FROM (SELECT VALUE r FROM VehicleRegistration AS r) AS s,"
        " Person AS p WHERE s.Owners.PrimaryOwner.PersonId = p.PersonId"
    )
    assert joined == [{"VIN": VIN1, "LastName": "Lewis"}]


def test_a_lateral_nested_select_is_refused_as_correlated(people: EmbeddedLedger) -> None:
    with pytest.raises(StatementError, match="reads 'p', a source of the query around it"):
        people.execute(
            "SELECT s.VIN FROM Person AS p, (SELECT r.VIN FROM VehicleRegistration AS r"
            " WHERE r.Owners.PrimaryOwner.PersonId = p.PersonId) AS s"
        )


@pytest.mark.parametrize(
    "text",
    [
        "SELECT * FROM (SELECT * FROM T)",  # no alias
        "SELECT * FROM (SELECT * FROM T) AS s BY pid",  # no document id
    ],
)
def test_a_nested_select_needs_an_alias_and_no_by(text: str) -> None:
    with pytest.raises(ParseError, match="'SELECT' starts a FROM subquery: it needs AS alias"):
        parse(text)
