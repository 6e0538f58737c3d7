"""End to end on real parts: stream records into a SQLite buffer, settled into an embedded replica
(``EmbeddedDestination``), compared with what the source committed, field for field with Ion
types (``journal.canonical.fingerprint`` types every scalar)."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from settler_blocks import to_incoming
from settler_realdata import DMV_DOCUMENT, EVENTS, dmv_values, fixture
from settler_workload import (
    TABLE,
    Clock,
    new_source,
    run_schedule,
    schedules,
    source_documents,
    stream,
)

from buffer.sqlite import SqliteBuffer
from destination.embedded import EmbeddedDestination
from journal.canonical import fingerprint
from journal.records import RevisionDetails
from settler.cycle import SettlePolicy, settle

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _replica(dest: EmbeddedDestination) -> list[tuple[str, str]]:
    return sorted((table, fingerprint(data)) for table, _, data in dest.documents())


def _ion_types(value: Any) -> Any:
    """The Ion type of every value inside ``value`` (structs by field, lists by position)."""
    if isinstance(value, dict):
        return {k: _ion_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ion_types(v) for v in value]
    return getattr(value, "ion_type", None)


@pytest.mark.parametrize("name", EVENTS)
def test_the_real_aggregated_events_replay_through_revisions(tmp_path: Path, name: str) -> None:
    from ingest.service import ingest_paths

    buffer = SqliteBuffer(tmp_path / "buffer.db")
    ingested = ingest_paths(buffer, [fixture(name)])
    assert ingested.put.stored["blocks"] == 1 and ingested.put.stored["revisions"] == 1
    dest = EmbeddedDestination(tmp_path / "replica.db")
    report = settle(buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=120))
    assert not report.halted
    assert report.to_json()["replayed"] == {"blocks": 1, "statements": 0, "revisions": 1}
    assert report.to_json()["digests"] == {"verified": 0, "unverified": 3}

    from ingest.decode import decode_file

    (revision,) = [
        i.record
        for i in decode_file(fixture(name))
        if isinstance(getattr(i, "record", None), RevisionDetails)
    ]
    ((table, dest_id, data),) = list(dest.documents())
    assert table == revision.table_name == "BicycleLicence"
    assert dest.source_ids()[dest_id] == revision.document_id
    assert data == revision.data
    assert fingerprint(data) == fingerprint(revision.data)
    assert _ion_types(data) == _ion_types(revision.data)
    buffer.close()
    dest.close()


def test_the_real_literal_sample_replays_as_a_statement(tmp_path: Path) -> None:
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    buffer.put([to_incoming(v) for v in dmv_values()])
    dest = EmbeddedDestination(tmp_path / "replica.db")
    # The sample is block 3 of its ledger: the replica holds the source's state before it (the
    # Person table its earlier blocks created), as an operator would restore it.
    dest.ledger.execute("CREATE TABLE Person")
    report = settle(buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=120))
    assert report.to_json()["replayed"] == {"blocks": 1, "statements": 1, "revisions": 0}
    assert report.to_json()["digests"] == {"verified": 1, "unverified": 0}
    # The replica ran the source's statement text itself (its own journal shows it) ...
    _, (statement,) = [b.statements for b in dest.ledger.blocks()]
    assert statement.startswith("INSERT INTO Person <<") and "Testing new 600" in statement
    # ... and holds the document the source committed, mapped to its source id.
    ((table, dest_id, data),) = list(dest.documents())
    assert table == "Person" and dest.source_ids()[dest_id] == "D35qd3e2prnJYmtKW6kok1"
    assert fingerprint(data) == fingerprint(simpleion.loads(DMV_DOCUMENT))
    buffer.close()
    dest.close()


def test_the_dmv_collage_is_quarantined_not_replayed(tmp_path: Path) -> None:
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    buffer.put([to_incoming(v) for v in dmv_values(collage=True)])
    dest = EmbeddedDestination(tmp_path / "replica.db")
    report = settle(buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=120))
    assert report.halted and report.quarantined == 1 and report.blocks == 0
    assert list(dest.documents()) == []
    buffer.close()
    dest.close()


# --- order: random overlapping workloads, random arrival -----------------------------------------


def _arrivals(records: list[Any], rng: random.Random, max_delay_ms: int) -> list[tuple[Any, Any]]:
    """Each record (some twice) with an arrival time at most ``max_delay_ms`` after its commit,
    in arrival order: any order within the delay bound, so any assignment of records to shards
    and any shard split is among them."""
    out = []
    for value in records:
        item = to_incoming(value)
        record = item.record
        commit = getattr(record, "commit_time", None) or record.metadata.tx_time  # type: ignore[union-attr]
        for _ in range(2 if rng.random() < 0.3 else 1):
            out.append((commit + timedelta(milliseconds=rng.randint(0, max_delay_ms)), item))
    rng.shuffle(out)
    out.sort(key=lambda pair: pair[0])
    return out


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps=schedules(), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_random_overlapping_workloads_arriving_in_any_order_replay_exactly(
    steps: list[Any], seed: int
) -> None:
    rng = random.Random(seed)
    window_ms, max_delay_ms = 400, 300  # every record arrives within the window
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        source = new_source(tmp_path / "source.db", Clock())
        run_schedule(source, steps)
        expected = source_documents(source)
        arrivals = _arrivals(list(stream(source)), rng, max_delay_ms)
        source.close()

        buffer = SqliteBuffer(tmp_path / "buffer.db")
        dest = EmbeddedDestination(tmp_path / "replica.db")
        i = 0
        while i < len(arrivals):  # put in random batches, a settle cycle after each
            n = rng.randint(1, 8)
            batch = arrivals[i : i + n]
            i += n
            buffer.put([item for _, item in batch])
            report = settle(
                buffer, dest, now=batch[-1][0], policy=SettlePolicy(window_seconds=window_ms / 1000)
            )
            assert not report.halted, report.halt_reason
        final = settle(
            buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=window_ms / 1000)
        )
        assert not final.halted and final.late == 0 and final.quarantined == 0
        assert final.gaps_passed == 0
        assert _replica(dest) == expected
        buffer.close()
        dest.close()


# --- why rule 1 exists: startTime order diverges on overlapping transactions ---------------------


def test_replay_in_start_time_order_diverges_where_commit_order_does_not(tmp_path: Path) -> None:
    """T1 starts first and inserts a document; T2 starts later, updates every document matching
    it (none yet: T1 has not committed) and commits first; T1 commits last. Replaying each
    statement by startTime (the blog's proposal) runs T1's INSERT before T2's UPDATE, which then
    matches it: a document the source never had. Commit order gives the source's."""
    source = new_source(tmp_path / "source.db", Clock())
    t1 = source.begin()
    t1.execute(f"INSERT INTO {TABLE} << {{'k': 1, 'v': 'new'}} >>")
    t2 = source.begin()
    t2.execute(f"UPDATE {TABLE} AS i SET i.v = 'seen' WHERE i.k = 1")
    t2.execute(f"INSERT INTO {TABLE} << {{'k': 2, 'v': 'log'}} >>")
    t2.commit()
    t1.commit()
    expected = source_documents(source)
    records = list(stream(source))
    source.close()

    # Commit order, through the settler.
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    rng = random.Random(7)
    items = [to_incoming(v) for v in records]
    rng.shuffle(items)
    buffer.put(items)
    dest = EmbeddedDestination(tmp_path / "replica.db")
    settle(buffer, dest, now=FAR_FUTURE, policy=SettlePolicy(window_seconds=120))
    assert _replica(dest) == expected
    dest.close()

    # startTime order: every statement of every block, sorted by startTime, one by one.
    from ledger import EmbeddedLedger

    naive = EmbeddedLedger(tmp_path / "naive.db", ledger_name="naive")
    statements = sorted(
        (s.start_time, s.text)
        for r in (to_incoming(v).record for v in records)
        if hasattr(r, "statements")
        for s in r.statements  # type: ignore[union-attr]
    )
    for _, text in statements:
        naive.execute(text)
    naive_docs = list(naive.documents())
    diverged = sorted((t, fingerprint(d)) for t, _, d in naive_docs)
    naive.close()
    assert diverged != expected
    values = sorted(str(d["v"]) for _, _, d in naive_docs)
    assert values == ["log", "seen"]  # the source has {k: 1, v: "new"}
