"""Exactly once through pyqldb (DESIGN.md rule 4): a simulated source ledger's stream is ingested
into a real SQLite buffer and settled into ``serve-qldb`` through ``QldbDestination``; the answer
to a commit is lost again and again (a proxy forwards the commit, then drops the connection, and
the driver is given no retries, so the settler dies between commit and answer), and the settler
also dies right after a commit by its own fault hook. Run again each time, the replica ends equal
to the source and no block was ever applied twice."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from amazon.ion.simple_types import IonPyNull

from buffer.sqlite import SqliteBuffer
from destination.port import ApplyReport, BlockReplay, Checkpoint
from destination.qldb import CHECKPOINT_TABLE, QldbDestination
from ingest.decode import decode_event
from ingest.service import ingest_items
from qldb_settle.simulate import SimulationConfig, simulate
from runtime.errors import TransientError
from settler.compare import compare, documents_of_ledger
from settler.cycle import SettlePolicy, settle

from .conftest import Served
from .qldb_proxy import LossyProxy

FAR = datetime(2100, 1, 1, tzinfo=UTC)


class Died(Exception):
    """The settler process dies here."""


class Recording:
    """A destination that notes which applies found their own lost commit already applied."""

    def __init__(self, inner: QldbDestination, recovered: list[str]) -> None:
        self.inner = inner
        self.limits = inner.limits
        self.recovered = recovered

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        return self.inner.checkpoint(ledger, strand_id)

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        report = self.inner.apply(blocks, expected)
        if any("answer was lost" in d for d in report.details):
            self.recovered.append(blocks[-1].block_id)
        return report

    def close(self) -> None:
        self.inner.close()


def test_killed_between_commit_and_answer_the_rerun_leaves_the_replica_equal(
    served: Served, ledger_name: str, tmp_path: Path
) -> None:
    sim = simulate(tmp_path / "sim", SimulationConfig(transactions=30, seed=11, concurrency=4))
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    for event in sim.events:
        ingest_items(buffer, decode_event(event.to_json()))
    proxy = LossyProxy(served.url)
    # The driver retries a transaction whose commit answer was lost (QldbDestination must see
    # that its own commit landed); without retries the loss kills the settler.
    recovered: list[str] = []
    retrying = Recording(QldbDestination(ledger_name, endpoint=proxy.url), recovered)
    lossy = QldbDestination(ledger_name, endpoint=proxy.url, retry_limit=0)
    lost, died = 0, 0
    try:
        for cycle in range(60):
            # Cycle kinds, in turn: a commit's answer is lost and the settler dies of it (no
            # driver retries); a commit's answer is lost, the driver retries and QldbDestination
            # sees its commit landed, then the settler dies after its fourth commit; the settler
            # dies right after its first commit, before marking the buffer.
            kind = cycle % 3
            dest = retrying if kind == 1 else lossy
            if kind in (0, 1):
                proxy.drop_nth_commit_answer(2 + cycle % 4)
            die_at = {0: 0, 1: 4, 2: 1}[kind]
            reached = {"applied": 0}

            def fault(step: str, reached: dict[str, int] = reached, die_at: int = die_at) -> None:
                if step == "applied":
                    reached["applied"] += 1
                    if reached["applied"] == die_at:
                        raise Died(step)

            try:
                report = settle(
                    buffer,
                    dest,
                    now=FAR,
                    policy=SettlePolicy(window_seconds=120, group_size=3),
                    faults=fault,
                )
            except TransientError:
                lost += 1
                continue
            except Died:
                died += 1
                continue
            assert not report.halted, report.halt_reason
            if report.buffer_depth == 0:
                break
        else:
            pytest.fail("the settler never drained the buffer")
    finally:
        retrying.close()
        lossy.close()
        proxy.stop()
        buffer.close()
    assert lost >= 2 and died >= 2 and recovered

    replica = QldbDestination(ledger_name, endpoint=served.url)
    try:
        copies = list(replica.copies())
        documents = [(table, data) for table, _id, data in replica.documents()]
    finally:
        replica.close()
    equal = compare("source ledger", documents_of_ledger(sim.source_path), documents)
    assert equal.equal, equal.summary()
    sources = [c.source_id for c in copies if c.source_id is not None]
    assert len(sources) == len(set(sources))

    # The replica's own journal: every transaction that moved the checkpoint moved it forward.
    from ledger import EmbeddedLedger

    written = []
    with EmbeddedLedger(served.ledger_file(ledger_name), ledger_name=ledger_name) as led:
        for b in led.blocks():
            for r in b.revisions:
                if r.table_name == CHECKPOINT_TABLE and r.data is not None:
                    part = r.data["part"]
                    last = math.inf if isinstance(part, IonPyNull) else int(part)
                    written.append((int(r.data["sequenceNo"]), last))
    assert len(written) >= 5
    assert all(a < b for a, b in itertools.pairwise(written)), written
