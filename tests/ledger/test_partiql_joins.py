"""Inner joins of QLDB's PartiQL over the DMV sample data, against the embedded ledger.

Spec: the SELECT command, https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html
("the only sources supported are table names, inner joins between tables, ... sources are
separated by commas"), and the join queries of "Querying your data",
https://docs.aws.amazon.com/qldb/latest/developerguide/working.userdata.html.
"""

from __future__ import annotations

import pytest

from ledger import EmbeddedLedger, StatementError
from ledger.classify import classify
from ledger.errors import ParseError

VIN1, VIN2 = "1N4AL11D75C109151", "KM8SRDHF6EU074761"


@pytest.fixture
def dmv(led: EmbeddedLedger) -> tuple[EmbeddedLedger, str, str]:
    """The DMV sample's vehicles and registrations (two owners), as the tutorial inserts them."""
    for t in ("Person", "Vehicle", "VehicleRegistration"):
        led.execute(f"CREATE TABLE {t}")
    led.execute("CREATE INDEX ON VehicleRegistration (VIN)")
    raul = led.execute("INSERT INTO Person VALUE {'FirstName': 'Raul', 'GovId': 'LEWISR261LL'}")
    brent = led.execute("INSERT INTO Person VALUE {'FirstName': 'Brent', 'GovId': 'LOGANB486CG'}")
    pid1, pid2 = raul[0]["documentId"], brent[0]["documentId"]
    led.execute(
        "INSERT INTO Vehicle << {'VIN': ?, 'Make': 'Mercedes', 'Model': 'CLK 350', 'Year': 2011},"
        " {'VIN': ?, 'Make': 'Toyota', 'Model': 'Camry', 'Year': 2013} >>",
        VIN1,
        VIN2,
    )
    for vin, pid in ((VIN1, pid1), (VIN2, pid2)):
        led.execute(
            "INSERT INTO VehicleRegistration VALUE {'VIN': ?, 'LicensePlateNumber': 'LEWISR261LL',"
            " 'Owners': {'PrimaryOwner': {'PersonId': ?}, 'SecondaryOwners': []}}",
            vin,
            pid,
        )
    return led, pid1, pid2


def test_the_tutorial_join_finds_vehicles_by_owner(dmv: tuple[EmbeddedLedger, str, str]) -> None:
    """The DMV tutorial's find_vehicles_for_owner: a struct per row named after the projection."""
    led, pid1, _ = dmv
    rows = led.execute(
        "SELECT Vehicle FROM Vehicle INNER JOIN VehicleRegistration AS r "
        "ON Vehicle.VIN = r.VIN WHERE r.Owners.PrimaryOwner.PersonId = ?",
        pid1,
    )
    assert rows == [
        {"Vehicle": {"VIN": VIN1, "Make": "Mercedes", "Model": "CLK 350", "Year": 2011}}
    ]


@pytest.mark.parametrize(
    "text",
    [
        "SELECT v.Make, r.VIN FROM VehicleRegistration AS r, Vehicle AS v WHERE r.VIN = v.VIN",
        "SELECT v.Make, r.VIN FROM VehicleRegistration AS r CROSS JOIN Vehicle AS v "
        "WHERE r.VIN = v.VIN",
        "SELECT v.Make, r.VIN FROM VehicleRegistration AS r JOIN Vehicle AS v ON r.VIN = v.VIN",
        "SELECT v.Make, r.VIN FROM VehicleRegistration r INNER JOIN Vehicle v ON r.VIN = v.VIN",
    ],
)
def test_comma_cross_and_inner_joins_agree(dmv: tuple[EmbeddedLedger, str, str], text: str) -> None:
    led, _, _ = dmv
    rows = led.execute(text)
    assert sorted(rows, key=lambda r: r["VIN"]) == [
        {"Make": "Mercedes", "VIN": VIN1},
        {"Make": "Toyota", "VIN": VIN2},
    ]


def test_a_join_without_condition_is_the_cross_product(
    dmv: tuple[EmbeddedLedger, str, str],
) -> None:
    led, _, _ = dmv
    rows = led.execute("SELECT v.VIN AS a, r.VIN AS b FROM Vehicle AS v, VehicleRegistration AS r")
    assert sorted((r["a"], r["b"]) for r in rows) == sorted(
        (a, b) for a in (VIN1, VIN2) for b in (VIN1, VIN2)
    )


def test_join_with_by_and_committed_view(dmv: tuple[EmbeddedLedger, str, str]) -> None:
    """``BY`` binds a source's document id in a join; the committed view joins like a table."""
    led, pid1, _ = dmv
    rows = led.execute(
        "SELECT p.FirstName, r.VIN FROM Person AS p BY pid, VehicleRegistration AS r "
        "WHERE r.Owners.PrimaryOwner.PersonId = pid AND pid = ?",
        pid1,
    )
    assert rows == [{"FirstName": "Raul", "VIN": VIN1}]
    rows = led.execute(
        "SELECT c.data.FirstName AS name, c.metadata.version AS version, r.VIN "
        "FROM _ql_committed_Person AS c INNER JOIN VehicleRegistration AS r "
        "ON r.Owners.PrimaryOwner.PersonId = c.metadata.id WHERE r.VIN = ?",
        VIN2,
    )
    assert rows == [{"name": "Brent", "version": 0, "VIN": VIN2}]


def test_select_star_over_a_join_spreads_both_documents(
    dmv: tuple[EmbeddedLedger, str, str],
) -> None:
    led, pid1, _ = dmv
    rows = led.execute(
        "SELECT * FROM Person AS p BY pid, Vehicle AS v WHERE pid = ? AND v.VIN = ?", pid1, VIN1
    )
    assert rows == [
        {"FirstName": "Raul", "GovId": "LEWISR261LL", "VIN": VIN1, "Make": "Mercedes",
         "Model": "CLK 350", "Year": 2011}
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("SELECT * FROM Vehicle AS v LEFT JOIN VehicleRegistration AS r ON v.VIN = r.VIN",
         ParseError, "only inner joins"),
        ("SELECT * FROM Vehicle AS v RIGHT OUTER JOIN VehicleRegistration AS r ON v.VIN = r.VIN",
         ParseError, "only inner joins"),
        ("SELECT * FROM Vehicle AS v FULL JOIN VehicleRegistration AS r ON v.VIN = r.VIN",
         ParseError, "only inner joins"),
        # an unqualified name is ambiguous between two documents: refused, never guessed
        ("SELECT VIN FROM Vehicle AS v, VehicleRegistration AS r", StatementError,
         "names no source of the join"),
        ("SELECT * FROM Vehicle AS v, VehicleRegistration AS v", StatementError,
         "names two sources"),
        # both documents have VIN: a struct cannot hold both
        ("SELECT * FROM Vehicle AS v, VehicleRegistration AS r WHERE v.VIN = r.VIN",
         StatementError, "two fields named 'VIN'"),
    ],
)  # fmt: skip
def test_what_is_not_an_inner_join_is_refused(
    dmv: tuple[EmbeddedLedger, str, str], text: str, error: type[Exception], match: str
) -> None:
    led, _, _ = dmv
    with pytest.raises(error, match=match):
        led.execute(text)


def test_joins_are_reads_on_replay() -> None:
    """A block's join is classified a read (skipped on replay), never an unsupported statement."""
    c = classify(
        "SELECT Vehicle FROM Vehicle INNER JOIN VehicleRegistration AS r ON Vehicle.VIN = r.VIN"
    )
    assert (c.kind, c.replayable_as_text) == ("select", True)
