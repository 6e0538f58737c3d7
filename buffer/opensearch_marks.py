"""Block states and strand documents in OpenSearch: marks, repair, replayed marks and gaps.

Each is a read-modify-write cycle on single documents with ``if_seq_no``/``if_primary_term``; a
conflict re-reads and decides again. ``HeaderCache`` holds block headers as the last pending page
(``OpenSearchStore.headers``) or our own marks left them, with their versions, so marking a group
needs no read first; ``Marks`` keeps the strand documents it last read or wrote likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from buffer import _common as c
from buffer.opensearch_requests import (
    MAX_RACES,
    Action,
    Hit,
    Requests,
    strand_doc_id,
)
from buffer.port import Gap
from runtime.errors import TransientError


class HeaderCache:
    """Block headers with their versions (a stale entry only costs a 409 and a re-read: every
    write on them is conditional). Bounded: the newest ``bound`` entries are kept."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.docs: dict[str, Hit] = {}

    def remember(self, hits: Iterable[Hit]) -> None:
        for hit in hits:
            if "_seq_no" in hit:
                light = {k: v for k, v in hit["_source"].items() if k != "summary"}
                self.docs.pop(hit["_id"], None)
                self.docs[hit["_id"]] = {**hit, "_source": light}
        excess = len(self.docs) - self.bound
        for key in list(self.docs)[: max(0, excess)]:
            del self.docs[key]

    def forget(self, block_id: str) -> None:
        self.docs.pop(block_id, None)


class Marks:
    """Marks, repair and gaps of one buffer (``statement_states``: ``OpenSearchBuffer``'s)."""

    def __init__(self, rq: Requests, headers: HeaderCache, *, statement_states: bool) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.headers = headers
        self.statement_states = statement_states
        self._strand_docs_seen: dict[str, Hit] = {}  # strand meta documents, as headers

    def write_marks(
        self, changes: Mapping[str, Mapping[str, Any]], docs: Mapping[str, Hit]
    ) -> None:
        """Conditional partial updates of block headers and, in the same bulk request, their
        statements' state (one request per group of blocks, per chunk of ``bulk_actions``).

        Not atomic: a fault may leave some headers of a group marked and others not. The
        strand's replayed mark is raised only after every header's mark is written
        (``Buffer.mark``), so after such a fault the strand's mark is still below the
        destination's checkpoint and the next cycle's ``repair`` marks the rest from the
        checkpoint (tests/opensearch: a fault between the marks of one group)."""
        ix = self.indices
        todo = dict(docs)
        first = True
        for _ in range(MAX_RACES):
            if not todo:
                break
            ids = list(todo)
            actions: list[Action] = [
                (
                    {
                        "update": {
                            "_index": ix.blocks,
                            "_id": bid,
                            "if_seq_no": todo[bid]["_seq_no"],
                            "if_primary_term": todo[bid]["_primary_term"],
                        }
                    },
                    {"doc": dict(changes[bid])},
                )
                for bid in ids
            ]
            n_headers = len(actions)
            if first and self.statement_states:
                # (a 404: a statement retention removed, or one a put has yet to write)
                actions += [
                    (
                        {"update": {"_index": ix.statements, "_id": f"{bid}/{i}"}},
                        {"doc": {"state": changes[bid]["state"]}},
                    )
                    for bid, doc in docs.items()
                    if not doc["_source"].get("purged")
                    for i in range(int(doc["_source"].get("statements", 0)))
                ]
            first = False
            all_results = self.rq.bulk(actions, "mark blocks")
            results = all_results[:n_headers]
            self.rq.check(all_results[n_headers:], "mark statements", ok=(404,))
            conflicts = [bid for bid, r in zip(ids, results, strict=True) if r.get("status") == 409]
            self.rq.check([r for r in results if r.get("status") != 409], "mark blocks")
            for bid, r in zip(ids, results, strict=True):
                if r.get("status") != 409 and "_seq_no" in r:
                    src = {**todo[bid]["_source"], **changes[bid]}
                    self.headers.remember(
                        [
                            {
                                "_id": bid,
                                "_seq_no": r["_seq_no"],
                                "_primary_term": r["_primary_term"],
                                "_source": src,
                            }
                        ]
                    )
                else:
                    self.headers.forget(bid)
            todo = {}
            if conflicts:
                fresh = self.rq.mget(ix.blocks, conflicts, excludes=["raw", "summary"])
                for bid in conflicts:
                    doc = fresh.get(bid)
                    if doc is None:
                        raise TransientError(f"block {bid} vanished while it was being marked")
                    src = doc["_source"]
                    if any(src.get(k) != v for k, v in changes[bid].items()):
                        todo[bid] = doc  # someone else changed it: write on the new version
        else:
            raise TransientError("OpenSearch block headers kept changing under the marks")

    def set_mark(
        self, ledger: str, strand_id: str, decide: Callable[[int | None], int | None]
    ) -> None:
        """Change a strand's replayed mark: ``decide(old)`` gives the new value (None: keep)."""

        def change(src: Mapping[str, Any]) -> dict[str, Any] | None:
            old = src.get("replayed_through")
            new = decide(None if old is None else int(old))
            return None if new is None else {"replayed_through": new}

        self._change_strand(ledger, strand_id, change, "replayed mark")

    def _change_strand(
        self,
        ledger: str,
        strand_id: str,
        change: Callable[[Mapping[str, Any]], dict[str, Any] | None],
        what: str,
    ) -> None:
        """Compare-and-set a strand document: ``change(source)`` gives the fields to write (None:
        nothing to do); an absent document is changed from an empty one and created. Tried first
        on the version this instance last read or wrote, so a settler's next mark or gaps send no
        read (a stale version only costs a 409 and a re-read)."""
        doc_id = strand_doc_id(ledger, strand_id)
        empty: dict[str, Any] = {
            "kind": "strand",
            "ledger": ledger,
            "strand_id": strand_id,
            "replayed_through": None,
            "gaps": [],
        }
        for attempt in range(MAX_RACES):
            doc = self._strand_docs_seen.get(doc_id) if attempt == 0 else None
            if doc is None:
                doc = self._strand_doc(doc_id)
            fields = change(empty if doc is None else doc["_source"])
            if fields is None:
                return
            if doc is None:
                if self.rq.create_meta(doc_id, {**empty, **fields}):
                    return
                continue  # someone created it meanwhile: change what they wrote
            answer = self.rq.update_if(self.indices.meta, doc_id, doc, fields)
            if answer:
                self._strand_docs_seen[doc_id] = {
                    "_seq_no": answer["_seq_no"],
                    "_primary_term": answer["_primary_term"],
                    "_source": {**doc["_source"], **fields},
                }
                return
            self._strand_docs_seen.pop(doc_id, None)
        raise TransientError(f"the {what} of {ledger}/{strand_id} kept changing")

    def _strand_doc(self, doc_id: str) -> Hit | None:
        doc = self.rq.get(self.indices.meta, doc_id)
        if doc is None:
            self._strand_docs_seen.pop(doc_id, None)
        else:
            self._strand_docs_seen[doc_id] = doc
        return doc

    def through(self, ledger: str, strand_id: str) -> int | None:
        """A strand's replayed mark, real-time (one get; its version kept)."""
        doc = self._strand_doc(strand_doc_id(ledger, strand_id))
        mark = None if doc is None else doc["_source"].get("replayed_through")
        return None if mark is None else int(mark)

    def record_gaps(self, gaps: Sequence[Gap]) -> None:
        def add(entries: list[dict[str, Any]], mine: Sequence[Gap]) -> list[dict[str, Any]]:
            kept = {(g["first"], g["last"]): g for g in entries}
            for gap in mine:
                passed = c.to_us(gap.passed_at)
                old = kept.get((gap.first, gap.last))
                if old is None or old["passed_us"] > passed:
                    kept[(gap.first, gap.last)] = {
                        "first": gap.first,
                        "last": gap.last,
                        "passed_us": passed,
                    }
            return sorted(kept.values(), key=lambda g: (g["first"], g["last"]))

        self._change_gaps(gaps, add)

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> int:
        """Remove the gaps; returns how many were there."""
        removed = 0

        def remove(entries: list[dict[str, Any]], mine: Sequence[Gap]) -> list[dict[str, Any]]:
            nonlocal removed
            gone = {(g.first, g.last) for g in mine}
            kept = [g for g in entries if (g["first"], g["last"]) not in gone]
            removed = len(entries) - len(kept)
            return kept

        total = 0
        for strand in self._by_strand(gaps).values():
            removed = 0
            self._change_gaps(strand, remove)
            total += removed
        return total

    def _change_gaps(
        self,
        gaps: Sequence[Gap],
        change: Callable[[list[dict[str, Any]], Sequence[Gap]], list[dict[str, Any]]],
    ) -> None:
        """One compare-and-set update of each strand document concerned (none when its gaps
        stay as they are)."""
        for (ledger, strand_id), mine in self._by_strand(gaps).items():

            def fields(src: Mapping[str, Any], mine: Sequence[Gap] = mine) -> dict[str, Any] | None:
                entries = list(src.get("gaps") or [])
                new = change(entries, mine)
                return None if new == entries else {"gaps": new}

            self._change_strand(ledger, strand_id, fields, "gaps")

    @staticmethod
    def _by_strand(gaps: Sequence[Gap]) -> dict[tuple[str, str], list[Gap]]:
        by_strand: dict[tuple[str, str], list[Gap]] = {}
        for gap in gaps:
            by_strand.setdefault((gap.ledger, gap.strand_id), []).append(gap)
        return by_strand

    def remember_strands(self, hits: Iterable[Hit]) -> None:
        """Strand documents as a search read them (with versions), for the next
        compare-and-set."""
        for h in hits:
            self._strand_docs_seen[h["_id"]] = h

    def strand_docs(self) -> list[Mapping[str, Any]]:
        """Every strand document (the caller refreshed the meta index); their versions are kept
        for the next compare-and-set."""
        hits = list(
            self.rq.search(
                self.indices.meta,
                {"bool": {"filter": [{"term": {"kind": "strand"}}]}},
                [{"ledger": "asc"}, {"strand_id": "asc"}],
                versions=True,
            )
        )
        self.remember_strands(hits)
        return [h["_source"] for h in hits]

    def gaps(self) -> list[Gap]:
        return _gaps_of(self.strand_docs())

    def gaps_seen(self) -> list[Gap]:
        """The gaps of the strand documents last read or written (no request)."""
        return _gaps_of([h["_source"] for h in self._strand_docs_seen.values()])


def _gaps_of(docs: Iterable[Mapping[str, Any]]) -> list[Gap]:
    out = [
        Gap(
            ledger=src["ledger"],
            strand_id=src["strand_id"],
            first=int(g["first"]),
            last=int(g["last"]),
            passed_at=c.from_us(int(g["passed_us"])),
        )
        for src in docs
        for g in src.get("gaps") or []
    ]
    out.sort(key=lambda g: (g.ledger, g.strand_id, g.first, g.last))
    return out


def at_least(seq: int) -> Callable[[int | None], int | None]:
    """Raise a replayed mark to ``seq`` (never lower it)."""
    return lambda old: seq if old is None or old < seq else None
