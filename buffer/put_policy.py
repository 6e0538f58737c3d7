"""What ``put`` does with one copy of a record, decided once for every adapter, without I/O.

Given a copy (``Incoming``) and what the store holds for its id (``StoredCopy``, None when the id
is absent, plus the block headers and the strand marks a record kind needs), ``decide_summary``,
``decide_revision`` and ``decide_control`` say what happens to it (``Decision.verdict``):

- ``stored``: a new record, written; ``late``: a new record written as late (its block is at or
  below the strand's replayed mark or in a passed gap, ``_common.is_late``);
- ``duplicate``: same content as the stored copy, nothing written; ``purged-duplicate``: a revision
  whose block was purged by retention while its summary still names the revision's hash;
- ``duplicate-earlier``: same content, this copy came first: its provenance replaces the stored
  copy's (raw bytes, origin, arrival, ARN);
- ``conflict``: other content, this copy is kept as a rejection (``Decision.keep``) flagging
  ``Decision.block``;
- ``conflict-earlier``: other content, this copy came first while the stored one may still be
  replaced: this copy is written, the stored one becomes the rejection (``keep``), and the
  rejection kept earlier for this copy's content (``forget``) is dropped.

``Decision.count`` adds the copy to the ``PutReport``. Each adapter keeps its reads by id, the
overlay of what earlier copies of the same call planned, and the writes a verdict means in its
storage (a SQLite transaction, OpenSearch bulk and compare-and-set requests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from buffer import _common as c
from buffer.port import Incoming, PutReport, Rejection
from journal.records import BlockSummary, ControlRecord, RevisionDetails

Verdict = Literal[
    "stored", "late", "duplicate", "purged-duplicate", "duplicate-earlier", "conflict",
    "conflict-earlier",
]  # fmt: skip
StrandMarks = tuple[int | None, list[tuple[int, int]]]  # replayed mark, passed gaps (first, last)


@dataclass(frozen=True, slots=True)
class StoredCopy:
    """The stored copy of a record id, as the policy compares it; ``raw`` gives its bytes (read
    only when the copy is displaced: an adapter may have to fetch them)."""

    fingerprint: str
    key: c.CopyKey
    origin: str
    arrived_us: int | None
    raw: Callable[[], bytes]


@dataclass(frozen=True, slots=True)
class Header:
    """A stored block header, as a revision's classification needs it: its state, whether
    retention purged it, and its summary body (``_common.summary_body``) with the stream's ARN."""

    state: str
    purged: bool
    body: Mapping[str, Any] | str
    arn: str

    @property
    def open(self) -> bool:
        """Its records may still be replaced by an earlier copy (not released, not purged)."""
        return self.state == "pending" and not self.purged


@dataclass(frozen=True, slots=True)
class Decision:
    """What ``put`` does with one copy (the module docstring)."""

    verdict: Verdict
    keep: Rejection | None = None  # the rejection to keep (conflict, conflict-earlier)
    block: str | None = None  # the block ``keep`` flags
    forget: Rejection | None = None  # the rejection to drop (conflict-earlier)

    @property
    def writes_copy(self) -> bool:
        """This copy is written as the stored one (new, or replacing a later conflicting copy)."""
        return self.verdict in ("stored", "late", "conflict-earlier")

    def count(self, report: PutReport, stored_as: str, statements: int = 0) -> None:
        """Add this copy to ``report``; ``stored_as`` names its kind in ``report.stored``
        (``statements``: a block summary's, counted with it)."""
        v = self.verdict
        if v == "stored":
            report.stored[stored_as] += 1
            if stored_as == "blocks":
                report.stored["statements"] += statements
        elif v == "late":
            report.late += 1
        elif v in ("duplicate", "purged-duplicate", "duplicate-earlier"):
            report.duplicates += 1
        else:
            report.conflicts += 1


def _compare(
    item: Incoming,
    record_id: str,
    stored: StoredCopy,
    *,
    replaceable: bool,
    block: str | None,
    stored_block: str | None,
) -> Decision:
    outcome = c.classify_copy(
        stored_fingerprint=stored.fingerprint,
        stored_key=stored.key,
        fingerprint=item.fingerprint,
        key=c.incoming_key(item),
        replaceable=replaceable,
    )
    if outcome == "conflict":
        return Decision("conflict", keep=c.conflict_of(item, record_id), block=block)
    if outcome == "conflict-earlier":
        displaced = c.conflict_rejection(
            record_id=record_id,
            fingerprint=stored.fingerprint,
            raw=stored.raw(),
            origin=stored.origin,
            arrived_at=c.opt_from_us(stored.arrived_us),
        )
        return Decision(
            "conflict-earlier",
            keep=displaced,
            block=stored_block,
            forget=c.conflict_of(item, record_id),
        )
    return Decision(outcome)


def decide_summary(
    item: Incoming,
    summary: BlockSummary,
    stored: StoredCopy | None,
    *,
    state: str | None,
    purged: bool,
    strand: Callable[[], StrandMarks],
) -> Decision:
    """A block summary's copy; ``state`` and ``purged`` are the stored header's, ``strand`` gives
    its strand's marks (read only for a new summary)."""
    if stored is None:
        mark, gaps = strand()
        return Decision("late" if c.is_late(summary.address.sequence_no, mark, gaps) else "stored")
    block = summary.block_id
    return _compare(
        item,
        block,
        stored,
        replaceable=state == "pending" and not purged,
        block=block,
        stored_block=block,
    )


def decide_revision(
    item: Incoming,
    rev: RevisionDetails,
    stored: StoredCopy | None,
    *,
    stored_late: bool,
    stored_block: str | None,
    header: Header | None,
    stored_header: Header | None,
    strand: Callable[[], StrandMarks],
) -> Decision:
    """A revision's copy; ``header`` is the header of the block it names, ``stored_block`` and
    ``stored_header`` the block the stored copy belongs to and its header (the same block but
    when two blocks claim one revision id), ``stored_late`` whether the stored copy is late."""
    if stored is None:
        if header is not None and header.purged:
            summary = c.summary_from_body(header.body, header.arn)
            if c.user_revision_hashes(summary).get(rev.document_id) == rev.hash:
                return Decision("purged-duplicate")
        mark, gaps = strand()
        pending = header is not None and header.state == "pending"
        late = not pending and c.is_late(rev.address.sequence_no, mark, gaps)
        return Decision("late" if late else "stored")
    replaceable = (
        not stored_late
        and (stored_header is None or stored_header.open)
        and (header is None or header.open)
    )
    return _compare(
        item,
        rev.record_id,
        stored,
        replaceable=replaceable,
        block=rev.block_id,
        stored_block=stored_block,
    )


def stored_header_of(
    rev: RevisionDetails,
    stored_block: str | None,
    header: Header | None,
    header_of: Callable[[str], Header | None],
) -> Header | None:
    """The header ``decide_revision`` takes as ``stored_header``: that of the block the stored
    copy belongs to (``stored_block``), which is ``header`` (the block ``rev`` names) unless
    another block claimed the revision id first; ``header_of`` reads that block's header."""
    if stored_block is None or stored_block == rev.block_id:
        return header
    return header_of(stored_block)


def decide_control(item: Incoming, control: ControlRecord, stored: StoredCopy | None) -> Decision:
    """A control record's copy (always replaceable: it belongs to no block)."""
    if stored is None:
        return Decision("stored")
    return _compare(
        item, control.record_id, stored, replaceable=True, block=None, stored_block=None
    )
