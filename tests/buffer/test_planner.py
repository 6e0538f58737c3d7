"""``buffer.planner`` on its own: the plan of a put over what a store read, without applying it.
The views are built by hand (``StoreView``) or read from the in-memory store after earlier puts
(``buffer.memory``); what a store does with a plan is in tests/contract."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from buffer import _common as c
from buffer import planner
from buffer.memory import MemoryBuffer
from buffer.port import Incoming, Rejection

from synth import SYNTH_LEDGER, SYNTH_STRAND, SYNTH_T0, Synth, SynthDoc  # isort: skip

pytestmark = pytest.mark.ingest_env

L, S, T0 = SYNTH_LEDGER, SYNTH_STRAND, SYNTH_T0
EMPTY = planner.StoreView()


def bid(seq: int) -> str:
    return f"{L}/{S}/{seq}"


def view_after(stored: Sequence[Incoming], records: Sequence[Incoming]) -> planner.StoreView:
    """The view of ``records`` a memory store gives once ``stored`` was put."""
    buf = MemoryBuffer()
    buf.put(stored)
    with buf.store.atomic(write=False):
        return buf.store.view(records)


def conflict_id(item: Incoming) -> str:
    """The id of the rejection ``item`` makes when it conflicts with the stored copy."""
    return c.conflict_of(item, item.record.record_id).rejection_id


def conflicting(synth: Synth, seq: int) -> Incoming:
    other = synth.block(seq, statements=["INSERT INTO Person ?", "DELETE FROM Person WHERE x = 1"])
    return synth.incoming(other.summary, arrived_at=T0)


def test_a_new_block_is_created_pending_with_its_revisions(synth: Synth) -> None:
    block = synth.block(3, docs=[SynthDoc("DocA", 0, {"a": 1})], statements=["INSERT INTO T ?"])
    records = synth.incomings([block])
    plan = planner.plan(records, (), EMPTY)
    summary = plan.writes[("blocks", bid(3))]
    assert (summary.action, summary.state, summary.item) == ("create", "pending", records[0])
    (revision,) = plan.of_kind("revisions")
    assert (revision.action, revision.late) == ("create", False)
    assert plan.counts == {"blocks.pending": 1, "statements": 1, "revisions": 1}
    assert plan.seen == {(L, S): (3, True)}
    report = plan.report()
    assert report.records == 2
    assert report.stored == {"blocks": 1, "statements": 1, "revisions": 1, "control": 0}
    assert not plan.keep and not plan.forget and not plan.found_stored


def test_the_same_copy_again_is_a_duplicate_and_writes_nothing(synth: Synth) -> None:
    records = synth.incomings([synth.block(3)])
    plan = planner.plan(records, (), view_after(records, records))
    assert plan.writes == {}
    assert plan.counts == {}
    assert plan.report().duplicates == 2
    assert plan.found_stored == {bid(3)}  # found against the stored copy, not a planned one


def test_a_duplicate_that_came_first_replaces_the_stored_provenance(synth: Synth) -> None:
    value = synth.block(3).summary
    later = synth.incoming(value, arrived_at=T0 + timedelta(seconds=5), origin="shard/b")
    earlier = synth.incoming(value, arrived_at=T0, origin="shard/a")
    plan = planner.plan([earlier], (), view_after([later], [earlier]))
    w = plan.writes[("blocks", bid(3))]
    assert (w.action, w.item) == ("provenance", earlier)
    assert plan.counts == {} and plan.report().duplicates == 1


def test_a_later_conflicting_copy_is_kept_as_a_rejection_flagging_its_block(
    synth: Synth,
) -> None:
    stored = synth.incoming(synth.block(5).summary, arrived_at=T0 - timedelta(seconds=1))
    other = conflicting(synth, 5)
    plan = planner.plan([other], (), view_after([stored], [other]))
    assert plan.writes == {}
    (kept,) = plan.keep.values()
    assert (kept.rejection.kind, kept.rejection.raw, kept.block_id) == (
        "conflict",
        other.raw,
        bid(5),
    )
    assert kept.source == bid(5)
    assert plan.against_stored == {("blocks", bid(5))}
    assert plan.report().conflicts == 1


def test_an_earlier_conflicting_copy_replaces_a_pending_block_and_displaces_the_stored_one(
    synth: Synth,
) -> None:
    stored = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=9))
    other = conflicting(synth, 5)  # arrived at T0: first in the stream
    plan = planner.plan([other], (), view_after([stored], [other]))
    w = plan.writes[("blocks", bid(5))]
    assert (w.action, w.state, w.item) == ("replace", "pending", other)
    (kept,) = plan.keep.values()
    assert kept.rejection.raw == stored.raw  # the stored copy becomes the rejection
    assert set(plan.forget) == {conflict_id(other)}  # a conflict kept for this content goes
    assert plan.counts == {"statements": 2}  # no new header; its statements are written again


def test_a_block_at_or_below_the_replayed_mark_or_in_a_passed_gap_is_late(synth: Synth) -> None:
    records = synth.incomings(
        [synth.block(2, docs=[SynthDoc("DocA", 0, {"a": 1})]), synth.block(7)]
    )
    marks = planner.StoreView(strands={(L, S): (3, [(6, 8)])})
    plan = planner.plan(records, (), marks)
    assert plan.writes[("blocks", bid(2))].state == "late"
    assert plan.writes[("blocks", bid(7))].state == "late"
    revisions = plan.of_kind("revisions")
    assert len(revisions) == len(records) - 2
    assert all(r.late for r in revisions)  # their blocks are not pending (planned late)
    assert plan.counts["blocks.late"] == 2 and "blocks.pending" not in plan.counts
    assert plan.report().late == len(records)
    beyond = planner.plan(synth.incomings([synth.block(4)]), (), marks)
    assert beyond.writes[("blocks", bid(4))].state == "pending"


def test_a_control_record_is_stored_once(synth: Synth) -> None:
    created = synth.incoming(synth.control("CREATED"))
    plan = planner.plan([created], (), EMPTY)
    (w,) = plan.writes.values()
    assert (w.kind, w.action) == ("control", "create")
    assert plan.counts == {"control": 1} and plan.seen == {}
    again = planner.plan([created], (), view_after([created], [created]))
    assert again.writes == {} and again.report().duplicates == 1


def test_copies_in_one_call_see_each_other_as_across_calls(synth: Synth) -> None:
    value = synth.block(4).summary
    first = synth.incoming(value, arrived_at=T0, origin="shard/a")
    second = synth.incoming(value, arrived_at=T0 + timedelta(seconds=1), origin="shard/b")
    other = synth.incoming(
        synth.block(4, statements=["DELETE FROM Person WHERE x = 1"]).summary,
        arrived_at=T0 + timedelta(seconds=2),
    )
    plans = [
        planner.plan(order, (), EMPTY) for order in ([second, other, first], [first, second, other])
    ]
    for plan in plans:
        (w,) = plan.writes.values()
        assert (w.action, w.item) == ("create", first)  # one write: the earliest copy
        assert plan.counts == {"blocks.pending": 1, "statements": 1}
        report = plan.report()
        assert (report.records, report.stored["blocks"], report.duplicates, report.conflicts) == (
            3, 1, 1, 1,
        )  # fmt: skip
        (kept,) = plan.keep.values()
        assert kept.rejection.raw == other.raw
        # planned in this call, not found against the stored copy
        assert not plan.found_stored and not plan.against_stored
    assert plans[0].keep.keys() == plans[1].keep.keys()


def test_rejections_given_are_kept_and_counted_once_by_the_earliest_copy(synth: Synth) -> None:
    late = Rejection(origin="b", raw=b"\x00", kind="ion", reason="bad", arrived_at=T0)
    early = Rejection(origin="a", raw=b"\x00", kind="ion", reason="bad", arrived_at=T0)
    plan = planner.plan([], [late, early], EMPTY)
    (kept,) = plan.keep.values()
    assert kept.rejection is early and kept.block_id is None and kept.source is None
    assert (plan.report().records, plan.report().rejected) == (2, 2)
