"""Fixtures of the embedded-ledger tests: a ledger file in a tmp dir with an injected clock."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the parser tests also run in the ingest environment, without the engine
    from ledger import EmbeddedLedger

# The small ingest environment has no ionhash (amazon.ion 0.15): the journal tests check against
# it, so they are not collected there.
if importlib.util.find_spec("ionhash") is None:
    collect_ignore = ["test_ledger_journal.py"]

T0 = datetime(2024, 5, 1, 9, 30, 0, tzinfo=UTC)


class StepClock:
    """A clock that moves 5 ms forward each time it is read (time is injected, never read)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=5)
        return self.now


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def led(tmp_path: Path, clock: StepClock) -> Iterator[EmbeddedLedger]:
    from ledger import EmbeddedLedger

    ledger = EmbeddedLedger(tmp_path / "ledger.db", clock=clock, id_seed=7, ledger_name="test")
    try:
        yield ledger
    finally:
        ledger.close()


@pytest.fixture
def regs(led: EmbeddedLedger) -> EmbeddedLedger:
    """The two registrations of QLDB's "Querying your data" in ``VehicleRegistration``."""
    from registrations import insert_registrations

    insert_registrations(led)
    return led
