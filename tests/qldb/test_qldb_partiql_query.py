"""``SELECT DISTINCT``, ``[*]``, ``CASE`` and subqueries (``EXISTS``, ``IN``, FROM) through pyqldb
against serve-qldb, over the two registrations of the Developer Guide's "Querying your data"
page: the results come back over the Session API as the embedded ledger computes them
(tests/ledger/test_partiql_query_*.py), and a refused form (a correlated subquery) is a
BadRequestException naming what was refused."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from .conftest import Served, make_driver

VIN1, VIN2 = "1N4AL11D75C109151", "KM8SRDHF6EU074761"
P1, P2, S1 = "294jJ3YUoH1IEEm8GSabOs", "IN7MvYtUjkp1GMZu0F6CG9", "5Ufgdlnj06gF5CWcOIu64s"


def _setup(tx: Any) -> None:
    tx.execute_statement("CREATE TABLE VehicleRegistration")
    tx.execute_statement("CREATE TABLE Person")
    for vin, city, primary, secondary in ((VIN1, "Seattle", P1, [S1]), (VIN2, "Kent", P2, [])):
        tx.execute_statement(
            "INSERT INTO VehicleRegistration ?",
            {
                "VIN": vin,
                "State": "WA",
                "City": city,
                "Owners": {
                    "PrimaryOwner": {"PersonId": primary},
                    "SecondaryOwners": [{"PersonId": s} for s in secondary],
                },
            },
        )
    tx.execute_statement("INSERT INTO Person ?", {"PersonId": P1, "LastName": "Lewis"})


def test_query_forms_over_the_session_api(served: Served, ledger_name: str) -> None:
    driver = make_driver(served.url, ledger_name)
    try:
        driver.execute_lambda(_setup)

        def rows(text: str, *params: Any) -> list[Any]:
            return driver.execute_lambda(lambda tx: list(tx.execute_statement(text, *params)))

        assert [dict(r) for r in rows("SELECT DISTINCT r.State FROM VehicleRegistration r")] == [
            {"State": "WA"}
        ]
        wild = rows(
            "SELECT r.VIN, r.Owners.SecondaryOwners[*].PersonId FROM VehicleRegistration AS r"
        )
        assert sorted((r["VIN"], list(r["PersonId"])) for r in wild) == [(VIN1, [S1]), (VIN2, [])]
        cases = rows(
            "SELECT VALUE CASE WHEN r.City = 'Seattle' THEN 'S' ELSE 'other' END"
            " FROM VehicleRegistration AS r"
        )
        assert sorted(cases) == ["S", "other"]
        assert rows(
            "SELECT VALUE r.VIN FROM VehicleRegistration AS r"
            " WHERE r.Owners.PrimaryOwner.PersonId IN (SELECT p.PersonId FROM Person AS p)"
        ) == [VIN1]
        assert sorted(
            rows(
                "SELECT VALUE r.VIN FROM VehicleRegistration AS r"
                " WHERE EXISTS (SELECT * FROM Person AS p WHERE p.LastName = ?)",
                "Lewis",
            )
        ) == [VIN1, VIN2]

        assert [
            dict(r)
            for r in rows(
                "SELECT s.VIN FROM (SELECT r.VIN, r.City FROM VehicleRegistration AS r) AS s"
                " WHERE s.City = 'Kent'"
            )
        ] == [{"VIN": VIN2}]

        with pytest.raises(ClientError) as refused:
            rows(
                "SELECT VALUE r.VIN FROM VehicleRegistration AS r WHERE EXISTS"
                " (SELECT * FROM Person AS p WHERE p.PersonId = r.Owners.PrimaryOwner.PersonId)"
            )
        assert refused.value.response["Error"]["Code"] == "BadRequestException"
        assert "correlated subqueries are refused" in refused.value.response["Error"]["Message"]
    finally:
        driver.close()
