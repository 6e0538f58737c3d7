"""Issue 14: the cyclic garbage collector is tuned while a settle cycle runs
(``settler.collector``). What that must not lose: garbage in reference cycles made during a
cycle is still collected while the cycle runs (memory stays bounded by the work, not the
backlog), the process's settings come back after the cycle whatever way it ends, and a process
that froze objects itself keeps them frozen."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from settler_blocks import Chain, Rev, put

from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from settler import collector
from settler.collector import YOUNG_THRESHOLD, collector_tuned
from settler.cycle import SettlePolicy, settle

NOW = datetime(2100, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _collector_as_found() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*thresholds)
    if not enabled:
        gc.disable()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_cyclic_garbage_made_during_a_tuned_cycle_is_collected_meanwhile() -> None:
    with collector_tuned():
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        first = _Node()
        gone = weakref.ref(first)
        del first
        # No explicit collect: the allocations of a busy cycle trigger the collector.
        for _ in range(20 * YOUNG_THRESHOLD):
            _Node()
        assert gone() is None
        assert gc.get_count()[0] <= YOUNG_THRESHOLD


def test_the_heap_from_before_is_frozen_during_the_cycle_and_unfrozen_after() -> None:
    assert gc.get_freeze_count() == 0
    before = _Node()
    with collector_tuned():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == (700, 10, 10)
    gone = weakref.ref(before)
    del before
    gc.collect()
    assert gone() is None  # collectable again once the cycle ended


def test_objects_someone_else_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with collector_tuned():
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_nested_and_concurrent_cycles_restore_the_settings_once_the_last_leaves() -> None:
    entered, leave = threading.Event(), threading.Event()

    def other() -> None:
        with collector_tuned():
            entered.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    with collector_tuned():
        t.start()
        assert entered.wait(5)
    # The first left; the other still runs: still tuned.
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    leave.set()
    t.join(5)
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    assert collector._tuning.depth == 0


def test_settle_tunes_the_collector_and_restores_it_even_when_the_cycle_fails(
    tmp_path: Path,
) -> None:
    chain = Chain()
    create = chain.block(["CREATE TABLE Person"])
    insert = chain.block(
        [("INSERT INTO Person ?", [{"n": 1}])], [Rev("Person", "D" * 22, 0, {"n": 1})]
    )
    buffer = SqliteBuffer(tmp_path / "b.db")
    put(buffer, create, insert)
    dest = EmbeddedDestination(tmp_path / "r.db")
    seen: list[tuple[int, int]] = []

    def fault(step: str) -> None:
        seen.append((gc.get_threshold()[0], gc.get_freeze_count()))
        if step == "applied":
            raise RuntimeError("crash after the destination committed")

    try:
        with pytest.raises(RuntimeError):
            settle(buffer, dest, now=NOW, policy=SettlePolicy(window_seconds=120), faults=fault)
        assert seen and all(t == YOUNG_THRESHOLD and f > 0 for t, f in seen)
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0
        report = settle(buffer, dest, now=NOW, policy=SettlePolicy(window_seconds=120))
        assert report.blocks == 0 and report.repaired == 2 and not report.halted
    finally:
        dest.close()
        buffer.close()
