"""``OpenSearchBuffer.put``: classify each copy against the stored one and write what that means.

One round of a put reads, in one real-time ``_mget``, every document the classification needs
(the stored copies by id, the headers of the blocks the revisions name, the strands' meta
documents and the statements of every summary), decides each copy with ``buffer.put_policy``
against that and against what earlier copies of the same call planned (``_Slot``: the overlay of
one document; ``_Plan``: the round), and writes the plan in one ``_bulk`` per chunk
(create-if-absent, conditional replaces and updates). Ids another writer changed meanwhile are
classified again in the next round; rejections are kept by ``buffer.opensearch_rejections`` and
statements written by ``buffer.opensearch_statements``. The guarantees: ``buffer.opensearch``'s
docstring.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from buffer import _common as c
from buffer import opensearch_documents as documents
from buffer import put_policy as policy
from buffer.opensearch_client import OpenSearchError
from buffer.opensearch_rejections import Rejections
from buffer.opensearch_requests import (
    HEADER_LIGHT,
    MAX_RACES,
    NO_SOURCE,
    Action,
    Hit,
    Requests,
    item_reason,
    strand_doc_id,
    unb64,
)
from buffer.opensearch_statements import Statements
from buffer.port import BlockState, Incoming, PutReport, Rejection
from journal.records import BlockSummary, ControlRecord, RevisionDetails
from runtime.errors import TransientError


@dataclass(slots=True)
class _Slot:
    """One document a ``put`` may write: what is stored, and what this call plans for it."""

    index: str
    doc_id: str
    stored: Hit | None  # the stored document (``_source``, ``_seq_no``, ``_primary_term``)
    source: dict[str, Any] | None = None  # the planned document (None: as stored)
    action: Literal["create", "update", "replace"] | None = None
    changes: dict[str, Any] = field(default_factory=dict)  # fields of an "update"

    @property
    def current(self) -> dict[str, Any] | None:
        """The document as it will be once the plan is written."""
        if self.source is not None:
            return self.source
        if self.stored is None:
            return None
        return {**self.stored["_source"], **self.changes}

    def plan_create(self, source: dict[str, Any]) -> None:
        self.source = source
        self.action = "create" if self.stored is None else "replace"
        self.changes = {}

    def plan_update(self, changes: Mapping[str, Any]) -> None:
        if self.source is not None:
            self.source.update(changes)
        else:
            self.changes.update(changes)
            self.action = "update"


@dataclass(slots=True)
class _Plan:
    """What one round of a ``put`` writes, and how it counts each record."""

    write_id: str
    slots: dict[tuple[str, str], _Slot] = field(default_factory=dict)
    # rejection id -> (rejection, block it flags, record id whose classification made it)
    rejections: dict[str, tuple[Rejection, str | None, str]] = field(default_factory=dict)
    forget: dict[str, str] = field(default_factory=dict)  # rejection id -> record id
    # record id -> (index, seq_no, primary_term) of the stored copy a conflict was decided against
    against: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    again: bool = False  # a later round, for records another writer changed meanwhile
    reports: dict[str, PutReport] = field(default_factory=dict)  # record id -> its counts
    statements_of: dict[str, str] = field(default_factory=dict)  # block id -> "write" | "kinds"
    # blocks stored with statements (partly) missing: written again from their header
    heal: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)  # statement ids found by the classifying mget
    # each strand's replayed mark and passed gaps, from its meta document (read by the same mget)
    strands: dict[tuple[str, str], policy.StrandMarks] = field(default_factory=dict)

    def count(self, record_id: str) -> PutReport:
        """The counts of one record id (a raced id is counted again in the next round)."""
        report = self.reports.get(record_id)
        if report is None:
            report = self.reports[record_id] = PutReport()
        report.records += 1
        return report

    def conflicted(self, record_id: str, slot: _Slot) -> None:
        """A copy was found conflicting with the stored one: remember which version, so the
        outcome is checked once the rejection is written (another writer may have replaced it)."""
        if slot.stored is not None and slot.source is None:
            self.against[record_id] = (
                slot.index,
                int(slot.stored["_seq_no"]),
                int(slot.stored["_primary_term"]),
            )

    def settled_as_stored_content(self, rejection: Rejection, record_id: str) -> None:
        """In a later round a copy is the stored content (created, or a duplicate): a conflict
        kept for this content by a round that saw another copy stored must go."""
        if self.again:
            self.forget_conflict(rejection, record_id)

    def forget_conflict(self, rejection: Rejection, source_id: str) -> None:
        """This copy's content is the stored one now (it came first): the conflict kept earlier
        for a later copy of it goes (those copies are duplicates of the stored copy now)."""
        rid = rejection.rejection_id
        self.rejections.pop(rid, None)
        self.forget[rid] = source_id

    def reject(self, rejection: Rejection, block_id: str | None, source_id: str) -> None:
        rid = rejection.rejection_id
        known = self.rejections.get(rid)
        if known is None or c.rejection_key(rejection) < c.rejection_key(known[0]):
            self.rejections[rid] = (
                rejection,
                block_id if known is None else known[1],
                source_id if known is None else known[2],
            )


class Put:
    """The put of one buffer: ``put`` runs rounds of ``_plan`` and ``_write_plan``."""

    def __init__(self, rq: Requests, statements: Statements, rejections: Rejections) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.statements = statements
        self.rejections = rejections

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        """Store records create-if-absent and keep rejections (see the module docstring)."""
        report = PutReport()
        write_id = uuid.uuid4().hex
        todo = list(records)
        for round_ in range(MAX_RACES):
            if not todo:
                break
            plan = self._plan(todo, write_id, again=round_ > 0)
            raced = self._write_plan(plan)
            for record_id, counted in plan.reports.items():
                if record_id not in raced:
                    report.add(counted)
            # Ids another writer changed meanwhile are classified again against the store.
            todo = [i for i in todo if i.record.record_id in raced]
        if todo:
            raise TransientError(
                f"OpenSearch buffer {self.indices.prefix}: concurrent writers kept changing "
                f"{len(todo)} records; nothing was lost, run it again"
            )
        for _ in rejections:
            report.records += 1
            report.rejected += 1
        self.rejections.keep([(r, None) for r in rejections])
        return report

    def _plan(self, items: Sequence[Incoming], write_id: str, *, again: bool = False) -> _Plan:
        """Classify every item against the store and the items before it (summaries first, each
        kind in copy order, so the outcome does not depend on the order of ``items``) and plan
        the writes."""
        plan = _Plan(write_id=write_id, again=again)
        summaries = [i for i in items if isinstance(i.record, BlockSummary)]
        revisions = [i for i in items if isinstance(i.record, RevisionDetails)]
        controls = [i for i in items if isinstance(i.record, ControlRecord)]
        ix = self.indices
        keys = {
            (i.record.ledger, i.record.address.strand_id)
            for i in [*summaries, *revisions]
            if isinstance(i.record, BlockSummary | RevisionDetails)
        }
        # Everything the classification needs, in one real-time multi-get.
        wanted = (
            [(ix.blocks, i.record.record_id, HEADER_LIGHT) for i in summaries]
            + [
                (ix.blocks, i.record.block_id, HEADER_LIGHT)
                for i in revisions
                if isinstance(i.record, RevisionDetails)
            ]
            + [(ix.revisions, i.record.record_id, ["raw", "revision"]) for i in revisions]
            + [(ix.meta, i.record.record_id, ["raw"]) for i in controls]
            + [(ix.meta, strand_doc_id(a, b), ()) for a, b in keys]
            + [
                (ix.statements, f"{i.record.record_id}/{n}", NO_SOURCE)
                for i in summaries
                if isinstance(i.record, BlockSummary)
                for n in range(len(i.record.statements))
            ]
        )
        found = self.rq.mget_docs(wanted)
        plan.present = {d for (i, d) in found if i == ix.statements}
        headers = {d: h for (i, d), h in found.items() if i == ix.blocks}
        stored_revs = {d: h for (i, d), h in found.items() if i == ix.revisions}
        stored_controls = {d: h for (i, d), h in found.items() if i == ix.meta}
        asked = {d for (i, d, _) in wanted if i == ix.blocks}
        extra = [
            h["_source"]["block_id"]
            for h in stored_revs.values()
            if h["_source"]["block_id"] not in asked
        ]
        if extra:  # a stored revision claimed by another block: its header too
            headers.update(self.rq.mget(ix.blocks, extra, excludes=HEADER_LIGHT))
        plan.strands = self._strand_state(keys, stored_controls)

        def slot(index: str, doc_id: str, stored: Mapping[str, Hit]) -> _Slot:
            key = (index, doc_id)
            if key not in plan.slots:
                plan.slots[key] = _Slot(index=index, doc_id=doc_id, stored=stored.get(doc_id))
            return plan.slots[key]

        for item in sorted(summaries, key=c.incoming_key):
            summary = item.record
            assert isinstance(summary, BlockSummary)
            s = slot(ix.blocks, summary.block_id, headers)
            self._plan_summary(plan, s, item, summary)
        for item in sorted(revisions, key=c.incoming_key):
            rev = item.record
            assert isinstance(rev, RevisionDetails)
            s = slot(ix.revisions, rev.record_id, stored_revs)
            header = slot(ix.blocks, rev.block_id, headers)
            self._plan_revision(
                plan,
                s=s,
                header_slot=header,
                headers=headers,
                item=item,
                rev=rev,
            )
        for item in sorted(controls, key=c.incoming_key):
            control = item.record
            assert isinstance(control, ControlRecord)
            s = slot(ix.meta, control.record_id, stored_controls)
            self._plan_control(plan, s, item, control)
        return plan

    @staticmethod
    def _strand_state(
        keys: Iterable[tuple[str, str]], docs: Mapping[str, Hit]
    ) -> dict[tuple[str, str], policy.StrandMarks]:
        """Each strand's replayed mark and passed gaps, from its meta document."""
        out: dict[tuple[str, str], policy.StrandMarks] = {}
        for ledger, strand_id in keys:
            doc = docs.get(strand_doc_id(ledger, strand_id))
            if doc is None:
                out[(ledger, strand_id)] = (None, [])
                continue
            src = doc["_source"]
            gaps = [(int(g["first"]), int(g["last"])) for g in src.get("gaps") or []]
            mark = src.get("replayed_through")
            out[(ledger, strand_id)] = (None if mark is None else int(mark), gaps)
        return out

    def _plan_summary(self, plan: _Plan, s: _Slot, item: Incoming, summary: BlockSummary) -> None:
        report = plan.count(summary.block_id)
        current = s.current
        block_id = summary.block_id
        d = policy.decide_summary(
            item,
            summary,
            None if current is None else self._stored(s, current),
            state=None if current is None else current["state"],
            purged=current is not None and bool(current.get("purged")),
            strand=lambda: plan.strands[(summary.ledger, summary.address.strand_id)],
        )
        d.count(report, "blocks", len(summary.statements))
        if d.verdict in ("stored", "late"):
            state: BlockState = "late" if d.verdict == "late" else "pending"
            s.plan_create(documents.header_source(item, summary, state, plan.write_id))
            plan.statements_of[block_id] = "write"
            plan.settled_as_stored_content(c.conflict_of(item, block_id), block_id)
            return
        assert current is not None
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(c.conflict_of(item, block_id), block_id)
            wanted = (f"{block_id}/{n}" for n in range(len(summary.statements)))
            if (
                s.source is None
                and s.stored is not None
                and not current.get("purged")
                and not all(w in plan.present for w in wanted)
            ):
                # A put that died between its header and its statements (one bulk, not
                # atomic): this re-delivery writes them from the stored header.
                plan.heal.add(block_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(
                {
                    **documents.provenance(item, summary.stream.arn, plan.write_id),
                    "statement_kinds": list(item.statement_kinds),
                    "delay_ms": c.delay_ms(item.arrived_at, summary.commit_time),
                }
            )
            plan.statements_of.setdefault(block_id, "kinds")
        elif d.verdict == "conflict":
            plan.conflicted(block_id, s)
        elif d.verdict == "conflict-earlier":  # the stored copy becomes the rejection
            s.plan_create(documents.header_source(item, summary, "pending", plan.write_id))
            plan.statements_of[block_id] = "write"
        self._plan_rejections(plan, d, block_id)

    @staticmethod
    def _plan_rejections(plan: _Plan, d: policy.Decision, record_id: str) -> None:
        if d.keep is not None:
            plan.reject(d.keep, d.block, record_id)
        if d.forget is not None:
            plan.forget_conflict(d.forget, record_id)

    def _stored(self, s: _Slot, current: Mapping[str, Any]) -> policy.StoredCopy:
        """The copy a slot holds, as the put policy compares it."""
        return documents.stored_copy(current, lambda: self._raw_of(s))

    def _raw_of(self, s: _Slot) -> bytes:
        """The raw bytes of the copy a slot holds (planned, or fetched: reads skip ``raw``)."""
        if s.source is not None:
            return unb64(s.source["raw"])
        if "raw" in s.changes:
            return unb64(s.changes["raw"])
        doc = self.rq.get(s.index, s.doc_id)
        if doc is None:
            raise TransientError(f"{s.index}/{s.doc_id} vanished while it was being compared")
        return unb64(doc["_source"]["raw"])

    def _plan_revision(
        self,
        plan: _Plan,
        *,
        s: _Slot,
        header_slot: _Slot,
        headers: Mapping[str, Hit],
        item: Incoming,
        rev: RevisionDetails,
    ) -> None:
        report = plan.count(rev.record_id)
        current = s.current
        stored_block = None if current is None else str(current["block_id"])

        def header_of(block_id: str) -> policy.Header | None:
            other = plan.slots.get((self.indices.blocks, block_id))
            if other is not None:
                return documents.policy_header(other.current)
            hit = headers.get(block_id)
            return documents.policy_header(None if hit is None else hit["_source"])

        header = documents.policy_header(header_slot.current)
        d = policy.decide_revision(
            item,
            rev,
            None if current is None else self._stored(s, current),
            stored_late=current is not None and bool(current["late"]),
            stored_block=stored_block,
            header=header,
            stored_header=policy.stored_header_of(rev, stored_block, header, header_of),
            strand=lambda: plan.strands[(rev.ledger, rev.address.strand_id)],
        )
        d.count(report, "revisions")
        if d.verdict == "purged-duplicate":
            return
        if d.verdict in ("stored", "late"):
            s.plan_create(documents.revision_source(item, rev, d.verdict == "late", plan.write_id))
            plan.settled_as_stored_content(c.conflict_of(item, rev.record_id), rev.record_id)
            return
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(c.conflict_of(item, rev.record_id), rev.record_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(documents.provenance(item, rev.stream.arn, plan.write_id))
        elif d.verdict == "conflict":
            plan.conflicted(rev.record_id, s)
        elif d.verdict == "conflict-earlier":
            s.plan_create(documents.revision_source(item, rev, False, plan.write_id))
        self._plan_rejections(plan, d, rev.record_id)

    def _plan_control(self, plan: _Plan, s: _Slot, item: Incoming, control: ControlRecord) -> None:
        report = plan.count(control.record_id)
        source = documents.control_source(item, control, plan.write_id)
        current = s.current
        d = policy.decide_control(
            item, control, None if current is None else self._stored(s, current)
        )
        d.count(report, "control")
        if d.verdict == "stored":
            s.plan_create(source)
            plan.settled_as_stored_content(
                c.conflict_of(item, control.record_id), control.record_id
            )
            return
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(
                c.conflict_of(item, control.record_id), control.record_id
            )
        elif d.verdict == "conflict":
            plan.conflicted(control.record_id, s)
        self._plan_rejections(plan, d, control.record_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(documents.provenance(item, control.stream.arn, plan.write_id))
        elif d.verdict == "conflict-earlier":
            s.plan_update(source)

    def _write_plan(self, plan: _Plan) -> set[str]:
        """Write a plan: statements, records and statement kinds in one bulk request (per chunk),
        then, only where the plan holds them, rejections and the checks of conflicts. Returns the
        record ids another writer changed meanwhile (to classify again).

        A bulk request is not atomic: a header may be stored while one of its statements was
        refused. ``put`` then raises (the batch is re-delivered), and the re-delivery, finding the
        header a duplicate with statements missing (``_Plan.heal``), writes them again."""
        ix = self.indices
        headers = {
            s.doc_id: s for (index, _), s in plan.slots.items() if index == ix.blocks and s.action
        }
        actions: list[Action] = []
        kinds: list[tuple[int, str]] = []  # (action index, block id) of statement-only writes
        for block_id, what in plan.statements_of.items():
            slot = headers.get(block_id)
            if what == "write" and slot is not None and slot.source is not None:
                for action in self.statements.actions(slot.source, slot.stored):
                    kinds.append((len(actions), block_id))
                    actions.append(action)
        for block_id in sorted(plan.heal):
            current = plan.slots[(ix.blocks, block_id)].current
            if current is not None:
                for action in self.statements.actions(current, None):
                    kinds.append((len(actions), block_id))
                    actions.append(action)
        for block_id, what in plan.statements_of.items():
            slot = headers.get(block_id)
            if what == "kinds" and slot is not None and block_id not in plan.heal:
                new_kinds = slot.changes.get("statement_kinds", [])
                n = int((slot.current or {}).get("statements", 0))
                for i in range(n):
                    kinds.append((len(actions), block_id))
                    actions.append(
                        (
                            {"update": {"_index": ix.statements, "_id": f"{block_id}/{i}"}},
                            {"doc": {"kind": new_kinds[i] if i < len(new_kinds) else None}},
                        )
                    )
        statement_items = {i for i, _ in kinds}
        order: list[tuple[int, _Slot]] = []
        for s in plan.slots.values():
            if s.action is None:
                continue
            meta: dict[str, Any] = {"_index": s.index, "_id": s.doc_id}
            if s.action != "create":
                assert s.stored is not None
                meta["if_seq_no"] = s.stored["_seq_no"]
                meta["if_primary_term"] = s.stored["_primary_term"]
            order.append((len(actions), s))
            if s.action == "create":
                actions.append(({"create": meta}, s.source))
            elif s.action == "replace":
                actions.append(({"index": meta}, s.source))
            else:
                actions.append(({"update": meta}, {"doc": s.changes}))
        results = self.rq.bulk(actions, "write records")
        # (a 404 is a delete of an extra statement that is gone already, or a statement whose
        # kind follows a copy another writer removed: its statements are written again below)
        self.rq.check([results[i] for i in sorted(statement_items)], "write statements", ok=(404,))
        raced: set[str] = set()
        lost: list[_Slot] = []
        for at, s in order:
            result = results[at]
            status = int(result.get("status", 0))
            if status in (200, 201):
                continue
            if status == 409:
                lost.append(s)
                continue
            raise OpenSearchError(f"write {s.index}/{s.doc_id}", status, item_reason(result))
        if lost:
            # 409: taken, or moved since it was read. Our own write whose answer was lost (a
            # retried request) carries our write id; anything else is another writer's.
            now_docs = self.rq.mget_docs([(s.index, s.doc_id, ["raw"]) for s in lost])
            for s in lost:
                doc = now_docs.get((s.index, s.doc_id))
                if doc is None or doc["_source"].get("write_id") != plan.write_id:
                    raced.add(s.doc_id)
        # A replaced header, or one another writer got to first, may have statements written by
        # a writer that lost: make them the header's again.
        for block_id, slot in headers.items():
            if block_id in raced or slot.action == "replace":
                self.statements.sync(block_id)
        self.rejections.keep(
            [(r, block) for r, block, source in plan.rejections.values() if source not in raced]
        )
        forget: list[Action] = [
            ({"delete": {"_index": ix.rejected, "_id": rid}}, None)
            for rid, source in plan.forget.items()
            if source not in raced
        ]
        self.rq.check(
            self.rq.bulk(forget, "drop superseded conflicts"), "drop conflicts", ok=(404,)
        )
        # A conflict holds if the copy it was found against is still the stored one; if another
        # writer replaced it meanwhile, classify again (and drop the conflict if it is moot).
        checks = [
            (v[0], d, v)
            for d, v in plan.against.items()
            if d not in raced and plan.slots[(v[0], d)].action is None  # a write checked itself
        ]
        if checks:
            now = self.rq.mget_docs([(i, d, ["raw", "summary", "revision"]) for i, d, _ in checks])
            for index, doc_id, (_, seq_no, term) in checks:
                doc = now.get((index, doc_id))
                if doc is None or (int(doc["_seq_no"]), int(doc["_primary_term"])) != (
                    seq_no,
                    term,
                ):
                    raced.add(doc_id)
        return raced
