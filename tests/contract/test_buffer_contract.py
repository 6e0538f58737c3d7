"""The ``SettlingBuffer`` contract (buffer/port.py), checked against every adapter in
``tests/contract/buffers.BUFFERS``. Records are synthetic but built with the real constructors
(``tests/conftest.Synth``: Ion values → Ion binary → ``record_from_ion``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion
from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull, IonPySymbol
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from buffer.port import Gap, Incoming, Lease, Mark, Rejection, SettlingBuffer
from journal.canonical import fingerprint, record_fingerprint
from journal.errors import InputError
from journal.records import BlockSummary, RevisionDetails, record_from_ion

from .buffers import BUFFERS, INGEST_ENV

# The conftest helpers, imported by name for typing (pytest puts tests/ on sys.path).
from synth import (  # isort: skip
    SYNTH_ARN_OTHER_LEDGER,
    SYNTH_ARN_OTHER_STREAM,
    SYNTH_LEDGER,
    SYNTH_STRAND,
    SYNTH_T0,
    Synth,
    SynthBlock,
    SynthDoc,
)

Opener = Callable[..., SettlingBuffer]
L, S, T0 = SYNTH_LEDGER, SYNTH_STRAND, SYNTH_T0


def _params() -> list[Any]:
    return [
        pytest.param(factory, id=name, marks=[pytest.mark.ingest_env] if name in INGEST_ENV else [])
        for name, factory in BUFFERS
    ]


@pytest.fixture(params=_params())
def open_buffer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """``open_buffer(directory=tmp_path)``: a buffer of the adapter under test, closed after."""
    factory: Callable[[Path], SettlingBuffer] = request.param
    opened: list[SettlingBuffer] = []

    def open_(directory: Path | None = None) -> SettlingBuffer:
        buf = factory(directory or tmp_path)
        opened.append(buf)
        return buf

    yield open_
    for buf in opened:
        buf.close()


@pytest.fixture
def buf(open_buffer: Opener) -> SettlingBuffer:
    return open_buffer()


def bid(seq: int, strand: str = S, ledger: str = L) -> str:
    return f"{ledger}/{strand}/{seq}"


def put_blocks(buf: SettlingBuffer, synth: Synth, blocks: list[SynthBlock]) -> None:
    buf.put(synth.incomings(blocks))


def content(dump: Any) -> dict[str, Any]:
    return {k: v for k, v in dump.items() if k != "provenance"}


# --- put: create-if-absent, stored / duplicate / conflict / late ---------------------------------


def test_put_stores_a_block_its_statements_and_revisions(buf: SettlingBuffer, synth: Synth) -> None:
    docs = [SynthDoc("DocA", 0, {"a": 1}), SynthDoc("DocB", 0, {"b": 2})]
    block = synth.block(1, docs=docs, statements=["SELECT * FROM Person", "INSERT INTO Person ?"])
    report = buf.put(synth.incomings([block]))
    assert report.records == 3
    assert report.stored == {"blocks": 1, "statements": 2, "revisions": 2, "control": 0}
    assert (report.duplicates, report.conflicts, report.late, report.rejected) == (0, 0, 0, 0)
    stats = buf.stats(T0)
    assert stats.blocks["pending"] == 1
    assert (stats.statements, stats.revisions) == (2, 2)
    counts = buf.dump()["counts"]
    assert counts["blocks"]["pending"] == 1
    assert (counts["statements"], counts["revisions"]) == (2, 2)
    assert set(buf.dump()["statements"]) == {f"{bid(1)}/0", f"{bid(1)}/1"}


def test_the_same_records_again_are_duplicates(buf: SettlingBuffer, synth: Synth) -> None:
    records = synth.incomings(synth.chain(2))
    buf.put(records)
    before = buf.dump()
    report = buf.put(records)
    assert report.duplicates == 4
    assert report.stored == {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    assert buf.dump() == before


def test_the_same_block_through_a_second_stream_of_the_ledger_is_a_duplicate(
    buf: SettlingBuffer, synth: Synth
) -> None:
    first = synth.block(3)
    second = Synth(arn=SYNTH_ARN_OTHER_STREAM).block(3)
    buf.put(synth.incomings([first]))
    report = buf.put(synth.incomings([second]))
    assert report.duplicates == 2 and report.conflicts == 0
    assert [b.block_id for b in buf.blocks()] == [bid(3)]


def test_the_same_address_in_another_ledger_is_another_block(
    buf: SettlingBuffer, synth: Synth
) -> None:
    buf.put(synth.incomings([synth.block(3)]))
    report = buf.put(synth.incomings([Synth(arn=SYNTH_ARN_OTHER_LEDGER).block(3)]))
    assert report.stored["blocks"] == 1 and report.duplicates == 0
    assert len(buf.blocks()) == 2
    assert len(buf.strands()) == 2


def _conflicting(synth: Synth, seq: int) -> SynthBlock:
    """Block ``seq`` again, with other content (another statement list)."""
    return synth.block(seq, statements=["INSERT INTO Person ?", "DELETE FROM Person WHERE x = 1"])


def test_a_conflicting_summary_is_kept_as_a_rejection_and_flags_its_block(
    buf: SettlingBuffer, synth: Synth
) -> None:
    first, other = synth.block(5), _conflicting(synth, 5)
    buf.put([synth.incoming(first.summary, arrived_at=T0)])
    other_in = synth.incoming(other.summary, arrived_at=T0 + timedelta(seconds=1))
    report = buf.put([other_in])
    assert report.conflicts == 1 and report.stored["blocks"] == 0
    block = buf.get_block(bid(5))
    assert block is not None and block.conflicted
    assert len(block.summary.statements) == 1  # the first copy stays
    (rejection,) = buf.rejected()
    assert rejection.kind == "conflict"
    assert rejection.record_id == bid(5)
    assert rejection.raw == other_in.raw
    stats = buf.stats(T0)
    assert (stats.conflicts, stats.rejected) == (1, 0)
    assert [b.conflicted for b in buf.pending(L, S, 0, 10)] == [True]


def test_a_conflicting_revision_flags_its_block(buf: SettlingBuffer, synth: Synth) -> None:
    block = synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 1})])
    other = synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 2})])
    buf.put(synth.incomings([block], delay=timedelta(seconds=1)))
    assert not buf.pending(L, S, 0, 10)[0].conflicted
    report = buf.put([synth.incoming(other.revisions[0], arrived_at=synth.commit_time(9))])
    assert report.conflicts == 1
    (pending,) = buf.pending(L, S, 0, 10)
    assert pending.conflicted
    assert pending.revisions["DocC"].data["v"] == 1
    (rejection,) = buf.rejected()
    assert rejection.record_id == f"{L}/DocC/0"


def test_the_first_copy_is_the_earliest_arrival_whatever_the_put_order(
    open_buffer: Opener, synth: Synth, tmp_path: Path
) -> None:
    early = synth.incoming(_conflicting(synth, 5).summary, arrived_at=T0, origin="shard-0/1")
    late = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=2))
    dumps = []
    for i, order in enumerate(([early, late], [late, early])):
        buf = open_buffer(tmp_path / f"order{i}")
        for item in order:
            buf.put([item])
        block = buf.get_block(bid(5))
        assert block is not None and len(block.summary.statements) == 2
        assert [r.raw for r in buf.rejected()] == [late.raw]
        dumps.append(buf.dump())
    assert dumps[0] == dumps[1]


def test_when_the_earliest_copy_arrives_last_its_content_is_no_longer_a_conflict(
    buf: SettlingBuffer, synth: Synth
) -> None:
    original = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=3))
    value = _conflicting(synth, 5).summary
    other_later = synth.incoming(value, origin="file.ion#4")  # arrival unknown: after original
    other_first = synth.incoming(value, arrived_at=T0, origin="shard-1/1")
    for item in (original, other_later, other_first):
        buf.put([item])
    block = buf.get_block(bid(5))
    assert block is not None and len(block.summary.statements) == 2 and block.conflicted
    assert [(r.raw, r.origin) for r in buf.rejected()] == [(original.raw, original.origin)]
    assert buf.stats(T0).conflicts == 1


def test_a_released_copy_stays_when_an_earlier_conflicting_copy_arrives(
    buf: SettlingBuffer, synth: Synth
) -> None:
    stored = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=9))
    buf.put([stored])
    buf.mark([Mark(block_id=bid(5), state="replayed", at=T0)])
    earlier = synth.incoming(_conflicting(synth, 5).summary, arrived_at=T0)
    assert buf.put([earlier]).conflicts == 1
    block = buf.get_block(bid(5))
    assert block is not None and len(block.summary.statements) == 1
    assert [r.raw for r in buf.rejected()] == [earlier.raw]


def test_an_operators_mark_stays_when_an_earlier_conflicting_copy_replaces_the_block(
    buf: SettlingBuffer, synth: Synth
) -> None:
    # A block an operator sent back to pending ("retry") keeps who did it, why and when after
    # an earlier conflicting copy displaces its content: the mark is about the block, not a copy.
    later = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=9))
    buf.put([later])
    at = T0 + timedelta(seconds=3)
    buf.mark([Mark(block_id=bid(5), state="pending", at=at, reason="retry", actor="op")])
    earlier = synth.incoming(_conflicting(synth, 5).summary, arrived_at=T0)
    assert buf.put([earlier]).conflicts == 1
    (row,) = buf.blocks()
    assert (row.state, row.reason, row.actor, row.updated_at) == ("pending", "retry", "op", at)
    assert row.statements == 2
    block = buf.get_block(bid(5))
    assert block is not None and block.conflicted and block.reason == "retry"


def test_acknowledging_a_conflict_clears_the_flag(buf: SettlingBuffer, synth: Synth) -> None:
    buf.put(synth.incomings([synth.block(5)]))
    buf.put([synth.incoming(_conflicting(synth, 5).summary)])
    (rejection,) = buf.rejected()
    assert buf.unresolved_rejections() == 1
    assert buf.acknowledge_rejections([rejection.rejection_id], "copy checked", "ops", T0) == 1
    assert buf.acknowledge_rejections([rejection.rejection_id], "again", "ops", T0) == 0
    assert buf.acknowledge_rejections(["no-such-id"], "none", "ops", T0) == 0
    assert buf.unresolved_rejections() == 0
    block = buf.get_block(bid(5))
    assert block is not None and not block.conflicted
    (resolved,) = buf.rejected()
    assert (resolved.resolved_by, resolved.resolution, resolved.resolved_at) == (
        "ops",
        "copy checked",
        T0,
    )


def test_a_block_at_or_below_the_replayed_mark_is_late(buf: SettlingBuffer, synth: Synth) -> None:
    b1, b2, b3 = synth.chain(3)
    put_blocks(buf, synth, [b1, b3])
    assert buf.repair(L, S, 3, T0) == 2
    report = buf.put(synth.incomings([b2]))
    assert report.late == 2
    assert report.stored == {"blocks": 0, "statements": 0, "revisions": 0, "control": 0}
    block = buf.get_block(bid(2))
    assert block is not None and block.state == "late"
    assert [r.block_id for r in buf.blocks("late")] == [bid(2)]
    assert buf.pending(L, S, 0, 10) == []
    assert buf.stats(T0).blocks["late"] == 1
    assert buf.dump()["revisions"][f"{L}/Doc{2:019d}/0"]["late"]


def test_a_late_revision_alone_is_late(buf: SettlingBuffer, synth: Synth) -> None:
    b1, b2 = synth.chain(2)
    put_blocks(buf, synth, [b1])
    buf.put([synth.incoming(b2.summary)])
    buf.mark([Mark(block_id=bid(2), state="replayed", at=T0)])
    late_rev = Synth().block(2, docs=[SynthDoc("DocLate", 3, {"x": 1})]).revisions[0]
    report = buf.put([synth.incoming(late_rev)])
    assert report.late == 1 and report.stored["revisions"] == 0


def test_a_block_inside_a_passed_gap_is_late(buf: SettlingBuffer, synth: Synth) -> None:
    blocks = synth.chain(6)
    put_blocks(buf, synth, [blocks[0], blocks[4]])
    buf.record_gaps([Gap(ledger=L, strand_id=S, first=2, last=4, passed_at=T0)])
    report = buf.put(synth.incomings([blocks[2], blocks[5]]))
    assert report.late == 2 and report.stored["blocks"] == 1
    states = {r.sequence_no: r.state for r in buf.blocks()}
    assert states == {1: "pending", 3: "late", 5: "pending", 6: "pending"}


def test_a_revision_arriving_after_its_summary_completes_the_block(
    buf: SettlingBuffer, synth: Synth
) -> None:
    block = synth.block(4, docs=[SynthDoc("DocX", 0, {"x": 1}), SynthDoc("DocY", 0, None)])
    buf.put([synth.incoming(block.summary), synth.incoming(block.revisions[1])])
    (pending,) = buf.pending(L, S, 0, 10)
    assert pending.missing_revisions == ("DocX",) and not pending.complete
    assert pending.revisions["DocY"].is_deletion
    assert buf.put([synth.incoming(block.revisions[0])]).stored["revisions"] == 1
    (pending,) = buf.pending(L, S, 0, 10)
    assert pending.complete


def test_every_record_is_counted_exactly_once(buf: SettlingBuffer, synth: Synth) -> None:
    b1, b2, b3 = synth.chain(3)
    buf.put(synth.incomings([b1]))
    buf.repair(L, S, 1, T0)
    bad = Rejection(origin="events/x.json#Records[0]", raw=b"\x00", kind="ion", reason="not Ion")
    items = [
        *synth.incomings([b2]),  # stored: 1 block, 1 revision
        synth.incoming(b2.summary, origin="again"),  # duplicate
        synth.incoming(_conflicting(synth, 3).summary),  # stored
        synth.incoming(b3.summary),  # conflict
        synth.incoming(synth.control("CREATED")),  # stored control
        synth.incoming(Synth().block(1, docs=[SynthDoc("DocZ", 1, {})]).revisions[0]),  # late
    ]
    report = buf.put(items, [bad, bad])
    assert report.records == len(items) + 2
    assert report.stored == {"blocks": 2, "statements": 3, "revisions": 1, "control": 1}
    assert (report.duplicates, report.conflicts, report.late, report.rejected) == (1, 1, 1, 2)
    s = report.stored
    assert report.records == (
        s["blocks"] + s["revisions"] + s["control"]
        + report.duplicates + report.conflicts + report.late + report.rejected
    )  # fmt: skip


def test_rejections_are_kept_with_raw_bytes_and_deduplicated(
    buf: SettlingBuffer, synth: Synth
) -> None:
    a = Rejection(origin="s/2", raw=b"\x01\x02", kind="aggregate", reason="MD5 mismatch")
    b = Rejection(
        origin="s/1", raw=b"\x01\x02", kind="aggregate", reason="MD5 mismatch", arrived_at=T0
    )
    c = Rejection(origin="s/3", raw=b"\x01\x02", kind="ion", reason="not Ion")
    assert buf.put([], [a]).rejected == 1
    assert buf.put([], [b, c, a]).rejected == 3
    kept = buf.rejected()
    assert sorted((r.kind, r.raw, r.origin) for r in kept) == [
        ("aggregate", b"\x01\x02", "s/1"),  # the earliest copy's provenance
        ("ion", b"\x01\x02", "s/3"),
    ]
    assert len({r.rejection_id for r in kept}) == 2
    assert buf.stats(T0).rejected == 2
    assert buf.unresolved_rejections() == 2


def test_duplicates_keep_the_earliest_copys_provenance(
    open_buffer: Opener, synth: Synth, tmp_path: Path
) -> None:
    value = synth.block(2).summary
    a = synth.incoming(value, origin="shard-1/9", arrived_at=T0 + timedelta(seconds=5))
    b = synth.incoming(value, origin="shard-2/1", arrived_at=T0 + timedelta(seconds=3))
    c = synth.incoming(value, origin="file.ion#0")  # arrival unknown: last
    dumps = []
    for i, order in enumerate(itertools.permutations([a, b, c])):
        buf = open_buffer(tmp_path / f"p{i}")
        for item in order:
            buf.put([item])
        dumps.append(buf.dump())
        block = buf.get_block(bid(2))
        assert block is not None and block.arrived_at == T0 + timedelta(seconds=3)
    assert all(d == dumps[0] for d in dumps)
    assert dumps[0]["provenance"][bid(2)]["origin"] == "shard-2/1"


# --- order-insensitive and idempotent (property) --------------------------------------------------


def _copies(synth: Synth) -> list[Incoming]:
    """Every copy the property test may deliver: blocks with revisions, duplicates through another
    stream and with other origins/arrivals, conflicting copies, a control record, rejections."""
    chain = synth.chain(4)
    other_stream = Synth(arn=SYNTH_ARN_OTHER_STREAM)
    copies = []
    for n, b in enumerate(chain):
        for k, value in enumerate(b.values):
            arrived = T0 + timedelta(seconds=n, milliseconds=k)
            copies.append(synth.incoming(value, origin=f"shard-0/{n}/{k}", arrived_at=arrived))
            copies.append(synth.incoming(value, origin=f"shard-1/{n}/{k}", arrived_at=arrived))
    copies.append(synth.incoming(other_stream.chain(4)[2].summary, origin="stream-b/2"))
    conflicting = _conflicting(synth, 3).summary
    copies.append(synth.incoming(conflicting, origin="shard-9/1", arrived_at=T0))
    copies.append(synth.incoming(conflicting, origin="shard-9/2"))
    other_rev = Synth().block(2, docs=[SynthDoc(f"Doc{2:019d}", 0, {"other": True})])
    copies.append(
        synth.incoming(other_rev.revisions[0], origin="shard-8/1", arrived_at=T0 + timedelta(1))
    )
    copies.append(synth.incoming(synth.control(), origin="shard-0/c"))
    return copies


_REJECTIONS = [
    Rejection(origin="events/a.json#Records[0]", raw=b"!!", kind="base64", reason="bad base64"),
    Rejection(origin="events/b.json#Records[3]", raw=b"!!", kind="base64", reason="bad base64"),
    Rejection(origin="shard-0/x", raw=b"\xe0\x01", kind="ion", reason="truncated", arrived_at=T0),
]


@settings(
    max_examples=15,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_permutation_repetition_and_split_gives_the_same_dump(
    open_buffer: Opener, synth: Synth, tmp_path: Path, data: st.DataObject
) -> None:
    copies, rejections = _copies(synth), _REJECTIONS
    reference = open_buffer(tmp_path / "reference")
    reference.put(copies, rejections)
    expected = reference.dump()
    reference.close()

    items: list[Incoming | Rejection] = [*copies, *rejections]
    repeated = data.draw(st.lists(st.sampled_from(items), max_size=12), label="repeated")
    order = data.draw(st.permutations([*items, *repeated]), label="order")
    cuts = sorted(data.draw(st.sets(st.integers(1, len(order) - 1), max_size=6), label="cuts"))
    directory = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
    buf = open_buffer(directory)
    for start, end in itertools.pairwise([0, *cuts, len(order)]):
        part = order[start:end]
        buf.put(
            [i for i in part if isinstance(i, Incoming)],
            [i for i in part if isinstance(i, Rejection)],
        )
    assert buf.dump() == expected
    buf.close()


# --- pending: commit order, after, limit, revisions -----------------------------------------------


def test_pending_returns_blocks_in_commit_order_after_a_sequence_number(
    buf: SettlingBuffer, synth: Synth
) -> None:
    blocks = synth.chain(10)
    records = synth.incomings(blocks)
    buf.put(records[::-1])
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 0, 4)] == [1, 2, 3, 4]
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 4, 4)] == [5, 6, 7, 8]
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 8, 4)] == [9, 10]
    assert buf.pending(L, S, 10, 4) == []
    assert buf.pending(L, "OtherStrand", 0, 4) == []
    buf.mark([Mark(block_id=bid(2), state="quarantined", at=T0, reason="test")])
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 0, 3)] == [1, 3, 4]


def test_pending_pages_through_more_blocks_than_one_page(buf: SettlingBuffer, synth: Synth) -> None:
    blocks = synth.chain(150)
    records = synth.incomings(blocks)
    for i in range(0, len(records), 100):
        buf.put(records[i : i + 100][::-1])
    seen: list[int] = []
    after = 0
    while page := buf.pending(L, S, after, 40):
        assert len(page) <= 40
        seen.extend(b.summary.address.sequence_no for b in page)
        after = page[-1].summary.address.sequence_no
        assert all(b.complete for b in page)
    assert seen == list(range(1, 151))


def test_revisions_are_matched_to_blocks_by_their_block_address(
    buf: SettlingBuffer, synth: Synth
) -> None:
    b7, b8 = synth.block(7), synth.block(8)
    stray = synth.block(7, docs=[SynthDoc("DocStray", 4, {"s": 1})]).revisions[0]
    buf.put([*synth.incomings([b7, b8]), synth.incoming(stray)])
    p7, p8 = buf.pending(L, S, 0, 10)
    assert set(p7.revisions) == {f"Doc{7:019d}", "DocStray"}
    assert set(p8.revisions) == {f"Doc{8:019d}"}


def test_blocks_and_revisions_come_back_as_they_were_put(buf: SettlingBuffer, synth: Synth) -> None:
    data = simpleion.loads(
        simpleion.dumps(
            {
                "amount": Decimal("127.50"),
                "dob": simpleion.loads("1963-08-19T"),
                "nothing": None,
                "typed_null": IonPyNull.from_value(IonType.STRING, None),
                "sym": IonPySymbol.from_value(IonType.SYMBOL, "sym"),
                "blob": b"\x00\xff",
                "f": 1.5,
                "nested": [{"a": [1, 2, {"b": "c"}]}],
            },
            binary=True,
        )
    )
    block = synth.block(9, docs=[SynthDoc("DocRich", 2, data)], statements=["SELECT 1", "X ?"])
    items = [synth.incoming(v, kinds=["select", "parameterized"]) for v in block.values]
    buf.put(items)
    (pending,) = buf.pending(L, S, 0, 10)
    assert pending.summary == items[0].record
    assert pending.statement_kinds == ("select", "parameterized")
    assert pending.state == "pending" and not pending.conflicted
    revision = pending.revisions["DocRich"]
    original = items[1].record
    assert isinstance(original, RevisionDetails)
    assert fingerprint(revision.data) == fingerprint(original.data)
    assert (revision.hash, revision.metadata, revision.table_id) == (
        original.hash,
        original.metadata,
        original.table_id,
    )
    assert revision.record_id == original.record_id


def test_real_records_round_trip(buf: SettlingBuffer, fixtures_dir: Path) -> None:
    for name in (
        "qldb-simple-demo__streams-dynamodb__data.DECODED.DERIVED.ion",
        "qldb-simple-demo__streams-es__data.DECODED.DERIVED.ion",
    ):
        values = list(simpleion.loads((fixtures_dir / name).read_bytes(), single_value=False))
        items = []
        for v in values:
            raw = simpleion.dumps(v, binary=True)
            loaded = simpleion.loads(raw)
            items.append(
                Incoming(
                    record=record_from_ion(loaded),
                    raw=raw,
                    fingerprint=record_fingerprint(loaded),
                    origin=name,
                )
            )
        summary, revision = (i.record for i in items)
        assert isinstance(summary, BlockSummary) and isinstance(revision, RevisionDetails)
        assert buf.put(items).stored["blocks"] == 1
        block = buf.get_block(summary.block_id)
        assert block is not None and block.complete
        assert block.summary == summary
        got = block.revisions[revision.document_id]
        assert fingerprint(got.data) == fingerprint(revision.data)
        assert got.metadata == revision.metadata


# --- marks, repair, gaps, listing -----------------------------------------------------------------


def test_marks_change_states_and_move_the_replayed_mark(buf: SettlingBuffer, synth: Synth) -> None:
    put_blocks(buf, synth, synth.chain(5))
    assert buf.replayed_through(L, S) is None
    buf.mark([Mark(block_id=bid(1), state="replayed", at=T0, reason="cycle", actor="settler")])
    assert buf.replayed_through(L, S) == 1
    buf.mark(
        [
            Mark(block_id=bid(2), state="quarantined", at=T0, reason="bad hash", actor="s"),
            Mark(block_id=bid(3), state="skipped", at=T0 + timedelta(1), reason="ok", actor="op"),
        ]
    )
    assert buf.replayed_through(L, S) == 3
    rows = {r.sequence_no: r for r in buf.blocks()}
    assert rows[2].state == "quarantined" and rows[2].reason == "bad hash"
    assert (rows[3].actor, rows[3].updated_at) == ("op", T0 + timedelta(1))
    assert buf.dump()["statements"][f"{bid(3)}/0"]["state"] == "skipped"
    stats = buf.stats(T0)
    assert stats.blocks == {"pending": 2, "replayed": 1, "quarantined": 1, "late": 0, "skipped": 1}
    buf.mark([Mark(block_id=bid(2), state="pending", at=T0, reason="retry", actor="op")])
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 1, 10)] == [2, 4, 5]


def test_a_mark_naming_an_unknown_block_changes_nothing(buf: SettlingBuffer, synth: Synth) -> None:
    put_blocks(buf, synth, synth.chain(2))
    before = buf.dump()
    with pytest.raises(InputError, match="not in the settling buffer"):
        buf.mark(
            [
                Mark(block_id=bid(1), state="replayed", at=T0),
                Mark(block_id=bid(99), state="replayed", at=T0),
            ]
        )
    assert buf.dump() == before
    assert buf.replayed_through(L, S) is None


def test_repair_follows_the_destination_checkpoint(buf: SettlingBuffer, synth: Synth) -> None:
    put_blocks(buf, synth, synth.chain(5))
    assert buf.repair(L, S, 3, T0) == 3
    assert buf.replayed_through(L, S) == 3
    assert [b.summary.address.sequence_no for b in buf.pending(L, S, 0, 10)] == [4, 5]
    assert buf.repair(L, S, 3, T0) == 0
    assert buf.repair(L, S, 2, T0) == 0  # the destination is the truth, even when lower
    assert buf.replayed_through(L, S) == 2
    assert buf.stats(T0).blocks["replayed"] == 3


def test_gaps_are_recorded_once(buf: SettlingBuffer) -> None:
    gap = Gap(ledger=L, strand_id=S, first=4, last=6, passed_at=T0)
    buf.record_gaps([gap])
    buf.record_gaps([gap])
    assert list(buf.gaps()) == [gap]
    assert buf.stats(T0).gaps == 1


def test_gaps_are_recorded_together_keep_their_first_pass_and_can_be_withdrawn(
    buf: SettlingBuffer, synth: Synth
) -> None:
    early = Gap(ledger=L, strand_id=S, first=2, last=2, passed_at=T0)
    later = Gap(ledger=L, strand_id=S, first=4, last=5, passed_at=T0 + timedelta(seconds=9))
    buf.record_gaps([later, early])
    buf.record_gaps([replace(early, passed_at=T0 + timedelta(hours=1))])  # a retried cycle
    assert list(buf.gaps()) == [early, later]
    assert buf.stats(T0).gaps == 2
    buf.withdraw_gaps([later, Gap(ledger=L, strand_id=S, first=8, last=9, passed_at=T0)])
    assert list(buf.gaps()) == [early]
    assert buf.stats(T0).gaps == 1
    # A block arriving inside a withdrawn gap is pending, not late.
    blocks = synth.chain(5)
    report = buf.put(synth.incomings([blocks[4]]))
    assert report.late == 0
    assert [r.sequence_no for r in buf.blocks("pending")] == [5]


def test_blocks_lists_rows_in_commit_order_by_state(buf: SettlingBuffer, synth: Synth) -> None:
    blocks = synth.chain(4)
    buf.put(synth.incomings(blocks[::-1])[1:])  # block 4's summary missing, nothing else
    buf.put([synth.incoming(blocks[3].summary)])
    buf.mark([Mark(block_id=bid(2), state="replayed", at=T0, reason="r", actor="a")])
    rows = buf.blocks()
    assert [r.sequence_no for r in rows] == [1, 2, 3, 4]
    assert [r.block_id for r in buf.blocks("replayed")] == [bid(2)]
    assert [r.sequence_no for r in buf.blocks("pending")] == [1, 3, 4]
    assert buf.blocks("late") == []
    row = rows[0]
    assert (row.ledger, row.strand_id, row.statements) == (L, S, 1)
    assert (row.revisions_expected, row.revisions_buffered) == (1, 1)
    assert row.commit_time == synth.commit_time(1)


def test_get_block_and_strands(buf: SettlingBuffer, synth: Synth) -> None:
    assert buf.get_block(bid(1)) is None
    assert list(buf.strands()) == []
    put_blocks(buf, synth, [synth.block(1), Synth(strand="StrandT").block(1)])
    buf.put([synth.incoming(Synth(strand="StrandU").block(1).revisions[0])])  # no summary
    assert sorted(buf.strands()) == [(L, S), (L, "StrandT")]
    assert buf.get_block(bid(1, "StrandU")) is None
    block = buf.get_block(bid(1, "StrandT"))
    assert block is not None and block.state == "pending"


def test_control_records_are_stored_once(buf: SettlingBuffer, synth: Synth) -> None:
    created = synth.incoming(synth.control("CREATED"))
    assert buf.put([created]).stored["control"] == 1
    assert buf.put([created]).duplicates == 1
    other_stream = synth.incoming(Synth(arn=SYNTH_ARN_OTHER_STREAM).control("CREATED"))
    assert buf.put([other_stream]).stored["control"] == 1  # a control record names its stream
    assert len(buf.dump()["control"]) == 2


# --- figures --------------------------------------------------------------------------------------


def test_stats_report_counts_oldest_pending_highest_sequence_and_delays(
    buf: SettlingBuffer, synth: Synth
) -> None:
    empty = buf.stats(T0)
    assert empty.oldest_pending_commit is None and list(empty.ingest_delays_ms) == []
    blocks = synth.chain(4)
    buf.put(synth.incomings(blocks[:3], delay=timedelta(milliseconds=1500)))
    buf.put([synth.incoming(blocks[3].summary, arrived_at=synth.commit_time(4) + timedelta(9))])
    buf.put([synth.incoming(Synth().block(12).revisions[0])])
    buf.mark([Mark(block_id=bid(1), state="replayed", at=T0)])
    stats = buf.stats(T0)
    assert stats.oldest_pending_commit == synth.commit_time(2)
    assert stats.highest_sequence_seen == {f"{L}/{S}": 12}
    assert sorted(stats.ingest_delays_ms) == [1500.0, 1500.0, 1500.0, 9 * 86_400_000.0]
    assert stats.blocks["pending"] == 3 and stats.revisions == 4 and stats.statements == 4


def test_stats_counts_match_the_rows(buf: SettlingBuffer, synth: Synth) -> None:
    put_blocks(buf, synth, synth.chain(6))
    buf.put([synth.incoming(_conflicting(synth, 6).summary)], [_REJECTIONS[0]])
    buf.mark([Mark(block_id=bid(1), state="replayed", at=T0)])
    buf.repair(L, S, 3, T0)
    buf.put(synth.incomings([Synth().block(2, docs=[SynthDoc("DocL", 0, {})])])[1:])
    buf.purge_replayed(T0 + timedelta(days=1))
    stats = buf.stats(T0)
    counts = buf.dump()["counts"]
    assert dict(stats.blocks) == counts["blocks"]
    assert (stats.statements, stats.revisions) == (counts["statements"], counts["revisions"])
    assert (stats.rejected, stats.conflicts) == (counts["rejected"], counts["conflicts"])


# --- lease ----------------------------------------------------------------------------------------


def test_the_lease_has_one_owner_until_it_expires(buf: SettlingBuffer) -> None:
    assert buf.acquire_lease("a", 30, T0)
    assert not buf.acquire_lease("b", 30, T0 + timedelta(seconds=10))
    assert buf.acquire_lease("a", 30, T0 + timedelta(seconds=20))  # renewed until T0+50s
    assert not buf.acquire_lease("b", 30, T0 + timedelta(seconds=45))
    assert buf.acquire_lease("b", 30, T0 + timedelta(seconds=51))
    assert not buf.acquire_lease("a", 30, T0 + timedelta(seconds=52))
    buf.release_lease("a")  # not the owner: nothing happens
    assert not buf.acquire_lease("a", 30, T0 + timedelta(seconds=53))
    buf.release_lease("b")
    assert buf.acquire_lease("a", 30, T0 + timedelta(seconds=54))


def test_the_lease_says_who_holds_it_until_when(buf: SettlingBuffer) -> None:
    assert buf.lease() is None
    assert buf.acquire_lease("settle-cli:ops@host:42:ab", 30, T0)
    assert buf.lease() == Lease(
        owner="settle-cli:ops@host:42:ab", expires_at=T0 + timedelta(seconds=30)
    )
    buf.release_lease("settle-cli:ops@host:42:ab")
    assert buf.lease() is None


def test_two_instances_never_both_hold_the_lease(open_buffer: Opener) -> None:
    one, two = open_buffer(), open_buffer()
    results = [one.acquire_lease("one", 60, T0), two.acquire_lease("two", 60, T0)]
    assert results == [True, False]
    one.release_lease("one")
    assert two.acquire_lease("two", 60, T0)


# --- retention, persistence -----------------------------------------------------------------------


def test_retention_purges_replayed_data_but_keeps_headers(
    buf: SettlingBuffer, synth: Synth
) -> None:
    blocks = synth.chain(3)
    put_blocks(buf, synth, blocks)
    buf.mark([Mark(block_id=bid(n), state="replayed", at=T0) for n in (1, 2)])
    assert buf.purge_replayed(synth.commit_time(2)) == 1  # block 2 is not older than that
    assert buf.purge_replayed(synth.commit_time(2) + timedelta(seconds=1)) == 1
    assert buf.purge_replayed(T0 + timedelta(days=1)) == 0  # block 3 is pending
    dump = buf.dump()
    assert [b["sequence_no"] for b in dump["blocks"].values()] == [1, 2, 3]
    assert {s["block_id"] for s in dump["statements"].values()} == {bid(3)}
    assert {r["block_id"] for r in dump["revisions"].values()} == {bid(3)}
    assert buf.stats(T0).revisions == 1
    again = buf.put(synth.incomings(blocks[:2]))  # re-delivered months later
    assert again.duplicates == 4 and again.late == 0 and again.conflicts == 0
    assert buf.dump() == dump


def test_blocks_stats_and_retention_span_every_strand(buf: SettlingBuffer, synth: Synth) -> None:
    """Rows come by ledger, strand and sequence; the oldest pending commit is the earliest of
    any strand's; retention purges in every strand (each store answers these at once, not
    strand by strand)."""
    early = Synth(strand="StrandA", t0=T0 - timedelta(hours=1))
    put_blocks(buf, synth, synth.chain(2))
    put_blocks(buf, early, early.chain(2))
    rows = buf.blocks()
    assert [(r.strand_id, r.sequence_no) for r in rows] == [
        ("StrandA", 1), ("StrandA", 2), (S, 1), (S, 2)
    ]  # fmt: skip
    assert buf.stats(T0).oldest_pending_commit == early.commit_time(1)
    buf.mark([Mark(block_id=bid(1, "StrandA"), state="replayed", at=T0)])
    assert buf.stats(T0).oldest_pending_commit == early.commit_time(2)
    assert [(r.strand_id, r.sequence_no) for r in buf.blocks("pending")] == [
        ("StrandA", 2), (S, 1), (S, 2)
    ]  # fmt: skip
    assert [(r.strand_id, r.sequence_no) for r in buf.blocks("replayed")] == [("StrandA", 1)]
    buf.mark(
        [Mark(block_id=bid(n, s), state="replayed", at=T0) for s in ("StrandA", S) for n in (1, 2)]
    )
    assert buf.stats(T0).oldest_pending_commit is None
    assert (buf.replayed_through(L, "StrandA"), buf.replayed_through(L, S)) == (2, 2)
    assert buf.replayed_through(L, "StrandZ") is None
    assert buf.purge_replayed(T0 + timedelta(days=1)) == 4
    assert buf.purge_replayed(T0 + timedelta(days=1)) == 0
    assert buf.stats(T0).revisions == 0 and buf.stats(T0).statements == 0


def test_a_reopened_buffer_holds_the_same_state(open_buffer: Opener, synth: Synth) -> None:
    first = open_buffer()
    put_blocks(first, synth, synth.chain(3))
    first.mark([Mark(block_id=bid(1), state="replayed", at=T0)])
    first.record_gaps([Gap(ledger=L, strand_id=S, first=5, last=5, passed_at=T0)])
    expected = first.dump()
    first.close()
    second = open_buffer()
    assert second.dump() == expected
    assert second.replayed_through(L, S) == 1
