"""The campaign's own measuring instruments, so that ``make chaos`` cannot report "nothing lost"
because its counting is blind: the record accounting finds a record the buffer does not hold, and
the late scenario's stream split holds back exactly the records of the chosen blocks."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from buffer.port import Incoming
from buffer.sqlite import SqliteBuffer
from ingest.decode import decode_file
from ingest.service import ingest_items
from journal.records import BlockSummary, RevisionDetails
from qldb_settle.simulate import SimulationConfig, simulate

from .accounting import BufferInventory, StreamInventory, account
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
