"""Reading blocks from OpenSearch: strands with blocks, revisions, conflicts, revision counts.

``buffer.opensearch_store``'s verbs over the ``blocks``, ``revisions`` and ``rejected`` indices
(the store refreshed them first); the headers themselves are the store's search.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from buffer import _common as c
from buffer.opensearch_requests import IDS_PER_QUERY, Requests, unb64
from journal.records import RevisionDetails


class Reader:
    """The block reads of one buffer."""

    def __init__(self, rq: Requests) -> None:
        self.rq = rq
        self.indices = rq.indices

    def strands(self) -> list[tuple[str, str]]:
        """The strands with block headers."""
        buckets = self.rq.composite(
            self.indices.blocks,
            [
                {"ledger": {"terms": {"field": "ledger"}}},
                {"strand": {"terms": {"field": "strand_id"}}},
            ],
        )
        return sorted((b["key"]["ledger"], b["key"]["strand"]) for b in buckets)

    def revisions_of(self, block_ids: Sequence[str]) -> dict[str, list[RevisionDetails]]:
        revisions: dict[str, list[RevisionDetails]] = {}
        for chunk in c.chunks(list(block_ids), IDS_PER_QUERY):
            for hit in self.rq.search(
                self.indices.revisions,
                {"bool": {"filter": [{"terms": {"block_id": chunk}}]}},
                [{"revision_id": "asc"}],
                source={"excludes": ["raw"]},
            ):
                src = hit["_source"]
                revisions.setdefault(src["block_id"], []).append(_revision(src))
        return revisions

    def unresolved_conflicts(
        self, block_ids: Collection[str], record_ids: Collection[str]
    ) -> tuple[set[str], set[str]]:
        """Of unresolved conflicts: the ``block_ids`` they flag and the ``record_ids`` they were
        kept for (one search per chunk of ids)."""
        blocks, records = set(block_ids), set(record_ids)
        by_block: set[str] = set()
        by_record: set[str] = set()
        for chunk in c.chunks(sorted(blocks | records), IDS_PER_QUERY):
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
                if src.get("block_id") in blocks:
                    by_block.add(src["block_id"])
                if src.get("record_id") in records:
                    by_record.add(src["record_id"])
        return by_block, by_record

    def revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
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
