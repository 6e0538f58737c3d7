"""``SELECT DISTINCT``, ``[*]`` path wildcards and ``CASE``, against the embedded ledger.

QLDB's "SELECT command in Amazon QLDB" page
(https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html) gives the syntax
``SELECT [ VALUE ] expression ... FROM source ...`` and shows neither DISTINCT nor ``[*]``; its
"PartiQL operators in Amazon QLDB" and "PartiQL functions" pages do not list CASE. Where QLDB's
pages are silent the PartiQL specification is the spec (partiql/partiql-spec, "Path Navigation":
``e[*]`` reduces to ``SELECT VALUE v FROM e AS v``; ``e[*]p1[*]p2`` to ``SELECT VALUE v2.p2 FROM
e AS v1, @v1.p1 AS v2``). The data is the two registrations of "Querying your data" (the ``regs``
fixture, ``registrations.py``).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from registrations import P1, P2, S1, VIN1, VIN2

from ledger import EmbeddedLedger
from ledger.errors import ParseError
from ledger.evaluate import is_null
from ledger.parser import parse

# --- SELECT DISTINCT ----------------------------------------------------------------------------


def test_distinct_keeps_each_result_once(regs: EmbeddedLedger) -> None:
    """Both registrations are in "WA" ("Querying your data"): one row."""
    assert regs.execute("SELECT DISTINCT r.State FROM VehicleRegistration AS r") == [
        {"State": "WA"}
    ]
    assert regs.execute("SELECT r.State FROM VehicleRegistration AS r") == [{"State": "WA"}] * 2


def test_distinct_value_and_distinct_rows_of_two_fields(regs: EmbeddedLedger) -> None:
    assert regs.execute("SELECT DISTINCT VALUE r.State FROM VehicleRegistration r") == ["WA"]
    rows = regs.execute("SELECT DISTINCT r.State, r.City FROM VehicleRegistration r")
    assert sorted(rows, key=lambda x: x["City"]) == [
        {"State": "WA", "City": "Kent"},
        {"State": "WA", "City": "Seattle"},
    ]


def test_distinct_uses_partiql_equality(led: EmbeddedLedger) -> None:
    """Numbers by value (1, 1.0, 1e0 are one), structs whatever their field order, null once."""
    led.execute("CREATE TABLE T")
    led.execute(
        "INSERT INTO T << {'n': 1, 's': {'a': 1, 'b': 2}}, {'n': 1.0, 's': {'b': 2, 'a': 1}},"
        " {'n': 1e0, 's': {'a': 1}}, {'n': null}, {'n': null}, {'n': 2} >>"
    )
    values = led.execute("SELECT DISTINCT VALUE t.n FROM T AS t")
    assert len(values) == 3
    assert sum(1 for v in values if is_null(v)) == 1
    assert sorted(Decimal(v) for v in values if not is_null(v)) == [1, 2]
    assert len(led.execute("SELECT DISTINCT VALUE t.s FROM T AS t")) == 2  # {a,b} once, {a}


def test_distinct_refused_inside_a_call(regs: EmbeddedLedger) -> None:
    with pytest.raises(ParseError, match="'DISTINCT' inside a function call"):
        parse("SELECT COUNT(DISTINCT r.City) FROM VehicleRegistration r")


# --- [*] path wildcards -------------------------------------------------------------------------


def test_wildcard_path_gives_the_bag_of_values(regs: EmbeddedLedger) -> None:
    """``r.Owners.SecondaryOwners[*].PersonId`` is the list of the secondary owners' ids, named
    by its last field as a path item is; ``[]`` gives an empty one."""
    rows = regs.execute(
        "SELECT r.VIN, r.Owners.SecondaryOwners[*].PersonId FROM VehicleRegistration AS r"
    )
    assert sorted(rows, key=lambda x: x["VIN"]) == [
        {"VIN": VIN1, "PersonId": [S1]},
        {"VIN": VIN2, "PersonId": []},
    ]


def test_wildcard_over_a_non_list_ranges_over_the_value_itself(regs: EmbeddedLedger) -> None:
    """PartiQL's FROM range: ``PrimaryOwner`` is a struct, ``[*]`` gives a bag of it; a field
    that is missing gives an empty bag."""
    rows = regs.execute(
        "SELECT VALUE r.Owners.PrimaryOwner[*].PersonId FROM VehicleRegistration AS r"
    )
    assert sorted(rows) == [[P1], [P2]]
    assert regs.execute("SELECT VALUE r.Nothing[*].x FROM VehicleRegistration AS r") == [[], []]


def test_two_wildcards_and_a_wildcard_in_where(led: EmbeddedLedger) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T {'a': [{'b': [1, 2]}, {'b': [3]}, {'c': 4}]}")
    assert led.execute("SELECT VALUE t.a[*].b[*] FROM T AS t") == [[1, 2, 3]]
    assert led.execute("SELECT VALUE t.a[*].c FROM T AS t") == [[4]]
    assert led.execute("SELECT VALUE 1 FROM T AS t WHERE SIZE(t.a[*].b[*]) = 3") == [1]


def test_wildcard_inside_unpivot_is_refused_with_its_token() -> None:
    with pytest.raises(ParseError, match=r"'\*' is a \.\* wildcard inside a path"):
        parse("SELECT r.a[*].*.b FROM T AS r")
    with pytest.raises(ParseError, match="unexpected"):
        parse("SELECT r.a[*.b FROM T AS r")


# --- CASE -----------------------------------------------------------------------------------------


def test_searched_case(regs: EmbeddedLedger) -> None:
    rows = regs.execute(
        "SELECT r.VIN, CASE WHEN r.City = 'Seattle' THEN 'S' WHEN r.City = 'Kent' THEN 'K'"
        " ELSE 'other' END AS c FROM VehicleRegistration AS r"
    )
    assert sorted(rows, key=lambda x: x["VIN"]) == [
        {"VIN": VIN1, "c": "S"},
        {"VIN": VIN2, "c": "K"},
    ]


def test_simple_case_without_else_is_null_when_nothing_matches(regs: EmbeddedLedger) -> None:
    rows = regs.execute(
        "SELECT VALUE CASE r.City WHEN 'Kent' THEN 1 END FROM VehicleRegistration AS r"
    )
    assert len(rows) == 2 and 1 in rows and sum(1 for v in rows if is_null(v)) == 1


def test_case_null_never_matches_and_a_non_boolean_condition_is_not_true(
    led: EmbeddedLedger,
) -> None:
    led.execute("CREATE TABLE T")
    led.execute("INSERT INTO T {'x': null, 'y': 'a'}")
    assert led.execute(
        "SELECT VALUE CASE t.x WHEN null THEN 'matched' ELSE 'no' END FROM T AS t"
    ) == ["no"]
    assert led.execute("SELECT VALUE CASE WHEN t.y THEN 1 ELSE 2 END FROM T AS t") == [2]
    assert led.execute("SELECT VALUE t.y FROM T AS t WHERE CASE WHEN t.y = 'a' THEN true END") == [
        "a"
    ]


@pytest.mark.parametrize(
    ("text", "token"),
    [
        ("SELECT CASE WHEN 1 THEN 2 FROM T", "'FROM'"),  # no END
        ("SELECT CASE END FROM T", "'FROM'.*expected WHEN"),  # END is the operand: no WHEN
        ("SELECT CASE WHEN 1 ELSE 2 END FROM T", "'ELSE'"),  # no THEN
    ],
)
def test_malformed_case_is_refused_at_its_token(text: str, token: str) -> None:
    with pytest.raises(ParseError, match=token):
        parse(text)
