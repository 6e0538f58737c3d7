"""The QLDB Developer Guide's DMV tutorial program (aws-samples/amazon-qldb-dmv-sample-python,
pyqldbsamples) run step by step through pyqldb against ``serve-qldb``, then its verification
scripts through boto3's ``qldb`` client, only the endpoints changed. Every step asserts what the
tutorial says it returns.

Steps and statements as the sample runs them: create_table, create_index, insert_document (Ion
parameters; the people's document ids written into licenses and registrations), scan_table,
add_secondary_owner, find_vehicles (the sample's ``INNER JOIN``), register_drivers_license,
renew_drivers_license, deregister_drivers_license, transfer_vehicle_ownership, query_history,
redact_revision, get_digest, get_block, get_revision (with the tutorial's verifier). Persons are
read by document id as the sample reads them, ``SELECT p.* FROM Person AS p BY pid WHERE pid = ?``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from amazon.ion import simpleion

from tests.ledger.test_ledger_dmv import INDEXES, TABLES

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, Served, make_driver
from .verifier import verify

PEOPLE = [
    {"FirstName": "Raul", "LastName": "Lewis", "DOB": datetime(1963, 8, 19),
     "GovId": "LEWISR261LL", "GovIdType": "Driver License",
     "Address": "1719 University Street, Seattle, WA, 98109"},
    {"FirstName": "Brent", "LastName": "Logan", "DOB": datetime(1967, 7, 3),
     "GovId": "LOGANB486CG", "GovIdType": "Driver License",
     "Address": "43 Stockert Hollow Road, Everett, WA, 98203"},
    {"FirstName": "Alexis", "LastName": "Pena", "DOB": datetime(1974, 2, 10),
     "GovId": "744 849 301", "GovIdType": "SSN",
     "Address": "4058 Melrose Street, Spokane Valley, WA, 99206"},
]  # fmt: skip
LICENSES = [
    {"PersonId": "", "LicenseNumber": "LEWISR261LL", "LicenseType": "Learner",
     "ValidFromDate": datetime(2016, 12, 20), "ValidToDate": datetime(2020, 11, 15)},
    {"PersonId": "", "LicenseNumber": "LOGANB486CG", "LicenseType": "Probationary",
     "ValidFromDate": datetime(2016, 4, 6), "ValidToDate": datetime(2020, 11, 15)},
    {"PersonId": "", "LicenseNumber": "744 849 301", "LicenseType": "Full",
     "ValidFromDate": datetime(2017, 12, 6), "ValidToDate": datetime(2022, 10, 15)},
]  # fmt: skip
VEHICLES = [
    {"VIN": "1N4AL11D75C109151", "Type": "Sedan", "Year": 2011, "Make": "Audi", "Model": "A5",
     "Color": "Silver"},
    {"VIN": "KM8SRDHF6EU074761", "Type": "Sedan", "Year": 2015, "Make": "Tesla",
     "Model": "Model S", "Color": "Blue"},
]  # fmt: skip
REGISTRATIONS = [
    {"VIN": "1N4AL11D75C109151", "LicensePlateNumber": "LEWISR261LL", "State": "WA",
     "City": "Seattle", "ValidFromDate": datetime(2017, 8, 21),
     "ValidToDate": datetime(2020, 5, 11), "PendingPenaltyTicketAmount": 90.25,
     "Owners": {"PrimaryOwner": {"PersonId": ""}, "SecondaryOwners": []}},
    {"VIN": "KM8SRDHF6EU074761", "LicensePlateNumber": "CA762X", "State": "WA",
     "City": "Kent", "ValidFromDate": datetime(2017, 9, 14),
     "ValidToDate": datetime(2020, 6, 25), "PendingPenaltyTicketAmount": 130.75,
     "Owners": {"PrimaryOwner": {"PersonId": ""}, "SecondaryOwners": []}},
]  # fmt: skip


def _rows(driver: Any, statement: str, *params: Any) -> list[Any]:
    return driver.execute_lambda(lambda tx: list(tx.execute_statement(statement, *params)))


def _document_id(driver: Any, table: str, field: str, value: Any) -> str:
    """The sample's get_document_id."""
    [row] = _rows(driver, f"SELECT id FROM {table} AS t BY id WHERE t.{field} = ?", value)
    return str(row["id"])


def _ion(holder: dict[str, str]) -> Any:
    return simpleion.loads(holder["IonText"])


def _address(value: Any) -> dict[str, str]:
    return {"IonText": simpleion.dumps(value, binary=False)}


def test_the_dmv_tutorial_runs_every_step(
    served: Served, ledger_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL_QLDB", served.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    qldb = boto3.client("qldb", region_name=REGION)
    qldb.create_ledger(Name=ledger_name, PermissionsMode="ALLOW_ALL")
    assert qldb.describe_ledger(Name=ledger_name)["State"] == "ACTIVE"
    driver = make_driver(served.url, ledger_name)
    try:
        # create_table, create_index
        for table in TABLES:
            assert len(_rows(driver, f"CREATE TABLE {table}")) == 1
        for table, field in INDEXES:
            assert len(_rows(driver, f"CREATE INDEX ON {table} ({field})")) == 1
        assert sorted(driver.list_tables()) == sorted(TABLES)

        # insert_document: people first, their ids into licenses and registrations
        person_ids = [str(r["documentId"]) for r in _rows(driver, "INSERT INTO Person ?", PEOPLE)]
        assert len(person_ids) == 3
        licenses = [dict(x, PersonId=pid) for x, pid in zip(LICENSES, person_ids, strict=True)]
        registrations = [
            dict(x, Owners={"PrimaryOwner": {"PersonId": pid}, "SecondaryOwners": []})
            for x, pid in zip(REGISTRATIONS, person_ids, strict=False)
        ]
        assert len(_rows(driver, "INSERT INTO DriversLicense ?", licenses)) == 3
        assert len(_rows(driver, "INSERT INTO Vehicle ?", VEHICLES)) == 2
        assert len(_rows(driver, "INSERT INTO VehicleRegistration ?", registrations)) == 2

        # scan_table
        people = _rows(driver, "SELECT * FROM Person")
        assert sorted(p["GovId"] for p in people) == sorted(p["GovId"] for p in PEOPLE)
        assert len(_rows(driver, "SELECT * FROM Vehicle")) == 2
        assert len(_rows(driver, "SELECT * FROM DriversLicense")) == 3

        # add_secondary_owner
        vin = VEHICLES[0]["VIN"]
        secondary = _document_id(driver, "Person", "GovId", PEOPLE[2]["GovId"])
        [owners] = _rows(
            driver, "SELECT Owners.SecondaryOwners FROM VehicleRegistration AS v WHERE v.VIN = ?",
            vin,
        )  # fmt: skip
        assert list(owners["SecondaryOwners"]) == []
        _rows(
            driver,
            "FROM VehicleRegistration AS v WHERE v.VIN = ? INSERT INTO v.Owners.SecondaryOwners "
            "VALUE ?",
            vin, {"PersonId": secondary},
        )  # fmt: skip
        [owners] = _rows(
            driver, "SELECT Owners.SecondaryOwners FROM VehicleRegistration AS v WHERE v.VIN = ?",
            vin,
        )  # fmt: skip
        assert [str(o["PersonId"]) for o in owners["SecondaryOwners"]] == [secondary]

        # find_vehicles: the vehicles a person owns, by the sample's join
        found = _rows(
            driver,
            "SELECT Vehicle FROM Vehicle INNER JOIN VehicleRegistration AS r "
            "ON Vehicle.VIN = r.VIN WHERE r.Owners.PrimaryOwner.PersonId = ?",
            person_ids[0],
        )
        assert [row["Vehicle"]["VIN"] for row in found] == [vin]
        assert dict(found[0]["Vehicle"]) == dict(VEHICLES[0])

        # register_drivers_license: a new person and a license for them
        new_person = {"FirstName": "Kate", "LastName": "Mulberry", "DOB": datetime(1995, 2, 9),
                      "GovId": "AQQ17B2342", "GovIdType": "Passport",
                      "Address": "22 Commercial Drive, Blaine, WA, 97722"}  # fmt: skip
        [r] = _rows(driver, "INSERT INTO Person ?", new_person)
        kate = str(r["documentId"])
        assert _rows(driver, "SELECT * FROM DriversLicense AS d WHERE d.PersonId = ?", kate) == []
        new_license = {"PersonId": kate, "LicenseNumber": "112 360 PXJ", "LicenseType": "Full",
                       "ValidFromDate": datetime(2018, 6, 30),
                       "ValidToDate": datetime(2022, 10, 30)}  # fmt: skip
        assert len(_rows(driver, "INSERT INTO DriversLicense ?", new_license)) == 1
        [got] = _rows(driver, "SELECT * FROM DriversLicense AS d WHERE d.PersonId = ?", kate)
        assert got["LicenseNumber"] == "112 360 PXJ"

        # renew_drivers_license
        [row] = _rows(
            driver, "SELECT r.PersonId FROM DriversLicense AS r WHERE LicenseNumber = ?",
            "112 360 PXJ",
        )  # fmt: skip
        assert str(row["PersonId"]) == kate
        renewed = _rows(
            driver,
            "UPDATE DriversLicense AS d SET d.ValidFromDate = ?, d.ValidToDate = ? "
            "WHERE d.PersonId = ?",
            datetime(2019, 1, 1), datetime(2024, 1, 1), kate,
        )  # fmt: skip
        assert len(renewed) == 1
        [person] = _rows(driver, "SELECT p.* FROM Person AS p BY pid WHERE pid = ?", kate)
        assert person["GovId"] == "AQQ17B2342"
        [got] = _rows(driver, "SELECT * FROM DriversLicense AS d WHERE d.PersonId = ?", kate)
        assert got["ValidToDate"].year == 2024

        # deregister_drivers_license
        assert len(_rows(driver, "DELETE FROM DriversLicense AS d WHERE d.LicenseNumber = ?",
                         "112 360 PXJ")) == 1  # fmt: skip
        assert _rows(driver, "SELECT * FROM DriversLicense AS d WHERE d.PersonId = ?", kate) == []

        # transfer_vehicle_ownership: the primary owner of the first vehicle becomes Brent
        [owner] = _rows(
            driver,
            "SELECT Owners.PrimaryOwner.PersonId FROM VehicleRegistration AS v WHERE v.VIN = ?",
            vin,
        )
        assert str(owner["PersonId"]) == person_ids[0]
        new_owner = _document_id(driver, "Person", "GovId", PEOPLE[1]["GovId"])
        [previous] = _rows(
            driver, "SELECT p.* FROM Person AS p BY pid WHERE pid = ?", person_ids[0]
        )
        assert previous["GovId"] == PEOPLE[0]["GovId"]
        moved = _rows(
            driver,
            "UPDATE VehicleRegistration AS r SET r.Owners.PrimaryOwner.PersonId = ? "
            "WHERE r.VIN = ?",
            new_owner, vin,
        )  # fmt: skip
        assert len(moved) == 1
        [owner] = _rows(
            driver,
            "SELECT Owners.PrimaryOwner.PersonId FROM VehicleRegistration AS v WHERE v.VIN = ?",
            vin,
        )
        assert str(owner["PersonId"]) == new_owner

        # query_history: the registration's revisions, oldest first
        reg_id = _document_id(driver, "VehicleRegistration", "VIN", vin)
        history = _rows(
            driver, "SELECT * FROM history(VehicleRegistration) AS h WHERE h.metadata.id = ?",
            reg_id,
        )  # fmt: skip
        assert [h["metadata"]["version"] for h in history] == [0, 1, 2]
        assert [str(h["data"]["Owners"]["PrimaryOwner"]["PersonId"]) for h in history] == [
            person_ids[0], person_ids[0], new_owner
        ]  # fmt: skip

        # redact_revision: the revision naming the previous primary owner with no secondary one
        [table_row] = _rows(
            driver, "SELECT tableId FROM information_schema.user_tables WHERE name = ?",
            "VehicleRegistration",
        )  # fmt: skip
        table_id = str(table_row["tableId"])
        target = history[0]
        [redacted] = _rows(
            driver, "EXEC redact_revision ?, ?, ?", target["blockAddress"], table_id, reg_id
        )
        assert str(redacted["documentId"]) == reg_id and redacted["version"] == 0
        assert str(redacted["tableId"]) == table_id
        after = _rows(
            driver, "SELECT * FROM history(VehicleRegistration) AS h WHERE h.metadata.id = ?",
            reg_id,
        )  # fmt: skip
        assert "data" not in after[0] and "dataHash" in after[0]
        assert bytes(after[0]["hash"]) == bytes(target["hash"])
        assert [dict(h) for h in after[1:]] == [dict(h) for h in history[1:]]

        # get_digest, get_block, get_revision and verify them (the tutorial's verifier)
        digest_result = qldb.get_digest(Name=ledger_name)
        digest, tip = digest_result["Digest"], digest_result["DigestTipAddress"]
        for revision_row in after:
            address = _address(revision_row["blockAddress"])
            got_rev = qldb.get_revision(
                Name=ledger_name, BlockAddress=address, DocumentId=reg_id, DigestTipAddress=tip
            )
            revision = _ion(got_rev["Revision"])
            assert bytes(revision["hash"]) == bytes(revision_row["hash"])
            assert ("dataHash" in revision) == ("dataHash" in revision_row)
            assert verify(
                bytes(revision["hash"]), digest, [bytes(h) for h in _ion(got_rev["Proof"])]
            )
            got_block = qldb.get_block(Name=ledger_name, BlockAddress=address, DigestTipAddress=tip)
            block = _ion(got_block["Block"])
            proof = [bytes(h) for h in _ion(got_block["Proof"])]
            assert verify(bytes(block["blockHash"]), digest, proof)
            # A changed revision no longer verifies against the digest.
            assert not verify(
                bytes(revision["hash"])[::-1], digest, [bytes(h) for h in _ion(got_rev["Proof"])]
            )
    finally:
        driver.close()
