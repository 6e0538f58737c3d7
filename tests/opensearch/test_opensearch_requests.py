"""Request economy of the OpenSearch buffer (issue 20), counted, not timed: a proxy in front of
osmem-server logs every HTTP request the buffer sends, and the tests bound how many an ingest
event and a settled block cost. Counts are deterministic for a given workload and options."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from opensearch_records import T0, paging_chain, quick_incoming, source_records, to_incoming
from opensearch_support import OpenBuffer

from bench.opensearch import settle_policy
from buffer.opensearch_client import RetryPolicy
from buffer.opensearch_proxy import FaultProxy
from buffer.port import Incoming
from destination.embedded import EmbeddedDestination
from qldb_settle.commands.verify import replica_documents
from runtime.errors import TransientError
from settler.compare import compare, documents_of_ledger
from settler.cycle import SettlePolicy, settle

# The shared synthetic records (tests/conftest.py), imported by name for typing.
from synth import Synth  # isort: skip


def _events(synth: Synth, blocks: int, per_event: int) -> list[list[Incoming]]:
    records = synth.incomings(synth.chain(blocks), delay=timedelta(seconds=2))
    return [records[i : i + per_event] for i in range(0, len(records), per_event)]


def test_an_ingest_event_costs_one_mget_and_one_bulk(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth
) -> None:
    buf = open_buffer(proxy.url)
    events = _events(synth, blocks=30, per_event=6)  # 3 blocks (summary + revision) an event
    for event in events:
        since = len(proxy.log)
        report = buf.put(event)
        assert report.stored["blocks"] == 3 and report.stored["revisions"] == 3
        assert proxy.kinds(since) == {"POST _mget": 1, "POST _bulk": 1}
    # Kinesis re-delivers: classifying the copies is the one request, nothing is written.
    since = len(proxy.log)
    again = buf.put(events[0])
    assert again.duplicates == len(events[0])
    assert proxy.kinds(since) == {"POST _mget": 1}


def test_a_header_whose_statements_were_lost_gets_them_from_a_redelivery(
    open_buffer: OpenBuffer, synth: Synth
) -> None:
    """Statements and header go in one bulk request, which is not atomic: should a statement be
    refused after its header was stored, the re-delivered batch writes it again."""
    buf = open_buffer()
    block = synth.block(1, statements=["INSERT INTO Person ?", "SELECT * FROM Person"])
    records = synth.incomings([block])
    buf.put(records)
    before = buf.dump()
    block_id = records[0].record.record_id
    buf.client.request(
        "delete a statement",
        "delete",
        index=buf.indices.statements,
        id=f"{block_id}/1",
        refresh="true",
    )
    assert buf.dump()["statements"] != before["statements"]
    report = buf.put(records)
    assert report.duplicates == len(records)
    assert buf.dump() == before


def test_a_settle_cycle_costs_a_constant_plus_a_few_requests_per_hundred_blocks(
    open_buffer: OpenBuffer, proxy: FaultProxy, tmp_path: Path
) -> None:
    blocks = 400
    items = [
        quick_incoming(value, origin=f"shard-0/{seq}/{k}")
        for seq, values in enumerate(paging_chain(blocks, 2), start=1)
        for k, value in enumerate(values)
    ]
    direct = open_buffer()
    for i in range(0, len(items), 200):
        direct.put(items[i : i + 200])
    buf = open_buffer(proxy.url)
    destination = EmbeddedDestination(tmp_path / "replica.db")
    now = T0 + timedelta(days=1)

    since = len(proxy.log)
    report = settle(
        buf, destination, now=now, policy=SettlePolicy(window_seconds=120, group_size=100)
    )
    cost = proxy.kinds(since)
    assert report.blocks == blocks and not report.halted

    # An idle cycle (nothing to release) costs the per-cycle constant alone.
    since = len(proxy.log)
    idle = settle(
        buf, destination, now=now, policy=SettlePolicy(window_seconds=120, group_size=100)
    )
    constant = proxy.kinds(since)
    assert idle.blocks == 0 and sum(constant.values()) <= CYCLE_CONSTANT, constant

    per_block = (sum(cost.values()) - sum(constant.values())) / blocks
    assert per_block <= 0.05, (cost, constant)
    # Four groups: one bulk each (headers and statement states) and one replayed-mark update.
    assert cost["POST _bulk"] == 4 and cost["POST _refresh"] <= constant["POST _refresh"] + 2
    destination.close()


def _cycle_requests(
    open_buffer: OpenBuffer,
    proxy: FaultProxy,
    replica: Path,
    policy: SettlePolicy,
    clock: Callable[[], float],
) -> Counter[str]:
    """The requests of one cycle releasing 200 blocks from a buffer of its own."""
    blocks, prefix = 200, f"t-{uuid.uuid4().hex[:12]}"
    items = [
        quick_incoming(value, origin=f"shard-0/{seq}/{k}")
        for seq, values in enumerate(paging_chain(blocks, 2), start=1)
        for k, value in enumerate(values)
    ]
    open_buffer(index_prefix=prefix).put(items)
    buf = open_buffer(proxy.url, index_prefix=prefix)
    destination = EmbeddedDestination(replica)
    since = len(proxy.log)
    report = settle(buf, destination, now=T0 + timedelta(days=1), policy=policy, clock=clock)
    destination.close()
    assert report.blocks == blocks and not report.halted
    return proxy.kinds(since)


def test_the_bench_settle_requests_do_not_depend_on_how_long_the_cycle_takes(
    open_buffer: OpenBuffer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Issue 17: a settle cycle renews its lease once a third of it has passed, which costs
    requests, so a cycle slowed down by a loaded machine sent more than the same cycle on an
    idle one and ``make bench`` found its repetitions disagreeing. A clock that jumps 150 s
    at every look stands for a slow machine; the bench's policy (``bench.opensearch``) holds a
    lease no phase outlasts, so its counts are the input's alone."""

    def slow() -> Callable[[], float]:
        return itertools.count(0.0, 150.0).__next__

    policy = replace(settle_policy(), group_size=50)  # four destination transactions
    fast_counts = _cycle_requests(open_buffer, proxy, tmp_path / "a.db", policy, time.monotonic)
    slow_counts = _cycle_requests(open_buffer, proxy, tmp_path / "b.db", policy, slow())
    assert slow_counts == fast_counts
    # At the default lease (300 s) the slow cycle renews before each later transaction: a read
    # of the lease and its compare-and-set, the difference the bench had seen.
    short = replace(policy, lease_seconds=SettlePolicy(window_seconds=120).lease_seconds)
    renewing = _cycle_requests(open_buffer, proxy, tmp_path / "c.db", short, slow())
    assert renewing - fast_counts == Counter({"POST _mget": 4, "POST _update": 4})
    assert not fast_counts - renewing


def test_gaps_cost_a_write_per_group_not_requests_per_gap(
    open_buffer: OpenBuffer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """A stream missing every fifth block (as read-only transactions leave gaps): the gaps of a
    group are recorded in one write, rejections are counted once per cycle, and the default
    group size holds."""
    chain = list(enumerate(paging_chain(500, 2), start=1))
    items = [
        quick_incoming(value, origin=f"shard-0/{seq}/{k}")
        for seq, values in chain
        if seq % 5
        for k, value in enumerate(values)
    ]
    direct = open_buffer()
    for i in range(0, len(items), 200):
        direct.put(items[i : i + 200])
    buf = open_buffer(proxy.url)
    destination = EmbeddedDestination(tmp_path / "replica.db")
    now = T0 + timedelta(days=1)

    since = len(proxy.log)
    report = settle(buf, destination, now=now, policy=SettlePolicy(window_seconds=120))
    cost = proxy.kinds(since)
    assert report.blocks == 400 and report.gaps_passed == 99 and not report.halted
    since = len(proxy.log)
    settle(buf, destination, now=now, policy=SettlePolicy(window_seconds=120))
    constant = sum(proxy.kinds(since).values())
    per_block = (sum(cost.values()) - constant) / report.blocks
    assert per_block <= 0.05, (cost, constant)
    assert cost["POST _count"] == 1  # the unresolved rejections, asked at the first gap only
    assert len(direct.gaps()) == 99
    destination.close()


# Requests every cycle sends whatever it releases: the lease (read, write, release), the strands,
# the replayed mark and gaps, the unresolved rejections, retention and the stats.
CYCLE_CONSTANT = 36


def test_a_fault_between_the_marks_of_one_group_is_repaired_from_the_checkpoint(
    open_buffer: OpenBuffer, proxy: FaultProxy, tmp_path: Path
) -> None:
    """The marks of a group are one bulk request per chunk, not atomic: the first chunk lands,
    the next fails. The strand's replayed mark was not raised, so the next cycle marks the rest
    replayed from the destination's checkpoint and applies nothing twice."""
    source, values = source_records(tmp_path / "source.db", transactions=12)
    open_buffer().put(
        [to_incoming(v, origin=f"s/{i}", arrived_at=T0) for i, v in enumerate(values)]
    )
    blocks = [b.sequence_no for b in source.blocks()]
    strand = next(source.blocks()).strand_id
    buf = open_buffer(proxy.url, bulk_actions=3, retry=RetryPolicy(attempts=2, base_delay=0.001))
    destination = EmbeddedDestination(tmp_path / "replica.db")
    now = T0 + timedelta(days=1)
    fault = proxy.arm("503", path="/_bulk", skip=1, times=10_000)
    with pytest.raises(TransientError):
        settle(
            buf,
            destination,
            now=now,
            policy=SettlePolicy(window_seconds=120, group_size=len(blocks)),
        )
    assert fault.fired >= 1
    direct = open_buffer()
    marked = {r.sequence_no for r in direct.blocks("replayed")}
    assert 0 < len(marked) < len(blocks)  # the group's marks are half written
    checkpoint = destination.checkpoint(source.ledger, strand)
    assert checkpoint is not None and checkpoint.sequence_no == blocks[-1]
    assert (direct.replayed_through(source.ledger, strand) or -1) < blocks[-1]

    proxy.disarm()
    report = settle(
        buf, destination, now=now, policy=SettlePolicy(window_seconds=120, group_size=len(blocks))
    )
    assert report.blocks == 0 and report.repaired == len(blocks) - len(marked)
    assert {r.sequence_no for r in direct.blocks("replayed")} == set(blocks)
    assert direct.replayed_through(source.ledger, strand) == blocks[-1]
    comparison = compare(
        "source", documents_of_ledger(tmp_path / "source.db"), replica_documents(destination)
    )
    assert comparison.equal, comparison
    destination.close()
