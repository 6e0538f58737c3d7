"""``OpenSearchStore``: the ``buffer.store`` verbs on OpenSearch indices (``buffer.opensearch``).

Each verb is one of the existing parts' requests: ``view``/``apply`` are ``buffer.opensearch_put``'s
read and write of one round (the round's documents, with their versions, kept between the two);
headers, revisions and conflicts are searches (``buffer.opensearch_read``), marks and strand
documents ``buffer.opensearch_marks``' compare-and-set writes, rejections
``buffer.opensearch_rejections``', the lease and retention ``buffer.opensearch_lease``'s, the
figures and dump rows ``buffer.opensearch_figures``'. There are no transactions: ``atomic`` only
scopes a refresh (the first search of a block refreshes the indices once) and the headers a write
reads, which come from the ``HeaderCache`` the last pending page left (every write on them is
conditional, so a stale version costs a 409 and a re-read, never a lost write). Counters are
derived from the indices, so ``add_counts`` has nothing to keep.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from buffer import _common as c
from buffer import planner
from buffer.opensearch_figures import Figures
from buffer.opensearch_lease import LeaseDoc
from buffer.opensearch_marks import HeaderCache, Marks, at_least
from buffer.opensearch_put import Put, Round
from buffer.opensearch_read import Reader
from buffer.opensearch_rejections import Rejections
from buffer.opensearch_requests import HEADER_LIGHT, Hit, Requests
from buffer.opensearch_statements import Statements
from buffer.port import Gap, Incoming, Rejection
from buffer.store import GapKey, HeaderQuery, HeaderRow, StateWrite, StrandRow
from journal.records import RevisionDetails


def header_row(src: Mapping[str, Any]) -> HeaderRow:
    """A header document as the policy reads it."""
    return HeaderRow(
        block_id=src["block_id"],
        ledger=src["ledger"],
        strand_id=src["strand_id"],
        seq=int(src["sequence_no"]),
        state=src["state"],
        commit_us=int(src["commit_us"]),
        statements=int(src["statements"]),
        revisions_expected=int(src["revisions_expected"]),
        reason=src.get("reason"),
        updated_us=src.get("updated_us"),
        actor=src.get("actor"),
        purged=bool(src.get("purged")),
        arrived_us=src.get("arrived_us"),
        body=src.get("summary") or {},
        arn=src["arn"],
        kinds=tuple(src.get("statement_kinds") or ()),
    )


def header_query(q: HeaderQuery) -> dict[str, Any]:
    filters: list[dict[str, Any]] = []
    if q.ledger is not None:
        filters.append({"term": {"ledger": q.ledger}})
    if q.strand_id is not None:
        filters.append({"term": {"strand_id": q.strand_id}})
    if q.state is not None:
        filters.append({"term": {"state": q.state}})
    seq = {k: v for k, v in (("gt", q.after), ("lte", q.through)) if v is not None}
    if seq:
        filters.append({"range": {"sequence_no": seq}})
    if q.committed_before_us is not None:
        filters.append({"range": {"commit_us": {"lt": q.committed_before_us}}})
    query: dict[str, Any] = {"filter": filters}
    if q.unpurged:
        query["must_not"] = [{"term": {"purged": True}}]
    return {"bool": query}


_IN_STRAND = [{"sequence_no": "asc"}, {"block_id": "asc"}]
_ACROSS_STRANDS = [{"ledger": "asc"}, {"strand_id": "asc"}, *_IN_STRAND]


class OpenSearchStore:
    """The storage verbs of ``buffer.store.Store`` on one index prefix (the module docstring)."""

    def __init__(self, rq: Requests, *, statement_states: bool) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.name = rq.indices.prefix
        self.headers_cache = HeaderCache(4 * rq.page_size)
        self.rejections_part = Rejections(rq)
        self.put_part = Put(
            rq, Statements(rq, statement_states=statement_states), self.rejections_part
        )
        self.reader = Reader(rq)
        self.marks = Marks(rq, self.headers_cache, statement_states=statement_states)
        self.figures = Figures(rq)
        self.lease_doc = LeaseDoc(rq)
        self._depth = 0
        self._write = False
        self._fresh = False
        self._round: Round | None = None
        self._snapshot: dict[str, Any] | None = None

    def close(self) -> None:
        self.rq.client.close()

    @contextmanager
    def atomic(self, *, write: bool) -> Iterator[None]:
        outer = self._depth == 0
        if outer:
            self._write, self._fresh, self._snapshot = write, False, None
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if outer:
                self._snapshot = self._round = None

    def _refresh(self) -> None:
        """Once per ``atomic`` block, before its first search: every index it may read."""
        if not self._fresh:
            self.rq.refresh(*self.indices.all().values())
            self._fresh = True

    # --- put --------------------------------------------------------------------------------------

    def view(self, records: Sequence[Incoming]) -> planner.StoreView:
        self._round, view = self.put_part.read(records)
        return view

    def apply(self, plan: planner.PutPlan) -> set[str]:
        assert self._round is not None, "apply follows view in one atomic block"
        return self.put_part.write(plan, self._round, uuid.uuid4().hex)

    # --- headers, revisions, conflicts ------------------------------------------------------------

    def headers(self, query: HeaderQuery) -> list[HeaderRow]:
        self._refresh()
        hits = list(
            self.rq.search(
                self.indices.blocks,
                header_query(query),
                _IN_STRAND if query.strand_id is not None else _ACROSS_STRANDS,
                limit=query.limit,
                source={"excludes": HEADER_LIGHT},
                versions=True,
            )
        )
        self.headers_cache.remember(hits)
        return [header_row(h["_source"]) for h in hits]

    def headers_by_id(self, block_ids: Collection[str]) -> dict[str, HeaderRow]:
        """Real-time reads; a write's reads come from the header cache first (its writes are
        conditional on the cached versions)."""
        found: dict[str, Hit] = {}
        if self._write:
            found = {
                b: self.headers_cache.docs[b] for b in block_ids if b in self.headers_cache.docs
            }
        missing = [b for b in block_ids if b not in found]
        if missing:
            fresh = self.rq.mget(self.indices.blocks, missing, excludes=HEADER_LIGHT)
            self.headers_cache.remember(fresh.values())
            found.update(fresh)
        return {b: header_row(h["_source"]) for b, h in found.items()}

    def revisions_of(self, block_ids: Sequence[str]) -> dict[str, list[RevisionDetails]]:
        self._refresh()
        return self.reader.revisions_of(block_ids)

    def revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
        self._refresh()
        return self.reader.revision_counts(block_ids)

    def unresolved_conflicts(
        self, block_ids: Collection[str], record_ids: Collection[str]
    ) -> tuple[set[str], set[str]]:
        self._refresh()
        return self.reader.unresolved_conflicts(block_ids, record_ids)

    # --- marks, strands, gaps ---------------------------------------------------------------------

    def set_states(self, writes: Sequence[StateWrite]) -> None:
        changes = {
            w.block_id: {
                "state": w.state,
                "reason": w.reason,
                "updated_us": w.updated_us,
                "actor": w.actor,
            }
            for w in writes  # the last write of a block wins
        }
        if not changes:
            return
        docs = {b: self.headers_cache.docs[b] for b in changes if b in self.headers_cache.docs}
        missing = [b for b in changes if b not in docs]
        if missing:
            docs.update(self.rq.mget(self.indices.blocks, missing, excludes=["raw", "summary"]))
        self.marks.write_marks(changes, docs)

    def set_through(self, ledger: str, strand_id: str, seq: int, *, raise_only: bool) -> None:
        decide = at_least(seq) if raise_only else (lambda old: None if old == seq else seq)
        self.marks.set_mark(ledger, strand_id, decide)

    def strand_rows(self) -> list[StrandRow]:
        """One ``_msearch`` (none after ``counters`` in the same block: its figures hold them);
        the strand documents' versions are kept for the next compare-and-set."""
        if self._snapshot is not None:
            seen, docs = self._snapshot["strands"]
        else:
            self._refresh()
            seen, docs = self.figures.strands()
        self.marks.remember_strands(docs)
        marks = {(d["_source"]["ledger"], d["_source"]["strand_id"]): d["_source"] for d in docs}
        return [
            StrandRow(
                ledger=ledger,
                strand_id=strand_id,
                replayed_through=marks.get((ledger, strand_id), {}).get("replayed_through"),
                highest_seen=seen.get((ledger, strand_id), (None, False))[0],
                has_blocks=seen.get((ledger, strand_id), (None, False))[1],
            )
            for ledger, strand_id in sorted({*seen, *marks})
        ]

    def through(self, ledger: str, strand_id: str) -> int | None:
        return self.marks.through(ledger, strand_id)

    def oldest_pending_us(self) -> int | None:
        oldest: int | None = self._figures()["oldest_pending_us"]
        return oldest

    def gap_rows(self) -> dict[GapKey, int]:
        """Every gap (a search of the strand documents); in a write block, the gaps of the
        strand documents last read or written (``put_gaps`` keeps the earliest ``passed_at``
        again on the stored document, so a stale answer costs nothing but a write)."""
        if self._write:
            gaps = self.marks.gaps_seen()
        else:
            self._refresh()
            gaps = list(self.marks.gaps())
        return {(g.ledger, g.strand_id, g.first, g.last): c.to_us(g.passed_at) for g in gaps}

    def put_gaps(self, rows: Mapping[GapKey, int]) -> None:
        self.marks.record_gaps(
            [
                Gap(ledger=a, strand_id=b, first=f, last=la, passed_at=c.from_us(us))
                for (a, b, f, la), us in rows.items()
            ]
        )

    def delete_gaps(self, keys: Iterable[GapKey]) -> int:
        return self.marks.withdraw_gaps(
            [
                Gap(ledger=a, strand_id=b, first=f, last=la, passed_at=c.from_us(0))
                for a, b, f, la in keys
            ]
        )

    # --- rejections -------------------------------------------------------------------------------

    def rejections(self) -> list[tuple[str, Rejection]]:
        self._refresh()
        return [(r.rejection_id, r) for r in self.rejections_part.rejected()]

    def count_unresolved(self) -> int:
        self._refresh()
        return self.rejections_part.unresolved_rejections()

    def unresolved_among(self, ids: Collection[str]) -> set[str]:
        return self.rejections_part.unresolved_among(ids)

    def resolve(self, ids: Collection[str], reason: str, actor: str, at_us: int) -> None:
        self.rejections_part.resolve(sorted(ids), reason, actor, at_us)

    # --- lease, retention, figures, dump ----------------------------------------------------------

    def lease_row(self) -> tuple[str, int] | None:
        return self.lease_doc.row()

    def lease_cas(self, expected: tuple[str, int] | None, new: tuple[str, int] | None) -> bool:
        return self.lease_doc.cas(expected, new)

    def purge(self, block_ids: Sequence[str]) -> tuple[int, int]:
        return self.lease_doc.purge(block_ids)

    def counters(self) -> dict[str, int]:
        return dict(self._figures()["counts"])

    def add_counts(self, deltas: Mapping[str, int]) -> None:
        """Nothing to keep: every figure is counted from the indices (``counters``)."""

    def delays(self, sample: int) -> tuple[list[float], float | None]:
        f = self._figures()
        return list(f["delays"]), f["largest"]

    def _figures(self) -> dict[str, Any]:
        if self._snapshot is None:
            self._refresh()
            self._snapshot = self.figures.figures()
        return self._snapshot

    def dump_rows(self, into: c.DumpBuilder) -> None:
        self._refresh()
        self.figures.dump_rows(into)
        for s in self.strand_rows():
            into.strand(
                f"{s.ledger}/{s.strand_id}", s.replayed_through, s.highest_seen, s.has_blocks
            )
        for g in self.marks.gaps():
            into.gap(g.ledger, g.strand_id, g.first, g.last, g.passed_at)
