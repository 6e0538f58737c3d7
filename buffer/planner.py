"""What one ``put`` does to what is stored, planned once for every store, without I/O.

A store reads, up front and in batches, what the put's records need (``StoreView``: the stored
copies of their ids by kind, the headers of the blocks they name, the marks of their strands) and
hands it with the records and rejections to ``plan``. ``plan`` decides each copy with
``buffer.put_policy`` (summaries first, then revisions, then control records, each kind in copy
order, so the outcome does not depend on the order the records came in) against the view *and*
the overlay of what earlier copies of the same call planned (``_Overlay``: a second copy of an id
in one call sees the first exactly as it would across calls), and returns a ``PutPlan``:

- ``writes``: one ``Write`` per record id the put changes: ``create`` (a new record, with its state
  and lateness), ``replace`` (a conflicting copy that came first displaces the stored one; the
  block's mark, its reason, actor and time, stays: it is about the block, not a copy) or
  ``provenance`` (a duplicate that came first: its raw bytes, origin, arrival and ARN replace the
  stored copy's); several copies of one id in a call fold into one write;
- ``keep`` / ``forget``: the rejections to keep (the earliest copy of each ``rejection_id``, with
  the block it flags and the record whose decision made it) and those to drop (a conflict kept
  for content that is the stored copy now);
- ``seen``: per strand, the highest sequence number written and whether a block was;
- ``counts``: the rows the writes create, by counter name (``blocks.pending``, ``statements``, …);
- ``reports``: the ``PutReport`` counts of each record id (``PutPlan.report`` sums them), so a
  store that re-plans ids another writer changed meanwhile counts them once;
- ``found_stored`` / ``against_stored``: the summaries found duplicates of, and the records found
  conflicting with, the stored copy as read (not one this call planned): a store without
  transactions checks those afterwards.

The store applies the plan in its storage: SQLite in its one transaction with ``executemany``
(``buffer.sqlite_put``), OpenSearch as bulk create and compare-and-set requests
(``buffer.opensearch_put``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from buffer import _common as c
from buffer import put_policy as policy
from buffer.port import BlockState, Incoming, PutReport, Rejection
from journal.records import BlockSummary, ControlRecord, RevisionDetails

Kind = Literal["blocks", "revisions", "control"]
Action = Literal["create", "replace", "provenance"]


@dataclass(frozen=True, slots=True)
class StoredRevision:
    """A stored revision: its copy, the block it belongs to, whether it was stored late."""

    copy: policy.StoredCopy
    block_id: str
    late: bool


@dataclass(frozen=True, slots=True)
class StoreView:
    """What the store holds for the ids of one put, read up front. ``headers`` holds every block
    the put's records name (and the blocks of their stored revisions) that is stored; ``strands``
    the marks of every strand they name (a strand absent has no mark and no gaps)."""

    summaries: Mapping[str, policy.StoredCopy] = field(default_factory=dict)  # by block id
    headers: Mapping[str, policy.Header] = field(default_factory=dict)
    revisions: Mapping[str, StoredRevision] = field(default_factory=dict)
    controls: Mapping[str, policy.StoredCopy] = field(default_factory=dict)
    strands: Mapping[tuple[str, str], policy.StrandMarks] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Wanted:
    """What a store reads for the view of ``records``: the block ids of their summaries, their
    revisions (whose ids and blocks are read, and the blocks of their stored copies), the ids
    of their control records and the strands they name (sorted)."""

    summaries: list[str]
    revisions: list[RevisionDetails]
    controls: list[str]
    strands: list[tuple[str, str]]

    @classmethod
    def of(cls, records: Sequence[Incoming]) -> Wanted:
        recs = [i.record for i in records]
        return cls(
            summaries=[r.record_id for r in recs if isinstance(r, BlockSummary)],
            revisions=[r for r in recs if isinstance(r, RevisionDetails)],
            controls=[r.record_id for r in recs if isinstance(r, ControlRecord)],
            strands=sorted(
                {
                    (r.ledger, r.address.strand_id)
                    for r in recs
                    if isinstance(r, BlockSummary | RevisionDetails)
                }
            ),
        )

    def blocks(self, stored_revision_blocks: Iterable[str]) -> list[str]:
        """The block ids whose headers the view holds, given the blocks of the stored copies of
        the revisions."""
        return [*self.summaries, *(r.block_id for r in self.revisions), *stored_revision_blocks]


@dataclass(slots=True)
class Write:
    """What the put writes for one record id: ``item`` is the copy written (all of it for
    ``create`` and ``replace``, its provenance for ``provenance``)."""

    kind: Kind
    record_id: str
    item: Incoming
    action: Action
    state: BlockState = "pending"  # a summary's block state
    late: bool = False  # a revision stored late

    @property
    def record(self) -> BlockSummary | RevisionDetails | ControlRecord:
        return self.item.record


@dataclass(frozen=True, slots=True)
class KeptRejection:
    """A rejection to keep, the block it flags, and the record whose decision made it (None: a
    rejection given to ``put``)."""

    rejection: Rejection
    block_id: str | None
    source: str | None


@dataclass(slots=True)
class PutPlan:
    """What one ``put`` writes (the module docstring)."""

    writes: dict[tuple[Kind, str], Write] = field(default_factory=dict)
    keep: dict[str, KeptRejection] = field(default_factory=dict)
    forget: dict[str, str] = field(default_factory=dict)  # rejection id -> record id
    seen: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    reports: dict[str, PutReport] = field(default_factory=dict)
    rejected_input: int = 0
    found_stored: set[str] = field(default_factory=set)
    against_stored: set[tuple[Kind, str]] = field(default_factory=set)

    def of_kind(self, kind: Kind) -> list[Write]:
        return [w for (k, _), w in self.writes.items() if k == kind]

    def report(self, dropped: Collection[str] = ()) -> PutReport:
        """The counts of every record but those of ``dropped`` ids (to be planned again), and
        of the rejections given to ``put``."""
        out = PutReport(records=self.rejected_input, rejected=self.rejected_input)
        for record_id, counted in self.reports.items():
            if record_id not in dropped:
                out.add(counted)
        return out


class _Overlay:
    """The store as the plan leaves it so far: the view, then what earlier copies planned."""

    def __init__(self, view: StoreView, plan: PutPlan, keys: Mapping[int, c.CopyKey]) -> None:
        self.view = view
        self.plan = plan
        self.keys = keys  # each copy's ``incoming_key``, by ``id`` of the item (computed once)
        self.copies: dict[tuple[Kind, str], policy.StoredCopy] = {}
        self.headers: dict[str, policy.Header] = {}
        self.revisions: dict[str, tuple[str, bool]] = {}  # planned revision -> (block, late)

    def copy(self, kind: Kind, record_id: str) -> policy.StoredCopy | None:
        planned = self.copies.get((kind, record_id))
        if planned is not None:
            return planned
        view = self.view
        if kind == "blocks":
            return view.summaries.get(record_id)
        if kind == "revisions":
            stored = view.revisions.get(record_id)
            return None if stored is None else stored.copy
        return view.controls.get(record_id)

    def header(self, block_id: str) -> policy.Header | None:
        planned = self.headers.get(block_id)
        return planned if planned is not None else self.view.headers.get(block_id)

    def revision(self, record_id: str) -> tuple[str, bool] | None:
        """(block, late) of the revision as it is stored or planned."""
        planned = self.revisions.get(record_id)
        if planned is not None:
            return planned
        stored = self.view.revisions.get(record_id)
        return None if stored is None else (stored.block_id, stored.late)

    def planned(self, kind: Kind, record_id: str) -> bool:
        """A copy of this id is created or replaced by this plan (not the stored one as read)."""
        w = self.plan.writes.get((kind, record_id))
        return w is not None and w.action != "provenance"

    def strand(self, ledger: str, strand_id: str) -> policy.StrandMarks:
        return self.view.strands.get((ledger, strand_id), (None, []))

    def write(self, kind: Kind, record_id: str, item: Incoming, action: Action) -> Write:
        """Plan a write of ``item`` for the id, folded into an earlier write of the same id."""
        key = (kind, record_id)
        self.copies[key] = _copy_of(item, self.keys[id(item)])
        w = self.plan.writes.get(key)
        if w is None:
            w = self.plan.writes[key] = Write(kind, record_id, item, action)
        else:
            w.item = item
            if action != "provenance":
                w.action = action if w.action == "provenance" else w.action
        return w


def _copy_of(item: Incoming, key: c.CopyKey) -> policy.StoredCopy:
    return policy.StoredCopy(
        fingerprint=item.fingerprint,
        key=key,
        origin=item.origin,
        arrived_us=c.opt_us(item.arrived_at),
        raw=lambda: item.raw,
    )


def plan(
    records: Sequence[Incoming],
    rejections: Sequence[Rejection],
    view: StoreView,
    *,
    again: bool = False,
) -> PutPlan:
    """Plan a put of ``records`` and ``rejections`` over ``view`` (the module docstring).
    ``again``: a later round of a store that re-plans ids another writer changed meanwhile; a
    copy settled as the stored content then also drops the conflict an earlier round may have
    kept for it."""
    out = PutPlan()
    # Each copy's key (its arrival, origin, fingerprint and the SHA-256 of its bytes) once: it
    # orders the copies here and is the key of the copy each planned write leaves.
    keys = {id(i): c.incoming_key(i) for i in records}
    o = _Overlay(view, out, keys)
    summaries: list[Incoming] = []
    revisions: list[Incoming] = []
    controls: list[Incoming] = []
    for i in records:
        rec = i.record
        if isinstance(rec, BlockSummary):
            summaries.append(i)
        elif isinstance(rec, RevisionDetails):
            revisions.append(i)
        elif isinstance(rec, ControlRecord):
            controls.append(i)
        else:  # pragma: no cover
            raise TypeError("not a stream record")

    def in_copy_order(items: list[Incoming]) -> list[Incoming]:
        return sorted(items, key=lambda i: keys[id(i)])

    for item in in_copy_order(summaries):
        _summary(o, item, again)
    for item in in_copy_order(revisions):
        _revision(o, item, again)
    for item in in_copy_order(controls):
        _control(o, item, again)
    for r in rejections:
        out.rejected_input += 1
        _keep(out, r, None, None)
    return out


def _count(out: PutPlan, record_id: str) -> PutReport:
    report = out.reports.get(record_id)
    if report is None:
        report = out.reports[record_id] = PutReport()
    report.records += 1
    return report


def _keep(out: PutPlan, r: Rejection, block_id: str | None, source: str | None) -> None:
    rid = r.rejection_id
    out.forget.pop(rid, None)
    known = out.keep.get(rid)
    if known is None:
        out.keep[rid] = KeptRejection(r, block_id, source)
    elif c.rejection_key(r) < c.rejection_key(known.rejection):
        out.keep[rid] = KeptRejection(r, known.block_id, known.source)


def _forget(out: PutPlan, r: Rejection, source: str) -> None:
    """This content is the stored copy now (it came first): the conflicts kept for its other
    copies, while a later copy was stored, are duplicates now."""
    rid = r.rejection_id
    out.keep.pop(rid, None)
    out.forget[rid] = source


def _settle(out: PutPlan, d: policy.Decision, item: Incoming, record_id: str, again: bool) -> None:
    """The rejections a decision keeps and drops."""
    if again and (d.writes_copy or d.verdict.startswith("duplicate")) and d.forget is None:
        # A later round: a conflict kept for this content by a round that saw another copy
        # stored must go.
        _forget(out, c.conflict_of(item, record_id), record_id)
    if d.keep is not None:
        _keep(out, d.keep, d.block, record_id)
    if d.forget is not None:
        _forget(out, d.forget, record_id)


def _see(out: PutPlan, ledger: str, strand_id: str, seq: int, block: bool) -> None:
    old = out.seen.get((ledger, strand_id), (-1, False))
    out.seen[(ledger, strand_id)] = (max(old[0], seq), old[1] or block)


def _summary(o: _Overlay, item: Incoming, again: bool) -> None:
    summary = item.record
    assert isinstance(summary, BlockSummary)
    out, block_id = o.plan, summary.block_id
    stored = o.copy("blocks", block_id)
    header = o.header(block_id) if stored is not None else None
    d = policy.decide_summary(
        item,
        summary,
        stored,
        state=None if header is None else header.state,
        purged=header is not None and header.purged,
        strand=lambda: o.strand(summary.ledger, summary.address.strand_id),
    )
    d.count(_count(out, block_id), "blocks", len(summary.statements))
    planned = o.planned("blocks", block_id)
    v = d.verdict
    if v in ("stored", "late", "conflict-earlier"):
        state: BlockState = "late" if v == "late" else "pending"
        w = o.write("blocks", block_id, item, "create" if stored is None else "replace")
        w.state = state
        # not purged: a header's body is read only for a purged block
        o.headers[block_id] = policy.Header(state, False, {}, summary.stream.arn)
        _see(out, summary.ledger, summary.address.strand_id, summary.address.sequence_no, True)
        if stored is None:
            out.counts[f"blocks.{state}"] += 1
        out.counts["statements"] += len(summary.statements)
    elif v == "duplicate-earlier":
        o.write("blocks", block_id, item, "provenance")
    if v.startswith("duplicate") and not planned:
        out.found_stored.add(block_id)
    if v == "conflict" and not planned:
        out.against_stored.add(("blocks", block_id))
    _settle(out, d, item, block_id, again)


def _revision(o: _Overlay, item: Incoming, again: bool) -> None:
    rev = item.record
    assert isinstance(rev, RevisionDetails)
    out, record_id = o.plan, rev.record_id
    stored = o.copy("revisions", record_id)
    where = o.revision(record_id) if stored is not None else None
    stored_block = None if where is None else where[0]
    header = o.header(rev.block_id)
    d = policy.decide_revision(
        item,
        rev,
        stored,
        stored_late=where is not None and where[1],
        stored_block=stored_block,
        header=header,
        stored_header=policy.stored_header_of(rev, stored_block, header, o.header),
        strand=lambda: o.strand(rev.ledger, rev.address.strand_id),
    )
    d.count(_count(out, record_id), "revisions")
    planned = o.planned("revisions", record_id)
    v = d.verdict
    if d.writes_copy:
        late = v == "late"
        w = o.write("revisions", record_id, item, "create" if stored is None else "replace")
        w.late = late
        o.revisions[record_id] = (rev.block_id, late)
        _see(out, rev.ledger, rev.address.strand_id, rev.address.sequence_no, False)
        if stored is None:
            out.counts["revisions"] += 1
    elif v == "duplicate-earlier":
        o.write("revisions", record_id, item, "provenance")
    if v == "conflict" and not planned:
        out.against_stored.add(("revisions", record_id))
    if v != "purged-duplicate":
        _settle(out, d, item, record_id, again)


def _control(o: _Overlay, item: Incoming, again: bool) -> None:
    control = item.record
    assert isinstance(control, ControlRecord)
    out, record_id = o.plan, control.record_id
    stored = o.copy("control", record_id)
    d = policy.decide_control(item, control, stored)
    d.count(_count(out, record_id), "control")
    planned = o.planned("control", record_id)
    v = d.verdict
    if d.writes_copy:
        o.write("control", record_id, item, "create" if stored is None else "replace")
        if stored is None:
            out.counts["control"] += 1
    elif v == "duplicate-earlier":
        o.write("control", record_id, item, "provenance")
    if v == "conflict" and not planned:
        out.against_stored.add(("control", record_id))
    _settle(out, d, item, record_id, again)
