"""The DMV tutorial of the QLDB developer guide ("Getting started": vehicle-registration), its
sample data inserted as literal statements, then the guide's updates, deletes and FROM statements
and reads back as the guide describes.

Sources (looked up, not invented): the sample data of the guide's tutorial
(aws-samples/amazon-qldb-dmv-sample-python ``pyqldbsamples/model/sample_data.py``, MIT-0: 5
people, 5 driver's licenses, 5 vehicles, 5 registrations; dates written as day-precision Ion
timestamps as the console tutorial does); the tables and indexes of its "Create tables, indexes,
and sample data" step; the tutorial's ownership transfer (``UPDATE VehicleRegistration AS r SET
r.Owners.PrimaryOwner.PersonId = ? WHERE r.VIN = ?``) and secondary owner (``FROM
VehicleRegistration AS v WHERE v.VIN = '...' INSERT INTO v.Owners.SecondaryOwners VALUE ?``)
statements, run here with literals; the DELETE reference example (``DELETE FROM
VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'``); and the "Updating and deleting
documents" / "Querying revision history" walk-through (insert, ``SELECT r_id ... BY r_id``,
``UPDATE ... SET r.City = 'Bellevue'``, delete, ``history()``). Joins are outside the subset.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from amazon.ion.core import TimestampPrecision

from ledger import EmbeddedLedger

TABLES = ("VehicleRegistration", "Vehicle", "Person", "DriversLicense")
INDEXES = (
    ("VehicleRegistration", "VIN"),
    ("VehicleRegistration", "LicensePlateNumber"),
    ("Vehicle", "VIN"),
    ("Person", "GovId"),
    ("DriversLicense", "LicenseNumber"),
    ("DriversLicense", "PersonId"),
)
PEOPLE = """INSERT INTO Person <<
{'FirstName' : 'Raul', 'LastName' : 'Lewis', 'DOB' : `1963-08-19T`,
 'GovId' : 'LEWISR261LL', 'GovIdType' : 'Driver License',
 'Address' : '1719 University Street, Seattle, WA, 98109'},
{'FirstName' : 'Brent', 'LastName' : 'Logan', 'DOB' : `1967-07-03T`,
 'GovId' : 'LOGANB486CG', 'GovIdType' : 'Driver License',
 'Address' : '43 Stockert Hollow Road, Everett, WA, 98203'},
{'FirstName' : 'Alexis', 'LastName' : 'Pena', 'DOB' : `1974-02-10T`,
 'GovId' : '744 849 301', 'GovIdType' : 'SSN',
 'Address' : '4058 Melrose Street, Spokane Valley, WA, 99206'},
{'FirstName' : 'Melvin', 'LastName' : 'Parker', 'DOB' : `1976-05-22T`,
 'GovId' : 'P626-168-229-765', 'GovIdType' : 'Passport',
 'Address' : '4362 Ryder Avenue, Seattle, WA, 98101'},
{'FirstName' : 'Salvatore', 'LastName' : 'Spencer', 'DOB' : `1997-11-15T`,
 'GovId' : 'S152-780-97-415-0', 'GovIdType' : 'Passport',
 'Address' : '4450 Honeysuckle Lane, Seattle, WA, 98101'}
>>"""
VEHICLES = """INSERT INTO Vehicle <<
{'VIN' : '1N4AL11D75C109151', 'Type' : 'Sedan', 'Year' : 2011, 'Make' : 'Audi',
 'Model' : 'A5', 'Color' : 'Silver'},
{'VIN' : 'KM8SRDHF6EU074761', 'Type' : 'Sedan', 'Year' : 2015, 'Make' : 'Tesla',
 'Model' : 'Model S', 'Color' : 'Blue'},
{'VIN' : '3HGGK5G53FM761765', 'Type' : 'Motorcycle', 'Year' : 2011, 'Make' : 'Ducati',
 'Model' : 'Monster 1200', 'Color' : 'Yellow'},
{'VIN' : '1HVBBAANXWH544237', 'Type' : 'Semi', 'Year' : 2009, 'Make' : 'Ford',
 'Model' : 'F 150', 'Color' : 'Black'},
{'VIN' : '1C4RJFAG0FC625797', 'Type' : 'Sedan', 'Year' : 2019, 'Make' : 'Mercedes',
 'Model' : 'CLK 350', 'Color' : 'White'}
>>"""
# (LicenseNumber = owner's GovId, LicenseType, ValidFromDate, ValidToDate)
LICENSES = (
    ("LEWISR261LL", "Learner", "2016-12-20T", "2020-11-15T"),
    ("LOGANB486CG", "Probationary", "2016-04-06T", "2020-11-15T"),
    ("744 849 301", "Full", "2017-12-06T", "2022-10-15T"),
    ("P626-168-229-765", "Learner", "2017-08-16T", "2021-11-15T"),
    ("S152-780-97-415-0", "Probationary", "2015-08-15T", "2021-08-21T"),
)
# (VIN, LicensePlateNumber, City, PendingPenaltyTicketAmount, ValidFromDate, ValidToDate, owner)
REGISTRATIONS = (
    ("1N4AL11D75C109151", "LEWISR261LL", "Seattle", "90.25", "2017-08-21T", "2020-05-11T",
     "LEWISR261LL"),
    ("KM8SRDHF6EU074761", "CA762X", "Kent", "130.75", "2017-09-14T", "2020-06-25T",
     "LOGANB486CG"),
    ("3HGGK5G53FM761765", "CD820Z", "Everett", "442.30", "2011-03-17T", "2021-03-24T",
     "744 849 301"),
    ("1HVBBAANXWH544237", "LS477D", "Tacoma", "42.20", "2011-10-26T", "2023-09-25T",
     "P626-168-229-765"),
    ("1C4RJFAG0FC625797", "TH393F", "Olympia", "30.45", "2013-09-02T", "2024-03-19T",
     "S152-780-97-415-0"),
)  # fmt: skip


def person_id(led: EmbeddedLedger, gov_id: str) -> str:
    rows = led.execute(f"SELECT id FROM Person AS t BY id WHERE t.GovId = '{gov_id}'")
    assert len(rows) == 1
    return str(rows[0]["id"])


@pytest.fixture
def dmv(led: EmbeddedLedger) -> EmbeddedLedger:
    tx = led.begin()  # the console's automatic option runs everything in one transaction
    for t in TABLES:
        tx.execute(f"CREATE TABLE {t}")
    for t, f in INDEXES:
        tx.execute(f"CREATE INDEX ON {t} ({f})")
    tx.commit()
    assert len(led.execute(PEOPLE)) == 5
    assert len(led.execute(VEHICLES)) == 5
    licenses = ",\n".join(
        f"{{'PersonId' : '{person_id(led, gov)}', 'LicenseNumber' : '{gov}', "
        f"'LicenseType' : '{kind}', 'ValidFromDate' : `{start}`, 'ValidToDate' : `{end}`}}"
        for gov, kind, start, end in LICENSES
    )
    assert len(led.execute(f"INSERT INTO DriversLicense << {licenses} >>")) == 5
    registrations = ",\n".join(
        f"{{'VIN' : '{vin}', 'LicensePlateNumber' : '{plate}', 'State' : 'WA', "
        f"'City' : '{city}', 'PendingPenaltyTicketAmount' : {amount}, "
        f"'ValidFromDate' : `{start}`, 'ValidToDate' : `{end}`, 'Owners' : {{ "
        f"'PrimaryOwner' : {{ 'PersonId' : '{person_id(led, owner)}' }}, "
        f"'SecondaryOwners' : [] }} }}"
        for vin, plate, city, amount, start, end, owner in REGISTRATIONS
    )
    assert len(led.execute(f"INSERT INTO VehicleRegistration << {registrations} >>")) == 5
    return led


def registration(led: EmbeddedLedger, vin: str) -> Any:
    rows = led.execute(f"SELECT * FROM VehicleRegistration AS r WHERE r.VIN = '{vin}'")
    assert len(rows) == 1
    return rows[0]


def test_sample_data_reads_back(dmv: EmbeddedLedger) -> None:
    assert sorted(t for t, _, _ in {(t, i, s) for t, i, s in dmv.tables()}) == sorted(TABLES)
    for table, fld in INDEXES:
        assert fld in dict(dmv.indexes(table))
    counts = {t: len(dmv.execute(f"SELECT * FROM {t}")) for t in TABLES}
    assert counts == dict.fromkeys(TABLES, 5)
    raul = dmv.execute("SELECT * FROM Person AS p WHERE p.GovId = 'LEWISR261LL'")[0]
    assert raul["FirstName"] == "Raul" and raul["DOB"].precision is TimestampPrecision.DAY
    assert (raul["DOB"].year, raul["DOB"].month, raul["DOB"].day) == (1963, 8, 19)
    reg = registration(dmv, "3HGGK5G53FM761765")
    assert reg["PendingPenaltyTicketAmount"] == Decimal("442.30")
    assert str(reg["PendingPenaltyTicketAmount"]) == "442.30"
    assert reg["Owners"]["PrimaryOwner"]["PersonId"] == person_id(dmv, "744 849 301")
    assert dmv.execute(
        "SELECT v.Make, v.Model FROM Vehicle AS v WHERE v.VIN = '1N4AL11D75C109151'"
    ) == [{"Make": "Audi", "Model": "A5"}]
    # the license of each person is found by the PersonId index
    pid = person_id(dmv, "P626-168-229-765")
    lic = dmv.execute(f"SELECT * FROM DriversLicense AS d WHERE d.PersonId = '{pid}'")
    assert [d["LicenseNumber"] for d in lic] == ["P626-168-229-765"]
    meta = dmv.execute(
        "SELECT r.metadata.version AS v FROM _ql_committed_VehicleRegistration AS r "
        "WHERE r.data.VIN = '1HVBBAANXWH544237'"
    )
    assert meta == [{"v": 0}]


def test_transfer_ownership_and_add_a_secondary_owner(dmv: EmbeddedLedger) -> None:
    new_owner = person_id(dmv, "P626-168-229-765")
    changed = dmv.execute(
        f"UPDATE VehicleRegistration AS r SET r.Owners.PrimaryOwner.PersonId = '{new_owner}' "
        "WHERE r.VIN = '1N4AL11D75C109151'"
    )
    assert len(changed) == 1
    secondary = person_id(dmv, "S152-780-97-415-0")
    dmv.execute(
        "FROM VehicleRegistration AS v WHERE v.VIN = 'KM8SRDHF6EU074761' "
        f"INSERT INTO v.Owners.SecondaryOwners VALUE {{ 'PersonId' : '{secondary}' }}"
    )
    assert registration(dmv, "1N4AL11D75C109151")["Owners"]["PrimaryOwner"] == {
        "PersonId": new_owner
    }
    assert registration(dmv, "KM8SRDHF6EU074761")["Owners"]["SecondaryOwners"] == [
        {"PersonId": secondary}
    ]
    # the ownership change is a new revision of the same document
    rows = dmv.execute(
        "SELECT r.metadata.version AS v, r.data.Owners.PrimaryOwner.PersonId AS p "
        "FROM _ql_committed_VehicleRegistration AS r WHERE r.data.VIN = '1N4AL11D75C109151'"
    )
    assert rows == [{"v": 1, "p": new_owner}]


def test_delete_reference_example_then_the_revision_walk_through(dmv: EmbeddedLedger) -> None:
    assert (
        len(dmv.execute("DELETE FROM VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'"))
        == 1
    )
    assert (
        dmv.execute("SELECT * FROM VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'")
        == []
    )
    inserted = dmv.execute(
        "INSERT INTO VehicleRegistration { 'VIN' : '1HVBBAANXWH544237', "
        "'LicensePlateNumber' : 'LS477D', 'State' : 'WA', 'City' : 'Tacoma', "
        "'PendingPenaltyTicketAmount' : 42.20, 'ValidFromDate' : `2011-10-26T`, "
        "'ValidToDate' : `2023-09-25T`, 'Owners' : { 'PrimaryOwner' : "
        "{ 'PersonId': 'KmA3XPKKFqYCP2zhR3d0Ho' }, 'SecondaryOwners' : [] } }"
    )
    doc_id = inserted[0]["documentId"]
    found = dmv.execute(
        "SELECT r_id FROM VehicleRegistration AS r BY r_id WHERE r.VIN = '1HVBBAANXWH544237'"
    )
    assert found == [{"r_id": doc_id}]
    dmv.execute(
        "UPDATE VehicleRegistration AS r SET r.City = 'Bellevue' WHERE r.VIN = '1HVBBAANXWH544237'"
    )
    assert registration(dmv, "1HVBBAANXWH544237")["City"] == "Bellevue"
    dmv.execute("DELETE FROM VehicleRegistration AS r WHERE r.VIN = '1HVBBAANXWH544237'")
    history = dmv.execute(
        f"SELECT * FROM history(VehicleRegistration) AS h WHERE h.metadata.id = '{doc_id}'"
    )
    assert [h["metadata"]["version"] for h in history] == [0, 1, 2]
    assert [h["data"]["City"] for h in history[:2]] == ["Tacoma", "Bellevue"]
    assert "data" not in history[2]  # the deletion revision carries no data
    assert history[0]["metadata"]["txTime"] < history[2]["metadata"]["txTime"]


def test_update_and_from_forms_of_the_reference(dmv: EmbeddedLedger) -> None:
    gov = "LEWISR261LL"
    dmv.execute(f"UPDATE Person AS p SET p.LicenseNumber = 'HOLLOR123ZZ' WHERE p.GovId = '{gov}'")
    dmv.execute(f"UPDATE Person AS p INSERT INTO p VALUE 'Bob' AT 'Nick' WHERE p.GovId = '{gov}'")
    dmv.execute(f"UPDATE Person AS p REMOVE p.Address WHERE p.GovId = '{gov}'")
    dmv.execute(f"FROM Person AS p WHERE p.GovId = '{gov}' SET p.GovIdType = 'Passport'")
    dmv.execute(f"FROM Person AS p WHERE p.GovId = '{gov}' INSERT INTO p VALUE [] AT 'Alias'")
    dmv.execute(f"FROM Person AS p WHERE p.GovId = '{gov}' INSERT INTO p.Alias VALUE 'R.L.'")
    dmv.execute(f"FROM Person AS p WHERE p.GovId = '{gov}' REMOVE p.Nick")
    p = dmv.execute(f"SELECT * FROM Person AS p WHERE p.GovId = '{gov}'")[0]
    assert p["LicenseNumber"] == "HOLLOR123ZZ" and "Address" not in p and "Nick" not in p
    assert p["GovIdType"] == "Passport" and p["Alias"] == ["R.L."]
    # REMOVE of the whole document is a delete
    dmv.execute("UPDATE Person AS p REMOVE p WHERE p.GovId = 'LOGANB486CG'")
    dmv.execute("FROM Person AS p WHERE p.GovId = '744 849 301' REMOVE p")
    assert len(dmv.execute("SELECT * FROM Person")) == 3
