"""The campaign's own measuring instruments, so that ``make chaos`` cannot report "nothing lost"
because its counting is blind: the record accounting finds a record the buffer does not hold, and
the late scenario's stream split holds back exactly the records of the chosen blocks."""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from buffer.port import Gap, Incoming
from buffer.sqlite import SqliteBuffer
from ingest.decode import decode_file
from ingest.service import ingest_items
from journal.records import BlockSummary, RevisionDetails
from qldb_settle.simulate import SimulationConfig, simulate
from settler.ingest_health import aws_ingest_health

from .accounting import (
    BufferInventory,
    SourceBlock,
    StreamInventory,
    account,
    account_blocks,
    source_blocks,
)
from .aws_fakes import QUEUE_URL, EventSourceMapping
from .streams import delivered_at, split_late, user_records


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("campaign-sim") / "sim"
    config = SimulationConfig(transactions=16, shards=2, max_delay_ms=1000, seed=3)
    return simulate(out, config).event_paths


def _inventory(buffer: SqliteBuffer) -> BufferInventory:
    blocks: dict[str, str] = {r.block_id: r.state for r in buffer.blocks()}
    revisions: set[str] = set()
    for block_id in blocks:
        found = buffer.get_block(block_id)
        assert found is not None
        revisions.update(r.record_id for r in found.revisions.values())
    return BufferInventory(blocks=blocks, revisions=revisions, rejected=[])


def test_the_accounting_finds_every_record_the_buffer_does_not_hold(
    events: list[Path], tmp_path: Path
) -> None:
    stream = StreamInventory()
    stream.add_files(events)
    items = [i for path in events for i in decode_file(path)]
    revision = next(
        i for i in items if isinstance(i, Incoming) and i.record.record_type == "REVISION_DETAILS"
    )
    block = next(
        i
        for i in items
        if isinstance(i, Incoming)
        and isinstance(i.record, BlockSummary)
        and i.record.block_id != revision.record.block_id  # type: ignore[union-attr]
    )
    dropped = {revision.record.record_id, block.record.record_id}
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    try:
        kept = [i for i in items if not (isinstance(i, Incoming) and i.record.record_id in dropped)]
        ingest_items(buffer, kept)
        result = account(stream, _inventory(buffer))
        assert sorted(result.lost) == sorted(dropped)
        assert result.stored == stream.distinct - 2
        assert result.duplicates == stream.copies - stream.distinct > 0

        ingest_items(buffer, items)  # the rest arrives: nothing is lost any more
        result = account(stream, _inventory(buffer))
        assert result.lost == [] and result.unexpected == []
        assert result.stored == stream.distinct
    finally:
        buffer.close()


def test_the_late_split_holds_back_exactly_the_records_of_the_late_blocks(
    events: list[Path], tmp_path: Path
) -> None:
    stream = StreamInventory()
    stream.add_files(events)
    blocks = sorted(
        (r for r in stream.records.values() if isinstance(r, BlockSummary) and r.user_revisions),
        key=lambda b: b.address.sequence_no,
    )
    late = {blocks[len(blocks) // 2].block_id, blocks[-2].block_id}
    late_at = datetime(2026, 11, 1, 15, tzinfo=UTC)
    on_time, late_files, held = split_late(
        events, late, tmp_path, random.Random(1), late_at=late_at
    )

    on = StreamInventory()
    on.add_files(on_time)
    back = StreamInventory()
    back.add_files(late_files)
    late_ids = set(stream.records_of(late))
    assert set(back.kinds) == late_ids and late_ids
    assert set(on.kinds) == set(stream.kinds) - late_ids
    assert held == back.copies >= len(late_ids)
    assert on.copies + back.copies == stream.copies
    assert all(delivered_at(p) == late_at for p in late_files)
    # Every on-time file keeps its delivery instant, and revisions follow their block.
    assert {delivered_at(p) for p in on_time} <= {delivered_at(p) for p in events}
    for path in late_files:
        for _shard, raw in user_records(json.loads(path.read_text(encoding="utf-8"))):
            assert raw in {stream.raw[r] for r in late_ids}
    assert any(isinstance(stream.records[r], RevisionDetails) for r in late_ids)


def _gap(first: int, last: int) -> Gap:
    return Gap(ledger="l", strand_id="S", first=first, last=last, passed_at=datetime.now(UTC))


def test_the_block_accounting_finds_every_block_not_replayed_in_order() -> None:
    source = [SourceBlock("S", seq, read_only=seq in (3, 7)) for seq in range(10)]
    states = dict.fromkeys((0, 1, 2, 4, 5, 8, 9), "replayed") | {6: "late"}
    buf = BufferInventory(
        blocks={f"l/S/{seq}": st for seq, st in states.items()},
        revisions=set(),
        rejected=[],
        # 3: a read-only block, rightly passed; 7..8: 8 was passed over, arrived, was applied
        gaps=[_gap(3, 3), _gap(7, 8)],
    )
    blocks = account_blocks(source, buf)
    assert sorted(blocks.skipped) == [
        ("S/6", "ends late"),
        ("S/8", "replayed, but inside the gap 7..8 passed"),
    ]
    assert (blocks.must_replay, blocks.replayed_in_order) == (8, 6)
    assert (blocks.gaps_passed, blocks.gaps_over_read_only_only) == (2, 1)
    # A read-only block the stream carried after all must be replayed too; a block never
    # buffered is skipped.
    carried = account_blocks(source, buf, streamed=["l/S/3"])
    assert ("S/3", "never buffered") in carried.skipped
    buf.blocks["l/S/3"] = "replayed"  # it arrived after its gap was passed, applied late
    carried = account_blocks(source, buf, streamed=["l/S/3"])
    assert ("S/3", "replayed, but inside the gap 3..3 passed") in carried.skipped
    del buf.blocks["l/S/9"]
    assert ("S/9", "never buffered") in account_blocks(source, buf).skipped


def test_the_block_accounting_reads_the_simulated_source(events: list[Path]) -> None:
    blocks = source_blocks(events[0].parents[1] / "source.db")
    stream = StreamInventory()
    stream.add_files(events)
    streamed = {
        (r.address.strand_id, r.address.sequence_no)
        for r in stream.records.values()
        if isinstance(r, BlockSummary)
    }
    # What the simulator streams is exactly the blocks that revised something.
    assert {(b.strand_id, b.sequence_no) for b in blocks if not b.read_only} == streamed
    assert any(b.read_only for b in blocks)


def test_the_failure_queue_and_stream_serve_redrive(events: list[Path], tmp_path: Path) -> None:
    """The file-backed on-failure queue and stream answer the calls ``redrive`` and the ingest
    health check make as SQS and Kinesis do (a batch's range re-read whole, a received message
    invisible until its timeout, a refused stream a ClientError)."""
    from botocore.exceptions import ClientError

    from qldb_settle.commands.redrive import FailedRange, read_range

    esm = EventSourceMapping(tmp_path)
    for path in events:
        esm.deliver(path)
    batch = events[len(events) // 2]
    body = esm.give_up(batch, attempts=4)
    health = aws_ingest_health(
        window_seconds=60, queue_url=QUEUE_URL, function_name=None, sqs=esm.queue
    )
    assert health is not None and "1 failed batch(es) wait" in (health() or "")
    attrs = esm.queue.get_queue_attributes(QueueUrl=QUEUE_URL, AttributeNames=[])["Attributes"]
    assert attrs["ApproximateNumberOfMessages"] == "1"
    (message,) = esm.queue.receive_message(QueueUrl=QUEUE_URL, VisibilityTimeout=900)["Messages"]
    assert esm.queue.receive_message(QueueUrl=QUEUE_URL) == {}  # invisible now
    attrs = esm.queue.get_queue_attributes(QueueUrl=QUEUE_URL, AttributeNames=[])["Attributes"]
    assert attrs["ApproximateNumberOfMessagesNotVisible"] == "1"
    rng = FailedRange.from_message(message)
    assert rng.end == body["KinesisBatchInfo"]["endSequenceNumber"]
    read = read_range(esm.stream, rng)
    assert read.problem is None
    sent = json.loads(batch.read_text(encoding="utf-8"))["Records"]
    assert [r["SequenceNumber"] for r in read.records] == [
        e["kinesis"]["sequenceNumber"] for e in sent
    ]
    assert [base64.b64encode(r["Data"]).decode() for r in read.records] == [
        e["kinesis"]["data"] for e in sent
    ]
    esm.stream.refuse(True)
    refused = read_range(esm.stream, rng)
    assert refused.problem is not None and "ResourceNotFoundException" in refused.problem
    with pytest.raises(ClientError):
        esm.stream.get_records(ShardIterator="x|0")
    esm.queue.delete_message(QueueUrl=QUEUE_URL, ReceiptHandle=message["ReceiptHandle"])
    assert esm.queue.count() == 0 and health() is None


def test_the_proxy_cuts_a_bulk_request_after_its_first_actions() -> None:
    """``forward-first`` (the mark-repair fault) forwards whole actions only: an action's
    metadata with its source, a delete alone."""
    from buffer.opensearch_proxy import bulk_actions, first_actions

    lines = [
        {"update": {"_index": "p-blocks", "_id": "a"}},
        {"doc": {"state": "replayed", "reason": None}},
        {"delete": {"_index": "p-blocks", "_id": "b"}},
        {"update": {"_index": "p-blocks", "_id": "c"}},
        {"doc": {"state": "replayed", "reason": None}},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    assert [next(iter(m.values()))["_id"] for m, _ in bulk_actions(body)] == ["a", "b", "c"]  # type: ignore[index]
    assert first_actions(body, 2) == b"".join(
        json.dumps(line).encode() + b"\n" for line in lines[:3]
    )
    assert first_actions(body, 0) == b""
