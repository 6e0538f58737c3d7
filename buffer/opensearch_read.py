"""Reading blocks from OpenSearch: strands, the pending page, one block, the operator's rows.

A block is its header (``blocks``), its revisions (``revisions``, searched by ``block_id``) and
whether an unresolved conflict concerns it (``rejected``). The pending page is a search on the
headers sorted by ``sequence_no`` then ``block_id`` and paged with ``search_after``; its hits'
versions go to the ``HeaderCache`` the marks write on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from buffer import _common as c
from buffer.opensearch_marks import HeaderCache
from buffer.opensearch_requests import HEADER_LIGHT, IDS_PER_QUERY, Requests, pending_query, unb64
from buffer.port import BlockRow, BlockState, BufferedBlock
from journal.records import RevisionDetails


class Reader:
    """The block reads of one buffer."""

    def __init__(self, rq: Requests, headers: HeaderCache) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.headers = headers

    def strands(self) -> Sequence[tuple[str, str]]:
        self.rq.refresh(self.indices.blocks)
        buckets = self.rq.composite(
            self.indices.blocks,
            [
                {"ledger": {"terms": {"field": "ledger"}}},
                {"strand": {"terms": {"field": "strand_id"}}},
            ],
        )
        return sorted((b["key"]["ledger"], b["key"]["strand"]) for b in buckets)

    def pending(
        self, ledger: str, strand_id: str, after: int, limit: int
    ) -> Sequence[BufferedBlock]:
        if limit <= 0:
            return []
        ix = self.indices
        self.rq.refresh(ix.blocks, ix.revisions, ix.rejected)
        query = pending_query(ledger, strand_id, {"gt": after})
        hits = list(
            self.rq.search(
                ix.blocks,
                query,
                [{"sequence_no": "asc"}, {"block_id": "asc"}],
                limit=limit,
                source={"excludes": HEADER_LIGHT},
                versions=True,
            )
        )
        self.headers.remember(hits)
        return self._buffered([h["_source"] for h in hits])

    def get_block(self, block_id: str) -> BufferedBlock | None:
        doc = self.rq.get(self.indices.blocks, block_id, excludes=HEADER_LIGHT)
        if doc is None:
            return None
        self.rq.refresh(self.indices.revisions, self.indices.rejected)
        return self._buffered([doc["_source"]])[0]

    def _buffered(self, headers: Sequence[Mapping[str, Any]]) -> list[BufferedBlock]:
        ids = [h["block_id"] for h in headers]
        revisions: dict[str, list[tuple[str, RevisionDetails]]] = {i: [] for i in ids}
        for chunk in c.chunks(ids, IDS_PER_QUERY):
            for hit in self.rq.search(
                self.indices.revisions,
                {"bool": {"filter": [{"terms": {"block_id": chunk}}]}},
                [{"revision_id": "asc"}],
                source={"excludes": ["raw"]},
            ):
                src = hit["_source"]
                revisions[src["block_id"]].append((src["revision_id"], _revision(src)))
        conflicted = self._conflicted(
            ids, {rid: bid for bid, revs in revisions.items() for rid, _ in revs}
        )
        blocks = []
        for h in headers:
            summary = c.summary_from_body(h["summary"], h["arn"])
            block_id = h["block_id"]
            blocks.append(
                BufferedBlock(
                    summary=summary,
                    revisions=c.pick_revisions(summary, (r for _, r in revisions[block_id])),
                    statement_kinds=tuple(h.get("statement_kinds") or ()),
                    state=h["state"],
                    arrived_at=c.opt_from_us(h.get("arrived_us")),
                    conflicted=block_id in conflicted,
                    reason=h.get("reason"),
                )
            )
        return blocks

    def _conflicted(self, block_ids: list[str], revision_blocks: Mapping[str, str]) -> set[str]:
        """Blocks with an unresolved conflict: on the block summary, on a revision stored for the
        block, or a conflicting copy that claimed the block (as ``SqliteBuffer``)."""
        if not block_ids:
            return set()
        found: set[str] = set()
        record_ids = [*block_ids, *revision_blocks]
        for chunk in c.chunks(record_ids, IDS_PER_QUERY):
            query = {
                "bool": {
                    "filter": [{"term": {"kind": c.CONFLICT}}, {"term": {"resolved": False}}],
                    "should": [{"terms": {"block_id": chunk}}, {"terms": {"record_id": chunk}}],
                    "minimum_should_match": 1,
                }
            }
            for hit in self.rq.search(
                self.indices.rejected,
                query,
                [{"rejection_id": "asc"}],
                source=["block_id", "record_id"],
            ):
                src = hit["_source"]
                if src.get("block_id") is not None:
                    found.add(src["block_id"])
                record = src.get("record_id")
                if record is not None:
                    found.add(revision_blocks.get(record, record))
        return found & set(block_ids)

    def blocks(self, state: BlockState | None = None) -> Sequence[BlockRow]:
        ix = self.indices
        self.rq.refresh(ix.blocks, ix.revisions)
        query: dict[str, Any] = {"bool": {"filter": []}}
        if state is not None:
            query["bool"]["filter"].append({"term": {"state": state}})
        out: list[BlockRow] = []
        page: list[Mapping[str, Any]] = []

        def flush() -> None:
            counts = self._revision_counts([h["block_id"] for h in page])
            for h in page:
                out.append(
                    BlockRow(
                        block_id=h["block_id"],
                        ledger=h["ledger"],
                        strand_id=h["strand_id"],
                        sequence_no=int(h["sequence_no"]),
                        state=h["state"],
                        commit_time=c.from_us(int(h["commit_us"])),
                        statements=int(h["statements"]),
                        revisions_expected=int(h["revisions_expected"]),
                        revisions_buffered=counts.get(h["block_id"], 0),
                        reason=h.get("reason"),
                        updated_at=c.opt_from_us(h.get("updated_us")),
                        actor=h.get("actor"),
                    )
                )
            page.clear()

        for hit in self.rq.search(
            ix.blocks,
            query,
            [{"ledger": "asc"}, {"strand_id": "asc"}, {"sequence_no": "asc"}, {"block_id": "asc"}],
            source={"excludes": ["raw", "summary"]},
        ):
            page.append(hit["_source"])
            if len(page) >= self.rq.page_size:
                flush()
        flush()
        return out

    def _revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in c.chunks(block_ids, IDS_PER_QUERY):
            aggs = self.rq.aggregate(
                self.indices.revisions,
                {"per_block": {"terms": {"field": "block_id", "size": len(chunk)}}},
                {"bool": {"filter": [{"terms": {"block_id": chunk}}]}},
            )
            for bucket in aggs["per_block"]["buckets"]:
                counts[bucket["key"]] = int(bucket["doc_count"])
        return counts


def _revision(src: Mapping[str, Any]) -> RevisionDetails:
    r = src["revision"]
    return c.revision_from(
        {
            **src,
            "hash": bytes.fromhex(r["hash"]),
            "data": None if r["data"] is None else unb64(r["data"]),
            "data_hash": None if r["data_hash"] is None else bytes.fromhex(r["data_hash"]),
            "tx_time_us": r["tx_time_us"],
            "tx_id": r["tx_id"],
        }
    )
