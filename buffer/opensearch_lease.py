"""The settler's lease in OpenSearch (one meta document, conditional writes) and retention.

``Lease`` takes, renews, releases and reads the lease; ``purge_replayed`` is the retention of
replayed blocks (their headers marked purged, their statements and revisions deleted).
"""

from __future__ import annotations

from datetime import datetime

from buffer import _common as c
from buffer.opensearch_requests import IDS_PER_QUERY, MAX_RACES, Requests
from buffer.port import Lease

LEASE_ID = "lease/settler"


class LeaseDoc:
    """The lease and retention of one buffer."""

    def __init__(self, rq: Requests) -> None:
        self.rq = rq
        self.indices = rq.indices

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take or renew the lease (one document, conditional writes): a concurrent acquire
        that loses the race gets False, never a shared lease."""
        now_us = c.to_us(now)
        expires = now_us + round(ttl_seconds * 1_000_000)
        meta = self.indices.meta
        for _ in range(MAX_RACES):
            doc = self.rq.get(meta, LEASE_ID)
            if doc is None:
                if self.rq.create_meta(
                    LEASE_ID, {"kind": "lease", "owner": owner, "expires_us": expires}
                ):
                    return True
                continue  # someone created it meanwhile: decide on what they wrote
            src = doc["_source"]
            if src.get("owner") not in (owner, None) and int(src.get("expires_us") or 0) > now_us:
                return False
            if self.rq.update_if(meta, LEASE_ID, doc, {"owner": owner, "expires_us": expires}):
                return True
            again = self.rq.get(meta, LEASE_ID)
            # True only when our write landed and its answer was lost.
            return (
                again is not None
                and again["_source"].get("owner") == owner
                and int(again["_source"].get("expires_us") or 0) == expires
            )
        return False

    def release_lease(self, owner: str) -> None:
        self.rq.cas(
            self.indices.meta,
            LEASE_ID,
            lambda src: {"owner": None, "expires_us": 0} if src.get("owner") == owner else None,
        )

    def lease(self) -> Lease | None:
        doc = self.rq.get(self.indices.meta, LEASE_ID)
        if doc is None or doc["_source"].get("owner") is None:
            return None
        src = doc["_source"]
        return Lease(owner=src["owner"], expires_at=c.from_us(int(src.get("expires_us") or 0)))

    def purge_replayed(self, older_than: datetime) -> int:
        ix = self.indices
        self.rq.refresh(ix.blocks)
        query = {
            "bool": {
                "filter": [
                    {"term": {"state": "replayed"}},
                    {"range": {"commit_us": {"lt": c.to_us(older_than)}}},
                ],
                "must_not": [{"term": {"purged": True}}],
            }
        }
        ids = [
            h["_id"] for h in self.rq.search(ix.blocks, query, [{"block_id": "asc"}], source=False)
        ]
        for chunk in c.chunks(ids, IDS_PER_QUERY):
            # Mark first: a purged header answers for re-delivered revisions (duplicates).
            self.rq.check(
                self.rq.bulk(
                    [
                        ({"update": {"_index": ix.blocks, "_id": bid}}, {"doc": {"purged": True}})
                        for bid in chunk
                    ],
                    "mark purged blocks",
                ),
                "mark purged blocks",
            )
            for index in (ix.statements, ix.revisions):
                self.rq.client.request(
                    f"purge {index}",
                    "delete_by_query",
                    index=index,
                    body={"query": {"bool": {"filter": [{"terms": {"block_id": chunk}}]}}},
                    conflicts="proceed",
                    refresh=True,
                )
        return len(ids)
