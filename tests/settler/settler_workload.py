"""Random workloads with overlapping transactions, run against a source ``EmbeddedLedger``.

A schedule interleaves the steps of several open transactions (begin, execute a statement,
commit) the way concurrent clients would; a transaction whose reads a later commit changed fails
with ``OccConflict`` and is dropped, as QLDB drops it. Statements mix literal text (replayed as
statements) and parameters (replayed from revisions), inserts, updates and deletes on a small key
space so that transactions touch the same documents, with values of several Ion types.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from journal.canonical import fingerprint

START = datetime(2024, 3, 1, 9, 0, 0, tzinfo=UTC)
TABLE = "Item"


class Clock:
    """A ledger clock that moves 3 ms on each reading (commit and statement times)."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=3)
        return self.now


@dataclass(frozen=True)
class Step:
    """One step of a schedule: ``op`` on transaction slot ``slot``."""

    op: str  # "begin" | "insert" | "update" | "delete" | "select" | "commit"
    slot: int
    key: int = 0
    value: int = 0
    literal: bool = True


def _value(n: int) -> Any:
    """Values of several Ion types (decimal, timestamp, nested, string, int)."""
    kinds = [
        n,
        Decimal(n) / 4,
        f"v{n}",
        {"nested": [n, {"deep": Decimal("1.10")}]},
    ]
    return kinds[n % len(kinds)]


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return f"`{value}`" if "." in str(value) else f"`{value}.`"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, dict):
        return "{" + ", ".join(f"'{k}': {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    raise TypeError(type(value).__name__)


def statement(step: Step) -> tuple[str, tuple[Any, ...]]:
    """The PartiQL text (and parameters) of one data step."""
    v = _value(step.value)
    doc = {"k": step.key, "v": v}
    if step.op == "insert":
        if step.literal:
            return f"INSERT INTO {TABLE} << {_literal(doc)} >>", ()
        return f"INSERT INTO {TABLE} ?", (doc,)
    if step.op == "update":
        if step.literal:
            return f"UPDATE {TABLE} AS i SET i.v = {_literal(v)} WHERE i.k = {step.key}", ()
        return f"UPDATE {TABLE} AS i SET i.v = ? WHERE i.k = ?", (v, step.key)
    if step.op == "delete":
        if step.literal:
            return f"DELETE FROM {TABLE} AS i WHERE i.k = {step.key}", ()
        return f"DELETE FROM {TABLE} AS i WHERE i.k = ?", (step.key,)
    if step.op == "select":
        return f"SELECT * FROM {TABLE} AS i WHERE i.k = {step.key}", ()
    raise ValueError(step.op)


# Weighted: more writes and commits than begins and reads.
OPS = ("begin", "insert", "insert", "update", "update", "delete", "select", "commit", "commit")


@st.composite
def schedules(draw: st.DrawFn, max_steps: int = 40) -> list[Step]:
    """Interleaved steps of up to 4 concurrent transactions."""
    n = draw(st.integers(min_value=6, max_value=max_steps))
    steps = []
    for _ in range(n):
        slot = draw(st.integers(min_value=0, max_value=3))
        op = draw(st.sampled_from(OPS))
        steps.append(
            Step(
                op=op,
                slot=slot,
                key=draw(st.integers(min_value=0, max_value=3)),
                value=draw(st.integers(min_value=0, max_value=50)),
                literal=draw(st.booleans()),
            )
        )
    return steps


def run_schedule(ledger: Any, steps: list[Step]) -> list[Any]:
    """Run the schedule against ``ledger`` (an ``EmbeddedLedger`` whose table exists); returns
    the committed blocks. Open transactions at the end are committed in slot order."""
    from ledger import OccConflict

    open_: dict[int, Any] = {}
    blocks = []

    def commit(slot: int) -> None:
        tx = open_.pop(slot)
        with contextlib.suppress(OccConflict):  # QLDB drops it likewise
            blocks.append(tx.commit())

    for step in steps:
        if step.op == "begin":
            if step.slot in open_:
                commit(step.slot)
            open_[step.slot] = ledger.begin()
        elif step.op == "commit":
            if step.slot in open_:
                commit(step.slot)
        else:
            tx = open_.get(step.slot)
            if tx is None:
                tx = open_[step.slot] = ledger.begin()
            text, params = statement(step)
            tx.execute(text, *params)
    for slot in sorted(open_):
        commit(slot)
    return blocks


def source_documents(ledger: Any) -> list[tuple[str, str]]:
    """The ledger's current documents as sorted (table, fingerprint of the data): equal lists
    mean equal documents, field for field, Ion types included."""
    return sorted((table, fingerprint(data)) for table, _, data in ledger.documents())


def stream(ledger: Any) -> Iterator[Any]:
    """Every stream record of every block, in commit order."""
    arn = ledger.stream_arn()
    for block in ledger.blocks():
        yield from block.stream_records(arn)


def new_source(path: Path, clock: Clock) -> Any:
    from ledger import EmbeddedLedger

    led = EmbeddedLedger(path, ledger_name="source", clock=clock, id_seed="source")
    led.execute(f"CREATE TABLE {TABLE}")
    led.execute(f"CREATE INDEX ON {TABLE} (k)")
    return led
