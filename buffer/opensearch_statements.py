"""A block's statement documents, derived from its stored header (``buffer.opensearch``).

``Statements.actions`` gives the bulk actions indexing a header's statements (and deleting those a
replaced copy had beyond); ``Statements.sync`` makes the stored statements match the stored header
again after a race between writers of conflicting copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buffer import _common as c
from buffer.opensearch_requests import (
    HEADER_LIGHT,
    MAX_RACES,
    Action,
    Hit,
    Requests,
    date_field,
)
from runtime.errors import TransientError


class Statements:
    """Writes a block's statements; ``statement_states`` mirrors the block's state onto them."""

    def __init__(self, rq: Requests, *, statement_states: bool) -> None:
        self.rq = rq
        self.indices = rq.indices
        self.statement_states = statement_states

    def actions(self, header: Mapping[str, Any], stored: Hit | None) -> list[Action]:
        """Index the statements of a header (and delete those a replaced copy had beyond)."""
        summary = c.summary_from_body(header["summary"], header["arn"])
        kinds = list(header.get("statement_kinds") or [])
        index = self.indices.statements
        actions: list[Action] = []
        for st in summary.statements:
            start = c.to_us(st.start_time)
            actions.append(
                (
                    {"index": {"_index": index, "_id": f"{summary.block_id}/{st.index}"}},
                    {
                        "statement_id": f"{summary.block_id}/{st.index}",
                        "block_id": summary.block_id,
                        "index": st.index,
                        "ledger": summary.ledger,
                        "strand_id": summary.address.strand_id,
                        "sequence_no": summary.address.sequence_no,
                        "start_us": start,
                        "start_time": date_field(start),
                        "commit_us": header["commit_us"],
                        "commit_time": header["commit_time"],
                        "transaction_id": summary.transaction_id,
                        "text": st.text,
                        "digest": st.digest.hex(),
                        "kind": kinds[st.index] if st.index < len(kinds) else None,
                        "state": header["state"] if self.statement_states else None,
                    },
                )
            )
        before = 0 if stored is None else int(stored["_source"].get("statements", 0))
        for i in range(len(summary.statements), before):
            actions.append(({"delete": {"_index": index, "_id": f"{summary.block_id}/{i}"}}, None))
        return actions

    def sync(self, block_id: str) -> None:
        """Make a block's statements match its stored header, again until the header did not
        change meanwhile (concurrent writers of conflicting copies each end here)."""
        index = self.indices.statements
        for _ in range(MAX_RACES):
            doc = self.rq.get(self.indices.blocks, block_id, excludes=HEADER_LIGHT)
            if doc is None or doc["_source"].get("purged"):
                return
            self.rq.check(
                self.rq.bulk(self.actions(doc["_source"], None), "rewrite statements"),
                "rewrite statements",
            )
            known = [f"{block_id}/{i}" for i in range(int(doc["_source"]["statements"]))]
            self.rq.refresh(index)  # delete_by_query deletes what a search sees
            self.rq.client.request(
                f"delete extra statements of {block_id}",
                "delete_by_query",
                index=index,
                body={
                    "query": {
                        "bool": {
                            "filter": [{"term": {"block_id": block_id}}],
                            "must_not": [{"terms": {"statement_id": known}}],
                        }
                    }
                },
                conflicts="proceed",
            )
            again = self.rq.get(self.indices.blocks, block_id, excludes=["raw", "summary"])
            if again is not None and again["_seq_no"] == doc["_seq_no"]:
                return
        raise TransientError(f"the header of block {block_id} kept changing under its statements")
