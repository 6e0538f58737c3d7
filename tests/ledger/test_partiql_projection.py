"""``alias.*`` and ``*`` beside other SELECT items, against the embedded ledger.

Spec: the SELECT command, https://docs.aws.amazon.com/qldb/latest/developerguide/ql-reference.select.html
(a projection "formed from the * wildcard or a projection list of one or more document fields"),
and the DMV tutorial's renew_drivers_license / transfer_vehicle_ownership query
``SELECT p.* FROM Person AS p BY pid WHERE pid = ?``.
"""

from __future__ import annotations

import pytest

from ledger import EmbeddedLedger, StatementError
from ledger.errors import ParseError


@pytest.fixture
def person(led: EmbeddedLedger) -> tuple[EmbeddedLedger, str]:
    led.execute("CREATE TABLE Person")
    [r] = led.execute(
        "INSERT INTO Person VALUE "
        "{'FirstName': 'Raul', 'LastName': 'Lewis', 'GovId': 'LEWISR261LL'}"
    )
    led.execute("INSERT INTO Person VALUE {'FirstName': 'Brent', 'GovId': 'LOGANB486CG'}")
    return led, r["documentId"]


def test_alias_star_by_document_id(person: tuple[EmbeddedLedger, str]) -> None:
    led, pid = person
    rows = led.execute("SELECT p.* FROM Person AS p BY pid WHERE pid = ?", pid)
    assert rows == [{"FirstName": "Raul", "LastName": "Lewis", "GovId": "LEWISR261LL"}]


def test_star_and_alias_star_beside_other_items(person: tuple[EmbeddedLedger, str]) -> None:
    led, pid = person
    rows = led.execute("SELECT p.*, pid FROM Person AS p BY pid WHERE p.GovId = 'LEWISR261LL'")
    assert rows == [{"FirstName": "Raul", "LastName": "Lewis", "GovId": "LEWISR261LL", "pid": pid}]
    rows = led.execute("SELECT *, pid AS id FROM Person AS p BY pid WHERE pid = ?", pid)
    assert rows == [{"FirstName": "Raul", "LastName": "Lewis", "GovId": "LEWISR261LL", "id": pid}]


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("SELECT p.* AS x FROM Person AS p", ParseError, "cannot name alias"),
        ("SELECT * FROM Person AS p WHERE p.* = 1", ParseError, "only as a SELECT item"),
        ("SELECT p.a.*.b FROM Person AS p", ParseError, "wildcard inside a path"),
        ("SELECT p.FirstName.* FROM Person AS p", StatementError, "not of a string"),
        ("SELECT p.*, p.GovId FROM Person AS p", StatementError, "two fields named 'GovId'"),
    ],
)
def test_star_misuse_is_refused(
    person: tuple[EmbeddedLedger, str], text: str, error: type[Exception], match: str
) -> None:
    led, _ = person
    with pytest.raises(error, match=match):
        led.execute(text)
