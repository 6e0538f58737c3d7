"""Unnesting with ``@`` in FROM (QLDB's PartiQL), against the embedded ledger.

Spec: "SELECT command in Amazon QLDB",
https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html: "SELECT ...
FROM source [ AS source_alias ] [ AT idx_alias ] [ BY id_alias ] [, source, ... ]", with
"idx_alias (Optional) A user-defined alias that binds to the index (ordinal) of each element
within a list from the source". The data is the two registrations "Querying your data"
(https://docs.aws.amazon.com/qldb/latest/developerguide/working.userdata.html) shows:

    { VIN: "1N4AL11D75C109151", LicensePlateNumber: "LEWISR261LL", ..., Owners: { PrimaryOwner:
      { PersonId: "294jJ3YUoH1IEEm8GSabOs" }, SecondaryOwners: [{ PersonId:
      "5Ufgdlnj06gF5CWcOIu64s" }] } },
    { VIN: "KM8SRDHF6EU074761", LicensePlateNumber: "CA762X", ..., Owners: { PrimaryOwner:
      { PersonId: "IN7MvYtUjkp1GMZu0F6CG9" }, SecondaryOwners: [] } }

and the same page's nested-data queries range over ``@r.Owners.SecondaryOwners``. A FROM item
ranges as PartiQL's FROM does (QLDB runs the PartiQL reference implementation's semantics): a
list gives one row per element (none for ``[]``); any other value is a single row of itself.
"""

from __future__ import annotations

import pytest
from registrations import P1, S1, VIN1

from ledger import EmbeddedLedger, StatementError
from ledger.classify import classify
from ledger.errors import ParseError


def test_unnesting_secondary_owners_gives_a_row_per_owner(regs: EmbeddedLedger) -> None:
    """``SELECT r.VIN, o.PersonId FROM VehicleRegistration AS r, @r.Owners.SecondaryOwners AS o``:
    the registration with one secondary owner gives one row; the one with ``[]`` gives none."""
    rows = regs.execute(
        "SELECT r.VIN, o.PersonId FROM VehicleRegistration AS r, @r.Owners.SecondaryOwners AS o"
    )
    assert rows == [{"VIN": VIN1, "PersonId": S1}]


def test_unnesting_with_a_where_on_the_element(regs: EmbeddedLedger) -> None:
    """The unnested alias is usable in WHERE like any source's alias."""
    q = (
        "SELECT VALUE r.LicensePlateNumber FROM VehicleRegistration AS r,"
        " @r.Owners.SecondaryOwners AS o WHERE o.PersonId = ?"
    )
    assert regs.execute(q, S1) == ["LEWISR261LL"]
    assert regs.execute(q, P1) == []


def test_a_struct_ranges_as_one_row_of_itself(regs: EmbeddedLedger) -> None:
    """``@r.Owners`` is a struct, not a list: one row per registration, bound to the struct."""
    rows = regs.execute(
        "SELECT r.VIN, o.SecondaryOwners FROM VehicleRegistration AS r, @r.Owners AS o"
        " WHERE r.VIN = ?",
        VIN1,
    )
    assert rows == [{"VIN": VIN1, "SecondaryOwners": [{"PersonId": S1}]}]


def test_at_binds_the_elements_position(led: EmbeddedLedger) -> None:
    """``AT idx_alias`` "binds to the index (ordinal) of each element within a list": from 0."""
    led.execute("CREATE TABLE Garage")
    led.execute("INSERT INTO Garage VALUE {'name': 'north', 'cars': ['a', 'b', 'c']}")
    rows = led.execute("SELECT c AS car, i FROM Garage AS g, @g.cars AS c AT i")
    assert rows == [{"car": "a", "i": 0}, {"car": "b", "i": 1}, {"car": "c", "i": 2}]
    # over no list, the position is missing (so the item is left out of the struct)
    assert led.execute("SELECT g.name, i FROM Garage AS g, @g.name AS n AT i") == [
        {"name": "north"}
    ]


def test_a_missing_field_ranges_as_one_missing_row(led: EmbeddedLedger) -> None:
    """PartiQL's FROM range: a value that is not a list is one row, missing included."""
    led.execute("CREATE TABLE Garage")
    led.execute("INSERT INTO Garage VALUE {'name': 'south'}")
    assert led.execute("SELECT g.name, c FROM Garage AS g, @g.cars AS c") == [{"name": "south"}]


def test_unnesting_joins_with_tables(regs: EmbeddedLedger) -> None:
    """An @path beside a table and a JOIN ... ON over the unnested element."""
    regs.execute("CREATE TABLE Person")
    regs.execute("INSERT INTO Person VALUE {'PersonId': ?, 'FirstName': 'Mary'}", S1)
    rows = regs.execute(
        "SELECT r.VIN, p.FirstName FROM VehicleRegistration AS r, @r.Owners.SecondaryOwners AS o"
        " JOIN Person AS p ON p.PersonId = o.PersonId"
    )
    assert rows == [{"VIN": VIN1, "FirstName": "Mary"}]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("SELECT * FROM @r.Owners", "'@'"),  # nothing before it to range over
        ("SELECT o FROM VehicleRegistration AS r, @r AS o", "'@'"),  # no path
        ("UPDATE @r.x SET a = 1", "'@'"),  # DML sources are tables
        ("SELECT * FROM VehicleRegistration AS r, @r.x AS o BY pid", "'BY'"),  # no document id
    ],
)
def test_refused_unnesting_shapes(regs: EmbeddedLedger, text: str, where: str) -> None:
    with pytest.raises(ParseError, match=where):
        regs.execute(text)


def test_an_unknown_root_is_an_error_not_a_field(regs: EmbeddedLedger) -> None:
    """``@x.y`` where no source is named x: refused, never read as a field of some document."""
    with pytest.raises(StatementError, match="names no source before it"):
        regs.execute("SELECT o FROM VehicleRegistration AS r, @x.Owners AS o")


def test_unnesting_in_a_replayed_block_is_a_read(regs: EmbeddedLedger) -> None:
    text = "SELECT o FROM VehicleRegistration AS r, @r.Owners.SecondaryOwners AS o"
    assert classify(text).kind == "select"
