"""A busy source ledger: concurrent, overlapping transactions on a simulated clock.

Clients run transactions the way QLDB applications do (the DMV tutorial's tables), mixing literal
statements and parameterized ones, updates by key and by predicate, nested-path changes,
deletions and read-only transactions. Transactions overlap in time: a client begins, reads, thinks,
writes and commits while others do the same, so commit order differs from start order, and the
ledger's optimistic concurrency control makes some of them fail at commit; those are retried, as
QLDB drivers do.

Everything runs in one thread on a discrete-event loop with an injected clock, so a seed
reproduces a run exactly.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from amazon.ion import simpleion
from amazon.ion.core import Timestamp, TimestampPrecision

from ledger import EmbeddedLedger, OccConflict

EPOCH = datetime(2026, 11, 1, 9, 0, 0, tzinfo=UTC)
TABLES = ("Person", "Vehicle", "VehicleRegistration")
DDL = (
    "CREATE TABLE Person",
    "CREATE TABLE Vehicle",
    "CREATE TABLE VehicleRegistration",
    "CREATE INDEX ON Person (GovId)",
    "CREATE INDEX ON Vehicle (VIN)",
    "CREATE INDEX ON VehicleRegistration (VIN)",
)
FIRST = ("Raul", "Brent", "Alexis", "Melvin", "Salli", "Nova", "Ana", "Kofi", "Mei", "Ivo")
LAST = ("Lewis", "Logan", "Pena", "Major", "Stiles", "Ito", "Diaz", "Mensah", "Chen", "Novak")
MAKES = (("Tesla", "Model S"), ("Ford", "F-150"), ("Audi", "A6"), ("Toyota", "Corolla"))


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadConfig:
    transactions: int = 400
    concurrency: int = 6
    rate_per_second: float = 8.0
    param_rate: float = 0.35
    read_only_rate: float = 0.1
    think_ms: int = 40
    max_retries: int = 4


@dataclass(slots=True)
class WorkloadStats:
    committed: int = 0
    read_only: int = 0
    occ_conflicts: int = 0
    abandoned: int = 0
    over_limit: int = 0
    statements: int = 0
    parameterized: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class SimClock:
    """The simulated wall clock the source ledger reads (milliseconds since ``EPOCH``)."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> datetime:
        return EPOCH + timedelta(milliseconds=self.ms)

    def advance_to(self, ms: int) -> None:
        self.ms = max(self.ms + 1, ms)


def literal(value: Any) -> str:
    """A PartiQL literal for a Python/Ion value (strings quoted, timestamps in backticks)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime):
        return "`" + str(simpleion.dumps(value, binary=False, omit_version_marker=True)) + "`"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"no literal for {type(value).__name__}")


def _day(year: int, month: int, day: int) -> Timestamp:
    return Timestamp(year, month, day, precision=TimestampPrecision.DAY)


def vehicle_documents(
    rng: random.Random, vin: str, make: str, model: str, owner: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Vehicle and its VehicleRegistration (the DMV tutorial's), owned by ``owner`` (a GovId);
    the rest drawn from ``rng``. Shared with the benchmarks' blocks (``bench.backlog``)."""
    vehicle = {
        "VIN": vin,
        "Type": "Sedan",
        "Year": rng.randint(2000, 2026),
        "Make": make,
        "Model": model,
        "Color": rng.choice(("Red", "Blue", "Black", "White")),
    }
    registration = {
        "VIN": vin,
        "LicensePlateNumber": f"{rng.randint(100, 999)}ABC",
        "State": "WA",
        "City": "Seattle",
        "PendingPenaltyTicketAmount": Decimal(rng.randint(0, 50_000)) / 100,
        "ValidFromDate": _day(2026, rng.randint(1, 12), rng.randint(1, 28)),
        "ValidToDate": _day(2028, rng.randint(1, 12), rng.randint(1, 28)),
        "Owners": {"PrimaryOwner": {"PersonId": owner}, "SecondaryOwners": []},
    }
    return vehicle, registration


Step = tuple[str, tuple[Any, ...]]
Plan = Callable[[Any], Iterator[Step]]


class Workload:
    """Generates transaction plans over the DMV tables, remembering what exists."""

    def __init__(self, rng: random.Random, config: WorkloadConfig) -> None:
        self.rng = rng
        self.config = config
        self.gov_ids: list[str] = []
        self.vins: list[str] = []
        self._n = 0

    def _next(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n:06d}"

    def _stmt(self, text: str, params: tuple[Any, ...], literal_text: str) -> Step:
        if params and self.rng.random() < self.config.param_rate:
            return (text, params)
        return (literal_text, ())

    def plan(self) -> tuple[str, Plan]:
        rng = self.rng
        if rng.random() < self.config.read_only_rate and self.gov_ids:
            return ("read_only", self._read_only)
        choices: list[tuple[str, Plan, int]] = [
            ("new_person", self._new_person, 5 if len(self.gov_ids) < 20 else 2),
            ("register_vehicle", self._register_vehicle, 3 if self.gov_ids else 0),
            ("update_person", self._update_person, 4 if self.gov_ids else 0),
            ("by_predicate", self._by_predicate, 1 if self.gov_ids else 0),
            ("nested", self._nested, 2 if self.gov_ids else 0),
            ("by_id", self._by_id, 1 if self.gov_ids else 0),
            ("delete_vehicle", self._delete_vehicle, 1 if len(self.vins) > 5 else 0),
        ]
        total = sum(w for _, _, w in choices)
        pick = rng.uniform(0, total)
        for name, plan, weight in choices:
            if pick < weight:
                return (name, plan)
            pick -= weight
        return ("new_person", self._new_person)

    # Each plan is a generator of (statement, params); it may read results sent back in.

    def _read_only(self, _: Any) -> Iterator[Step]:
        gov = self.rng.choice(self.gov_ids)
        yield (f"SELECT * FROM Person AS p WHERE p.GovId = {literal(gov)}", ())

    def _new_person(self, _: Any) -> Iterator[Step]:
        rng = self.rng
        gov = self._next("GOV")
        doc = {
            "FirstName": rng.choice(FIRST),
            "LastName": rng.choice(LAST),
            "DOB": _day(rng.randint(1950, 2005), rng.randint(1, 12), rng.randint(1, 28)),
            "GovId": gov,
            "GovIdType": "Driver License",
            "Address": f"{rng.randint(1, 9999)} Main Street, Seattle, WA, 98109",
            "Balance": Decimal(rng.randint(0, 100_000)) / 100,
            "Tags": [],
        }
        yield self._stmt("INSERT INTO Person ?", (doc,), f"INSERT INTO Person {literal(doc)}")
        self.gov_ids.append(gov)

    def _register_vehicle(self, _: Any) -> Iterator[Step]:
        rng = self.rng
        vin = self._next("VIN")
        make, model = rng.choice(MAKES)
        owner = rng.choice(self.gov_ids)
        found = yield (f"SELECT p.GovId FROM Person AS p WHERE p.GovId = {literal(owner)}", ())
        if not found:
            return
        vehicle, registration = vehicle_documents(rng, vin, make, model, owner)
        yield self._stmt(
            "INSERT INTO Vehicle ?", (vehicle,), f"INSERT INTO Vehicle {literal(vehicle)}"
        )
        yield self._stmt(
            "INSERT INTO VehicleRegistration ?",
            (registration,),
            f"INSERT INTO VehicleRegistration {literal(registration)}",
        )
        self.vins.append(vin)

    def _update_person(self, _: Any) -> Iterator[Step]:
        gov = self.rng.choice(self.gov_ids)
        rows = yield (f"SELECT p.Balance FROM Person AS p WHERE p.GovId = {literal(gov)}", ())
        if not rows:
            return
        amount = Decimal(self.rng.randint(-5_000, 5_000)) / 100
        balance = Decimal(str(rows[0]["Balance"])) + amount
        yield self._stmt(
            "UPDATE Person AS p SET p.Balance = ? WHERE p.GovId = ?",
            (balance, gov),
            f"UPDATE Person AS p SET p.Balance = {literal(balance)} WHERE p.GovId = {literal(gov)}",
        )

    def _by_predicate(self, _: Any) -> Iterator[Step]:
        # The overlap case of DESIGN.md rule 1: which documents match depends on commit order.
        threshold = Decimal(self.rng.randint(200, 900))
        tier = self.rng.choice(("gold", "silver"))
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        yield (
            f"UPDATE Person AS p SET p.Tier = {literal(tier)} WHERE p.Balance > {threshold} "
            f"AND p.LastName = {literal(last)} AND p.FirstName = {literal(first)}",
            (),
        )

    def _nested(self, _: Any) -> Iterator[Step]:
        gov = self.rng.choice(self.gov_ids)
        tag = self.rng.choice(("vip", "fleet", "new", "audit"))
        if self.rng.random() < 0.7:
            yield (
                f"FROM Person AS p WHERE p.GovId = {literal(gov)} "
                f"INSERT INTO p.Tags VALUE {literal(tag)}",
                (),
            )
        else:
            yield (f"UPDATE Person AS p REMOVE p.Tier WHERE p.GovId = {literal(gov)}", ())

    def _by_id(self, _: Any) -> Iterator[Step]:
        gov = self.rng.choice(self.gov_ids)
        rows = yield (
            f"SELECT pid FROM Person AS p BY pid WHERE p.GovId = {literal(gov)}",
            (),
        )
        if not rows:
            return
        pid = rows[0]["pid"]
        yield (
            "UPDATE Person AS p BY pid SET p.Address = ? WHERE pid = ?",
            (f"{self.rng.randint(1, 9999)} Pine Street, Seattle, WA, 98101", pid),
        )

    def _delete_vehicle(self, _: Any) -> Iterator[Step]:
        vin = self.vins.pop(self.rng.randrange(len(self.vins)))
        yield self._stmt(
            "DELETE FROM Vehicle AS v WHERE v.VIN = ?",
            (vin,),
            f"DELETE FROM Vehicle AS v WHERE v.VIN = {literal(vin)}",
        )


@dataclass(slots=True)
class _Client:
    name: str
    kind: str = ""
    plan: Plan | None = None
    steps: Any = None
    tx: Any = None
    retries: int = 0
    last_result: Any = None
    started: int = 0


def run_workload(
    ledger: EmbeddedLedger, clock: SimClock, config: WorkloadConfig, rng: random.Random
) -> WorkloadStats:
    """Run ``config.transactions`` transactions (committed or abandoned) against ``ledger``."""
    stats = WorkloadStats()
    for ddl in DDL:
        clock.advance_to(clock.ms + 5)
        ledger.execute(ddl)
    workload = Workload(rng, config)
    queue: list[tuple[int, int, _Client]] = []
    mean_gap = 1000.0 * config.concurrency / max(config.rate_per_second, 0.001)
    for i in range(config.concurrency):
        heapq.heappush(queue, (clock.ms + int(rng.expovariate(1 / mean_gap)), i, _Client(f"c{i}")))
    started = 0
    finished = 0
    seq = config.concurrency
    while queue:
        at, _, client = heapq.heappop(queue)
        clock.advance_to(at)
        if client.tx is None:
            if started >= config.transactions:
                continue
            started += 1
            client.kind, client.plan = workload.plan()
            client.retries = 0
            _begin(ledger, client)
        try:
            step = client.steps.send(client.last_result)
            text, params = step
            client.last_result = client.tx.execute(text, *params)
            stats.statements += 1
            stats.parameterized += bool(params)
            delay = rng.randint(1, config.think_ms)
        except StopIteration:
            try:
                block = client.tx.commit()
            except OccConflict:
                stats.occ_conflicts += 1
                client.retries += 1
                if client.retries > config.max_retries:
                    stats.abandoned += 1
                    finished += 1
                    client.tx = None
                else:
                    _begin(ledger, client)  # retry the same kind of work afresh
                delay = rng.randint(1, config.think_ms)
            else:
                stats.committed += 1
                stats.by_kind[client.kind] = stats.by_kind.get(client.kind, 0) + 1
                if client.kind == "read_only":
                    stats.read_only += 1
                finished += 1
                client.tx = None
                del block
                delay = int(rng.expovariate(1 / mean_gap))
        seq += 1
        heapq.heappush(queue, (clock.ms + max(1, delay), seq, client))
    return stats


def _begin(ledger: EmbeddedLedger, client: _Client) -> None:
    client.tx = ledger.begin()
    assert client.plan is not None
    client.steps = client.plan(None)
    client.last_result = None
