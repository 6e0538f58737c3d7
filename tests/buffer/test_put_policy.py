"""``buffer.put_policy`` on its own: what a copy does to what is stored, without a store. The
stores' behaviour (which applies these decisions) is in tests/contract."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from buffer import _common as c
from buffer.port import Incoming, PutReport
from buffer.put_policy import (
    Decision,
    Header,
    StoredCopy,
    StrandMarks,
    decide_control,
    decide_revision,
    decide_summary,
    stored_header_of,
)
from journal.records import BlockSummary, ControlRecord, RevisionDetails

from synth import SYNTH_T0, Synth, SynthDoc  # isort: skip

pytestmark = pytest.mark.ingest_env

T0 = SYNTH_T0
NO_STRAND: StrandMarks = (None, [])


def _stored(item: Incoming, *, raw_read: list[bytes] | None = None) -> StoredCopy:
    def raw() -> bytes:
        if raw_read is None:
            raise AssertionError("the stored copy's bytes were read though nothing displaced it")
        raw_read.append(item.raw)
        return item.raw

    return StoredCopy(
        fingerprint=item.fingerprint,
        key=c.incoming_key(item),
        origin=item.origin,
        arrived_us=c.opt_us(item.arrived_at),
        raw=raw,
    )


def _no_strand() -> StrandMarks:
    raise AssertionError("the strand's marks were read for a copy of a stored id")


def _summary(item: Incoming) -> BlockSummary:
    assert isinstance(item.record, BlockSummary)
    return item.record


def _other_summary(synth: Synth, seq: int) -> dict[str, Any]:
    """Block ``seq`` again, with other content (another statement list)."""
    return synth.block(seq, statements=["INSERT INTO Person ?", "DELETE FROM Person"]).summary


def test_a_new_summary_is_stored_unless_its_strand_was_replayed_past_it(synth: Synth) -> None:
    item = synth.incoming(synth.block(5).summary)
    summary = _summary(item)

    def decide(marks: StrandMarks) -> Decision:
        return decide_summary(item, summary, None, state=None, purged=False, strand=lambda: marks)

    assert decide(NO_STRAND).verdict == "stored"
    assert decide((4, [])).verdict == "stored"
    assert decide((5, [])).verdict == "late"
    assert decide((None, [(3, 6)])).verdict == "late"
    report = PutReport()
    decide(NO_STRAND).count(report, "blocks", len(summary.statements))
    decide((9, [])).count(report, "blocks", len(summary.statements))
    assert report.stored["blocks"] == 1 and report.stored["statements"] == 1
    assert report.late == 1


def test_copies_of_a_stored_summary(synth: Synth) -> None:
    first = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=5))
    summary = _summary(first)
    same_later = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=9))
    same_earlier = synth.incoming(synth.block(5).summary, arrived_at=T0, origin="shard-0/1")
    other_later = synth.incoming(_other_summary(synth, 5), arrived_at=T0 + timedelta(seconds=9))
    other_earlier = synth.incoming(_other_summary(synth, 5), arrived_at=T0)

    def decide(item: Incoming, state: str = "pending", purged: bool = False) -> object:
        read: list[bytes] = []
        d = decide_summary(
            item,
            summary,
            _stored(first, raw_read=read),
            state=state,
            purged=purged,
            strand=_no_strand,
        )
        return d.verdict, read

    assert decide(same_later) == ("duplicate", [])
    assert decide(same_earlier) == ("duplicate-earlier", [])
    assert decide(other_later) == ("conflict", [])
    assert decide(other_earlier) == ("conflict-earlier", [first.raw])
    # a released or purged block keeps its copy whatever arrives
    assert decide(other_earlier, state="replayed") == ("conflict", [])
    assert decide(other_earlier, purged=True) == ("conflict", [])


def test_a_conflict_keeps_this_copy_and_an_earlier_conflict_the_stored_one(synth: Synth) -> None:
    first = synth.incoming(synth.block(5).summary, arrived_at=T0 + timedelta(seconds=5))
    summary = _summary(first)
    later = synth.incoming(_other_summary(synth, 5), arrived_at=T0 + timedelta(seconds=9))
    earlier = synth.incoming(_other_summary(synth, 5), arrived_at=T0, origin="shard-1/1")
    stored = _stored(first, raw_read=[])
    d = decide_summary(later, summary, stored, state="pending", purged=False, strand=_no_strand)
    assert d.keep == c.conflict_of(later, summary.block_id)
    assert (d.block, d.forget, d.writes_copy) == (summary.block_id, None, False)
    d = decide_summary(earlier, summary, stored, state="pending", purged=False, strand=_no_strand)
    assert d.keep is not None and d.keep.raw == first.raw and d.keep.origin == first.origin
    assert d.keep.arrived_at == first.arrived_at and d.keep.record_id == summary.block_id
    assert d.forget == c.conflict_of(earlier, summary.block_id)
    assert d.block == summary.block_id and d.writes_copy
    report = PutReport()
    d.count(report, "blocks", 3)
    assert report.conflicts == 1 and report.stored["blocks"] == 0


def test_a_new_revision_of_a_pending_block_is_never_late(synth: Synth) -> None:
    block = synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 1})])
    item = synth.incoming(block.revisions[0])
    rev = item.record
    assert isinstance(rev, RevisionDetails)
    body = c.summary_body(_summary(synth.incoming(block.summary)))

    def decide(header: Header | None, marks: StrandMarks) -> str:
        return decide_revision(
            item,
            rev,
            None,
            stored_late=False,
            stored_block=None,
            header=header,
            stored_header=None,
            strand=lambda: marks,
        ).verdict

    pending = Header("pending", False, body, rev.stream.arn)
    assert decide(pending, (9, [])) == "stored"
    assert decide(None, (9, [])) == "late"
    assert decide(None, NO_STRAND) == "stored"
    assert decide(Header("replayed", False, body, rev.stream.arn), (9, [])) == "late"
    # retention purged the block: its summary still names this revision, so it is a duplicate
    assert decide(Header("replayed", True, body, rev.stream.arn), (9, [])) == "purged-duplicate"
    other = synth.incoming(synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 2})]).summary)
    other_body = c.summary_body(_summary(other))
    assert decide(Header("replayed", True, other_body, rev.stream.arn), (9, [])) == "late"


def test_an_earlier_conflicting_revision_replaces_only_an_open_copy(synth: Synth) -> None:
    stored_in = synth.incoming(
        synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 1})]).revisions[0],
        arrived_at=T0 + timedelta(seconds=9),
    )
    earlier = synth.incoming(
        synth.block(7, docs=[SynthDoc("DocC", 0, {"v": 2})]).revisions[0], arrived_at=T0
    )
    rev = earlier.record
    assert isinstance(rev, RevisionDetails)
    open_, released = Header("pending", False, {}, ""), Header("replayed", False, {}, "")

    def decide(
        *, stored_late: bool = False, header: Header | None = None, stored: Header | None = None
    ) -> str:
        d = decide_revision(
            earlier,
            rev,
            _stored(stored_in, raw_read=[]),
            stored_late=stored_late,
            stored_block="other-block",
            header=header,
            stored_header=stored,
            strand=_no_strand,
        )
        if d.verdict == "conflict-earlier":
            assert d.block == "other-block"  # the displaced copy flags the block it belonged to
        return d.verdict

    assert decide() == "conflict-earlier"
    assert decide(header=open_, stored=open_) == "conflict-earlier"
    assert decide(stored_late=True) == "conflict"
    assert decide(header=released) == "conflict"
    assert decide(stored=released) == "conflict"

    # The stored copy's header: its own block's unless another block claimed the id first.
    asked: list[str] = []

    def header_of(block_id: str) -> Header:
        asked.append(block_id)
        return released

    assert stored_header_of(rev, None, open_, header_of) is open_
    assert stored_header_of(rev, rev.block_id, open_, header_of) is open_
    assert asked == []  # the header of the block the revision names is not read again
    assert stored_header_of(rev, "other-block", open_, header_of) is released
    assert asked == ["other-block"]


def test_control_records(synth: Synth) -> None:
    first = synth.incoming(synth.control("CREATED"), arrived_at=T0 + timedelta(seconds=5))
    control = first.record
    assert isinstance(control, ControlRecord)
    assert decide_control(first, control, None).verdict == "stored"
    same_earlier = synth.incoming(synth.control("CREATED"), arrived_at=T0, origin="shard-0/1")
    assert decide_control(same_earlier, control, _stored(first)).verdict == "duplicate-earlier"
    assert decide_control(first, control, _stored(first)).verdict == "duplicate"
    report = PutReport()
    for item in (first, same_earlier):
        decide_control(item, control, _stored(first)).count(report, "control")
    decide_control(first, control, None).count(report, "control")
    assert (report.duplicates, report.stored["control"], report.conflicts) == (2, 1, 0)
