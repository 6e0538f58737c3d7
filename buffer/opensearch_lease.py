"""The settler's lease in OpenSearch (one meta document, conditional writes) and retention.

``LeaseDoc.row`` reads the lease and ``cas`` writes it if it is what the policy read
(``buffer.settling.Buffer`` decides who may take it); ``purge`` is the retention of replayed
blocks (their headers marked purged, their statements and revisions deleted).
"""

from __future__ import annotations

from collections.abc import Sequence

from buffer import _common as c
from buffer.opensearch_requests import IDS_PER_QUERY, Hit, Requests

LEASE_ID = "lease/settler"


class LeaseDoc:
    """The lease and retention of one buffer."""

    def __init__(self, rq: Requests) -> None:
        self.rq = rq
        self.indices = rq.indices
        self._seen: tuple[Hit | None] | None = None  # the lease document ``row`` last read

    def row(self) -> tuple[str, int] | None:
        """The lease's owner and expiry (microseconds), None when free (real-time)."""
        doc = self.rq.get(self.indices.meta, LEASE_ID)
        self._seen = (doc,)
        return _held(doc)

    def cas(self, expected: tuple[str, int] | None, new: tuple[str, int] | None) -> bool:
        """Write ``new`` (None: free) if the lease is ``expected``: a create when there is no
        lease document, else an update on the version read (a lost answer to our own write is
        recognised by the document saying what we wrote). The document ``row`` read is written
        on without a second read when it says ``expected`` (the write is conditional)."""
        fields = (
            {"owner": None, "expires_us": 0}
            if new is None
            else {"owner": new[0], "expires_us": new[1]}
        )
        meta = self.indices.meta
        seen, self._seen = self._seen, None
        doc = None if seen is None else seen[0]
        if seen is None or _held(doc) != expected:
            doc = self.rq.get(meta, LEASE_ID)
            if _held(doc) != expected:
                return False
        if doc is None:
            return self.rq.create_meta(LEASE_ID, {"kind": "lease", **fields})
        if self.rq.update_if(meta, LEASE_ID, doc, fields):
            return True
        again = self.rq.get(meta, LEASE_ID)
        return again is not None and all(again["_source"].get(k) == v for k, v in fields.items())

    def purge(self, block_ids: Sequence[str]) -> tuple[int, int]:
        """Flag the blocks' headers purged, then delete their statements and revisions;
        returns how many of each were deleted."""
        ix = self.indices
        deleted = {ix.statements: 0, ix.revisions: 0}
        for chunk in c.chunks(block_ids, IDS_PER_QUERY):
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
                answer = self.rq.client.request(
                    f"purge {index}",
                    "delete_by_query",
                    index=index,
                    body={"query": {"bool": {"filter": [{"terms": {"block_id": chunk}}]}}},
                    conflicts="proceed",
                    refresh=True,
                )
                deleted[index] += int((answer or {}).get("deleted", 0))
        return deleted[ix.statements], deleted[ix.revisions]


def _held(doc: Hit | None) -> tuple[str, int] | None:
    if doc is None or doc["_source"].get("owner") is None:
        return None
    src = doc["_source"]
    return (str(src["owner"]), int(src.get("expires_us") or 0))
