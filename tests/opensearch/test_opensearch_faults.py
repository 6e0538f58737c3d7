"""The server fails in the middle of an ingest batch and of a settle cycle (a fault-injecting proxy
in front of osmem-server answers 429/503, drops connections, or applies a request and loses its
answer): after the retries, or a re-run, nothing is lost and nothing is applied twice."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from opensearch_records import T0, source_records, to_incoming
from opensearch_support import OpenBuffer

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


def _records(synth: Synth, blocks: int = 40) -> list[Incoming]:
    return synth.incomings(synth.chain(blocks), delay=timedelta(seconds=2))


def test_an_ingest_batch_survives_429_503_and_lost_connections(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth, prefix: str
) -> None:
    records = _records(synth)
    reference = open_buffer(index_prefix=f"{prefix}-ref")
    expected = reference.put(records)
    assert expected.stored["blocks"] == 40 and expected.stored["revisions"] == 40

    buf = open_buffer(proxy.url, bulk_actions=10)  # a dozen bulk requests for this batch
    faults = [
        proxy.arm("429", path="/_bulk", skip=1),
        proxy.arm("503", path="/_bulk", skip=3),
        proxy.arm("drop", path="/_bulk", skip=4),
        proxy.arm("lose-answer", path="/_bulk", skip=6),
        proxy.arm("lose-answer", path="/_mget", skip=0),
        proxy.arm("bulk-items-429", path="/_bulk", skip=8),  # items refused, queue full
    ]
    report = buf.put(records)

    assert [f.fired for f in faults] == [1, 1, 1, 1, 1, 1]
    assert proxy.outcomes("forward:200")  # and the rest went through
    # The records of the lost answer were stored by this call: still counted as stored, once.
    assert report == expected
    assert buf.dump() == reference.dump()


def test_retries_run_out_into_a_clear_transient_error_and_a_rerun_completes_the_batch(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth, prefix: str
) -> None:
    records = _records(synth)
    reference = open_buffer(index_prefix=f"{prefix}-ref")
    reference.put(records)
    quick = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002)
    buf = open_buffer(proxy.url, bulk_actions=10, retry=quick)
    proxy.arm("503", path="/_bulk", skip=5, times=10_000)

    with pytest.raises(TransientError) as failure:
        buf.put(records)
    message = str(failure.value)
    assert "127.0.0.1" in message and "after 3 attempts" in message and "503" in message
    assert buf.dump() != reference.dump()  # half a batch is in

    proxy.disarm()
    again = buf.put(records)  # Kinesis delivers the batch again
    assert again.records == len(records) and again.conflicts == 0 and again.late == 0
    stored = again.stored["blocks"] + again.stored["revisions"]
    assert 0 < stored < len(records) and stored + again.duplicates == len(records)
    assert buf.dump() == reference.dump()


def test_a_settle_cycle_through_faults_replays_every_block_exactly_once(
    open_buffer: OpenBuffer, proxy: FaultProxy, tmp_path: Path
) -> None:
    source, values = source_records(tmp_path / "source.db", transactions=24)
    items = [
        to_incoming(v, origin=f"shard-{i % 3}/{i}", arrived_at=T0 + timedelta(minutes=1))
        for i, v in enumerate(values)
    ]
    open_buffer().put(items[::-1])
    blocks = [b.sequence_no for b in source.blocks()]
    strand = next(source.blocks()).strand_id
    buf = open_buffer(proxy.url)
    destination = EmbeddedDestination(tmp_path / "replica.db")
    faults = [
        proxy.arm("503", path="/_search", skip=3),
        proxy.arm("429", path="/_refresh", skip=2),
        proxy.arm("drop", path="/_mget", skip=4),
        proxy.arm("lose-answer", path="/_bulk", skip=0),  # the first marks land, answer lost
        proxy.arm("lose-answer", path="/_update/", skip=1),  # a lease or mark write
        proxy.arm("503", path="/_bulk", skip=2, times=20),  # marks fail until retries run out
        proxy.arm("drop", path="/_search", skip=12, times=20),  # reads fail again, a while
    ]
    now = T0 + timedelta(days=1)
    transient = 0
    for _ in range(30):
        try:
            report = settle(
                buf, destination, now=now, policy=SettlePolicy(window_seconds=120, group_size=4)
            )
        except TransientError:
            transient += 1  # the Lambda fails, EventBridge runs it again
            continue
        assert not report.halted and report.quarantined == 0 and report.late == 0
        checkpoint = destination.checkpoint(source.ledger, strand)
        if checkpoint is not None and checkpoint.sequence_no == blocks[-1]:
            break
    assert all(f.fired for f in faults), [(f.action, f.path, f.fired) for f in faults]
    assert transient >= 1  # the faults did make cycles fail

    checkpoint = destination.checkpoint(source.ledger, strand)
    assert checkpoint is not None and checkpoint.sequence_no == blocks[-1]
    # Every block applied once: a literal INSERT applied twice would add a document.
    comparison = compare(
        "source", documents_of_ledger(tmp_path / "source.db"), replica_documents(destination)
    )
    assert comparison.equal, comparison
    direct = open_buffer()
    assert {r.sequence_no for r in direct.blocks("replayed")} == set(blocks)
    assert direct.pending(source.ledger, strand, 0, 100) == []
    destination.close()
