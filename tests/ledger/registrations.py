"""The two vehicle registrations QLDB's documentation queries, for the PartiQL tests."""

from __future__ import annotations

from typing import Any

# The two registrations of "Querying your data" (QLDB Developer Guide,
# https://docs.aws.amazon.com/qldb/latest/developerguide/working.userdata.html):
#   { VIN: "1N4AL11D75C109151", LicensePlateNumber: "LEWISR261LL", State: "WA", City: "Seattle",
#     ..., Owners: { PrimaryOwner: { PersonId: "294jJ3YUoH1IEEm8GSabOs" },
#     SecondaryOwners: [{ PersonId: "5Ufgdlnj06gF5CWcOIu64s" }] } },
#   { VIN: "KM8SRDHF6EU074761", LicensePlateNumber: "CA762X", State: "WA", City: "Kent", ...,
#     Owners: { PrimaryOwner: { PersonId: "IN7MvYtUjkp1GMZu0F6CG9" }, SecondaryOwners: [] } }
VIN1, VIN2 = "1N4AL11D75C109151", "KM8SRDHF6EU074761"
P1, P2, S1 = "294jJ3YUoH1IEEm8GSabOs", "IN7MvYtUjkp1GMZu0F6CG9", "5Ufgdlnj06gF5CWcOIu64s"


def insert_registrations(led: Any) -> None:
    """The page's two registrations (one secondary owner, none) in ``VehicleRegistration``."""
    led.execute("CREATE TABLE VehicleRegistration")
    led.execute("CREATE INDEX ON VehicleRegistration (VIN)")
    data = ((VIN1, "LEWISR261LL", "Seattle", P1, [S1]), (VIN2, "CA762X", "Kent", P2, []))
    for vin, plate, city, primary, secondary in data:
        led.execute(
            "INSERT INTO VehicleRegistration VALUE {'VIN': ?, 'LicensePlateNumber': ?,"
            " 'State': 'WA', 'City': ?,"
            " 'Owners': {'PrimaryOwner': {'PersonId': ?}, 'SecondaryOwners': ?}}",
            vin,
            plate,
            city,
            primary,
            [{"PersonId": p} for p in secondary],
        )
