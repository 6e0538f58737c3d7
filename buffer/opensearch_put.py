"""One round of an OpenSearch put: read what the plan needs, write the plan.

These are ``buffer.opensearch_store``'s ``view`` and ``apply`` (``buffer.settling.Buffer.put``
plans between them with ``buffer.planner``). One round reads, in one real-time ``_mget``, every
document the plan needs (the stored copies by id, the headers of the blocks the revisions name,
the strands' meta documents and the statements of every summary), hands them to
``buffer.planner.plan`` as its ``StoreView``, and writes the ``PutPlan`` in one ``_bulk`` per
chunk: create-if-absent for new copies, and compare-and-set (``if_seq_no``/``if_primary_term`` on
the version read) for replacing copies and provenance. Ids another writer changed meanwhile (a
lost compare-and-set, or a conflict whose stored copy moved) are returned, to be planned again in
the next round; rejections are kept by ``buffer.opensearch_rejections`` and statements written by
``buffer.opensearch_statements``. The guarantees: ``buffer.opensearch``'s docstring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from buffer import _common as c
from buffer import opensearch_documents as documents
from buffer import planner
from buffer import put_policy as policy
from buffer.opensearch_client import OpenSearchError
from buffer.opensearch_rejections import Rejections
from buffer.opensearch_requests import (
    HEADER_LIGHT,
    NO_SOURCE,
    Action,
    Hit,
    Requests,
    item_reason,
    strand_doc_id,
    unb64,
)
from buffer.opensearch_statements import Statements
from buffer.port import Incoming
from journal.records import BlockSummary, ControlRecord, RevisionDetails
from runtime.errors import TransientError


@dataclass(slots=True)
class Round:
    """One round's reads: the documents as read (with their versions), by kind and id, and the
    statement ids found."""

    hits: dict[planner.Kind, dict[str, Hit]] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)


class Put:
    """One round of a put: ``read`` (the documents and the ``planner.StoreView``) and ``write``."""

    def __init__(self, rq: Requests, statements: Statements, rejections: Rejections) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.statements = statements
        self.rejections = rejections
        self._index: dict[planner.Kind, str] = {
            "blocks": rq.indices.blocks,
            "revisions": rq.indices.revisions,
            "control": rq.indices.meta,
        }

    # --- reads ------------------------------------------------------------------------------------

    def read(self, items: Sequence[Incoming]) -> tuple[Round, planner.StoreView]:
        """Everything the plan needs, in one real-time multi-get (and one more for the blocks of
        stored revisions another block claimed)."""
        ix = self.indices
        summaries = [i.record for i in items if isinstance(i.record, BlockSummary)]
        revisions = [i.record for i in items if isinstance(i.record, RevisionDetails)]
        controls = [i.record.record_id for i in items if isinstance(i.record, ControlRecord)]
        keys = {(s.ledger, s.address.strand_id) for s in summaries} | {
            (r.ledger, r.address.strand_id) for r in revisions
        }
        wanted = (
            [(ix.blocks, s.block_id, HEADER_LIGHT) for s in summaries]
            + [(ix.blocks, r.block_id, HEADER_LIGHT) for r in revisions]
            + [(ix.revisions, r.record_id, ["raw", "revision"]) for r in revisions]
            + [(ix.meta, record_id, ["raw"]) for record_id in controls]
            + [(ix.meta, strand_doc_id(a, b), ()) for a, b in keys]
            + [
                (ix.statements, f"{s.block_id}/{n}", NO_SOURCE)
                for s in summaries
                for n in range(len(s.statements))
            ]
        )
        found = self.rq.mget_docs(wanted)
        read = Round(present={d for (i, d) in found if i == ix.statements})
        headers = {d: h for (i, d), h in found.items() if i == ix.blocks}
        revs = {d: h for (i, d), h in found.items() if i == ix.revisions}
        meta = {d: h for (i, d), h in found.items() if i == ix.meta}
        asked = {d for (i, d, _) in wanted if i == ix.blocks}
        extra = [h["_source"]["block_id"] for h in revs.values()]
        extra = [b for b in extra if b not in asked]
        if extra:  # a stored revision claimed by another block: its header too
            headers.update(self.rq.mget(ix.blocks, extra, excludes=HEADER_LIGHT))
        stored_controls = {d: meta[d] for d in controls if d in meta}
        read.hits = {"blocks": headers, "revisions": revs, "control": stored_controls}
        view = planner.StoreView(
            summaries={d: self._stored("blocks", d, h) for d, h in headers.items()},
            headers={
                d: cast(policy.Header, documents.policy_header(h["_source"]))
                for d, h in headers.items()
            },
            revisions={
                d: planner.StoredRevision(
                    self._stored("revisions", d, h),
                    str(h["_source"]["block_id"]),
                    bool(h["_source"]["late"]),
                )
                for d, h in revs.items()
            },
            controls={d: self._stored("control", d, h) for d, h in stored_controls.items()},
            strands=self._strand_state(keys, meta),
        )
        return read, view

    def _stored(self, kind: planner.Kind, doc_id: str, hit: Hit) -> policy.StoredCopy:
        """A stored document as the put policy compares it; its raw bytes (reads skip them) are
        fetched only when the copy is displaced."""
        index = self._index[kind]

        def raw() -> bytes:
            doc = self.rq.get(index, doc_id)
            if doc is None:
                raise TransientError(f"{index}/{doc_id} vanished while it was being compared")
            return unb64(doc["_source"]["raw"])

        return documents.stored_copy(hit["_source"], raw)

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

    # --- writes -----------------------------------------------------------------------------------

    def _source(self, w: planner.Write, write_id: str) -> dict[str, Any]:
        """The document a create or replace writes."""
        item, record = w.item, w.record
        if isinstance(record, BlockSummary):
            return documents.header_source(item, record, w.state, write_id)
        if isinstance(record, RevisionDetails):
            return documents.revision_source(item, record, w.late, write_id)
        return documents.control_source(item, record, write_id)

    @staticmethod
    def _changes(w: planner.Write, write_id: str) -> dict[str, Any]:
        """The fields a provenance replacement updates."""
        record = w.record
        changes = documents.provenance(w.item, record.stream.arn, write_id)
        if isinstance(record, BlockSummary):
            changes["statement_kinds"] = list(w.item.statement_kinds)
            changes["delay_ms"] = c.delay_ms(w.item.arrived_at, record.commit_time)
        return changes

    def _statement_actions(
        self, plan: planner.PutPlan, read: Round, sources: Mapping[str, dict[str, Any]]
    ) -> list[Action]:
        """The statements of written headers, of stored headers whose statements are (partly)
        missing, and the kinds of a header whose provenance changed."""
        ix = self.indices
        headers = read.hits["blocks"]
        actions: list[Action] = []
        for w in plan.of_kind("blocks"):
            if w.action != "provenance":
                actions.extend(
                    self.statements.actions(sources[w.record_id], headers.get(w.record_id))
                )
        heal: set[str] = set()
        for block_id in sorted(plan.found_stored):
            hit = headers.get(block_id)
            planned = plan.writes.get(("blocks", block_id))
            if (
                hit is None
                or hit["_source"].get("purged")
                or (planned is not None and planned.action != "provenance")
            ):
                continue
            n = int(hit["_source"]["statements"])
            if all(f"{block_id}/{i}" in read.present for i in range(n)):
                continue
            # A put that died between its header and its statements (one bulk, not atomic):
            # this re-delivery writes them from the stored header.
            heal.add(block_id)
            current = {**hit["_source"], **(sources.get(block_id) or {})}
            actions.extend(self.statements.actions(current, None))
        for w in plan.of_kind("blocks"):
            if w.action != "provenance" or w.record_id in heal:
                continue
            kinds = list(w.item.statement_kinds)
            n = int(headers[w.record_id]["_source"].get("statements", 0))
            actions.extend(
                (
                    {"update": {"_index": ix.statements, "_id": f"{w.record_id}/{i}"}},
                    {"doc": {"kind": kinds[i] if i < len(kinds) else None}},
                )
                for i in range(n)
            )
        return actions

    def write(self, plan: planner.PutPlan, read: Round, write_id: str) -> set[str]:
        """Write a plan: statements, records and statement kinds in one bulk request (per chunk),
        then, only where the plan holds them, rejections and the checks of conflicts. Returns the
        record ids another writer changed meanwhile (to plan again).

        A bulk request is not atomic: a header may be stored while one of its statements was
        refused. ``put`` then raises (the batch is re-delivered), and the re-delivery, finding the
        header a duplicate with statements missing (``PutPlan.found_stored``), writes them again."""
        ix = self.indices
        sources: dict[str, dict[str, Any]] = {}  # block id -> the header as this plan writes it
        records: list[Action] = []
        order: list[planner.Write] = []
        for w in plan.writes.values():
            index = self._index[w.kind]
            hit = read.hits[w.kind].get(w.record_id)
            meta: dict[str, Any] = {"_index": index, "_id": w.record_id}
            if hit is not None:
                meta["if_seq_no"] = hit["_seq_no"]
                meta["if_primary_term"] = hit["_primary_term"]
            if w.action == "provenance":
                changes = self._changes(w, write_id)
                records.append(({"update": meta}, {"doc": changes}))
                if w.kind == "blocks":
                    sources[w.record_id] = changes
            else:
                source = self._source(w, write_id)
                if hit is not None and w.kind == "blocks":  # an operator's mark on it stays
                    for k in ("reason", "updated_us", "actor"):
                        source[k] = hit["_source"].get(k)
                records.append(({"create" if hit is None else "index": meta}, source))
                if w.kind == "blocks":
                    sources[w.record_id] = source
            order.append(w)
        statements = self._statement_actions(plan, read, sources)
        results = self.rq.bulk([*statements, *records], "write records")
        # (a 404 is a delete of an extra statement that is gone already, or a statement whose
        # kind follows a copy another writer removed: its statements are written again below)
        self.rq.check(results[: len(statements)], "write statements", ok=(404,))
        raced: set[str] = set()
        lost: list[planner.Write] = []
        for w, result in zip(order, results[len(statements) :], strict=True):
            status = int(result.get("status", 0))
            if status in (200, 201):
                continue
            if status == 409:
                lost.append(w)
                continue
            raise OpenSearchError(
                f"write {self._index[w.kind]}/{w.record_id}", status, item_reason(result)
            )
        if lost:
            # 409: taken, or moved since it was read. Our own write whose answer was lost (a
            # retried request) carries our write id; anything else is another writer's.
            now_docs = self.rq.mget_docs(
                [(self._index[w.kind], w.record_id, ["raw"]) for w in lost]
            )
            for w in lost:
                doc = now_docs.get((self._index[w.kind], w.record_id))
                if doc is None or doc["_source"].get("write_id") != write_id:
                    raced.add(w.record_id)
        # A replaced header, or one another writer got to first, may have statements written by
        # a writer that lost: make them the header's again.
        for w in plan.of_kind("blocks"):
            if w.record_id in raced or w.action == "replace":
                self.statements.sync(w.record_id)
        self.rejections.keep(
            [(k.rejection, k.block_id) for k in plan.keep.values() if k.source not in raced]
        )
        forget: list[Action] = [
            ({"delete": {"_index": ix.rejected, "_id": rid}}, None)
            for rid, source in plan.forget.items()
            if source not in raced
        ]
        self.rq.check(
            self.rq.bulk(forget, "drop superseded conflicts"), "drop conflicts", ok=(404,)
        )
        self._conflicts_hold(plan, read, raced)
        return raced

    def _conflicts_hold(self, plan: planner.PutPlan, read: Round, raced: set[str]) -> None:
        """A conflict holds if the copy it was found against is still the stored one; if another
        writer replaced it meanwhile, its id joins ``raced`` (planned again: the conflict may be
        moot)."""
        checks = [
            (self._index[kind], d, read.hits[kind][d])
            for kind, d in sorted(plan.against_stored)
            if d not in raced and (kind, d) not in plan.writes  # a write checked itself
        ]
        if not checks:
            return
        now = self.rq.mget_docs([(i, d, ["raw", "summary", "revision"]) for i, d, _ in checks])
        for index, doc_id, hit in checks:
            doc = now.get((index, doc_id))
            if doc is None or (doc["_seq_no"], doc["_primary_term"]) != (
                hit["_seq_no"],
                hit["_primary_term"],
            ):
                raced.add(doc_id)
