"""What an operator reads of the whole OpenSearch buffer: the figures of ``stats``, the dump rows.

``figures`` asks every count in one ``_msearch``; ``dump_rows`` reads every index into a
``_common.DumpBuilder``; ``highest_seen`` is each strand's highest sequence number (the store
refreshed the indices first: ``buffer.opensearch_store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buffer import _common as c
from buffer.opensearch_client import OpenSearchError
from buffer.opensearch_requests import MAX_PAGE, Requests

# (ledger, strand id) -> (highest sequence number, has headers); the strand documents (hits)
Strands = tuple[dict[tuple[str, str], tuple[int | None, bool]], list[Any]]


class Figures:
    """Figures and dump rows of one buffer."""

    def __init__(self, rq: Requests) -> None:
        self.rq = rq

    def _strand_searches(self) -> list[tuple[str, dict[str, Any]]]:
        """Each strand's highest sequence number and whether it has headers (one aggregation on
        blocks and revisions), and every strand document, with its version."""
        ix = self.rq.indices
        per_strand = {
            "terms": {"field": "ledger", "size": MAX_PAGE},
            "aggs": {
                "strand": {
                    "terms": {"field": "strand_id", "size": MAX_PAGE},
                    "aggs": {
                        "highest": {"max": {"field": "sequence_no"}},
                        "index": {"terms": {"field": "_index", "size": 2}},
                    },
                }
            },
        }
        return [
            (f"{ix.blocks},{ix.revisions}", {"size": 0, "aggs": {"ledger": per_strand}}),
            (
                ix.meta,
                {
                    "size": MAX_PAGE,
                    "query": {"bool": {"filter": [{"term": {"kind": "strand"}}]}},
                    "sort": [{"ledger": "asc"}, {"strand_id": "asc"}],
                    "seq_no_primary_term": True,
                },
            ),
        ]

    def _strands_of(self, seen: Mapping[str, Any], docs: Mapping[str, Any]) -> Strands:
        blocks = self.rq.indices.blocks
        strands: dict[tuple[str, str], tuple[int | None, bool]] = {}
        ledgers = seen.get("aggregations", {}).get("ledger", {}).get("buckets", [])
        hits = docs["hits"]["hits"]
        if (
            len(ledgers) >= MAX_PAGE
            or len(hits) >= MAX_PAGE
            or any(len(ledger["strand"]["buckets"]) >= MAX_PAGE for ledger in ledgers)
        ):
            # One request answers for every strand up to a page; past it the list would be cut
            # short without a word, and a strand left out would be neither released nor held.
            raise OpenSearchError(
                "strands",
                "-",
                f"the buffer holds {MAX_PAGE:,} strands or more, more than one request lists",
            )
        for ledger in ledgers:
            for strand in ledger["strand"]["buckets"]:
                value = strand["highest"]["value"]
                has_blocks = any(b["key"] == blocks for b in strand["index"]["buckets"])
                strands[(ledger["key"], strand["key"])] = (
                    None if value is None else int(value),
                    has_blocks,
                )
        return strands, list(hits)

    def _msearch(self, searches: list[tuple[str, dict[str, Any]]], what: str) -> list[Any]:
        body: list[dict[str, Any]] = []
        for index, search in searches:
            body += [{"index": index}, {"track_total_hits": False, **search}]
        answer = self.rq.client.request(f"{what} (msearch)", "msearch", body=body)
        responses = list(answer["responses"])
        for response in responses:
            if "error" in response:
                raise OpenSearchError(what, response.get("status", 500), str(response["error"]))
        return responses

    def strands(self) -> Strands:
        """Every strand seen (ledger, strand id → highest sequence number, has headers) and
        every strand document (hits, with versions): one ``_msearch``."""
        seen, docs = self._msearch(self._strand_searches(), "strands")
        return self._strands_of(seen, docs)

    def figures(self) -> dict[str, Any]:
        """Every count in one ``_msearch`` request: ``counts`` (as ``Store.counters``),
        ``delays`` (the latest arrivals' ingest delays), ``largest`` (the largest of all),
        ``oldest_pending_us`` and ``strands`` (as ``strands`` answers)."""
        ix = self.rq.indices
        searches: list[tuple[str, dict[str, Any]]] = [
            (
                ix.blocks,
                {
                    "size": 0,
                    "aggs": {
                        "states": {"terms": {"field": "state", "size": 16}},
                        "largest": {"max": {"field": "delay_ms"}},
                        "pending": {
                            "filter": {"term": {"state": "pending"}},
                            "aggs": {"oldest": {"min": {"field": "commit_us"}}},
                        },
                    },
                },
            ),
            (
                ix.blocks,
                {
                    "size": c.DELAY_SAMPLE,
                    "query": {"bool": {"filter": [{"exists": {"field": "arrived_us"}}]}},
                    "sort": [{"arrived_us": "desc"}, {"block_id": "asc"}],
                    "_source": ["delay_ms"],
                },
            ),
            (
                f"{ix.statements},{ix.revisions},{ix.rejected}",
                {
                    "size": 0,
                    "aggs": {
                        "index": {"terms": {"field": "_index", "size": 8}},
                        "conflicts": {"filter": {"term": {"kind": c.CONFLICT}}},
                    },
                },
            ),
            *self._strand_searches(),
        ]
        responses = self._msearch(searches, "stats")
        counts_aggs, sample, sizes, seen, strand_docs = responses
        aggs = counts_aggs.get("aggregations", {})
        states = {b["key"]: int(b["doc_count"]) for b in aggs["states"]["buckets"]}
        oldest = aggs["pending"]["oldest"]["value"]
        delays = [
            float(h["_source"]["delay_ms"])
            for h in sample["hits"]["hits"]
            if h["_source"].get("delay_ms") is not None
        ]
        largest = aggs["largest"]["value"]
        size_aggs = sizes.get("aggregations", {})
        per_index = {b["key"]: int(b["doc_count"]) for b in size_aggs["index"]["buckets"]}
        conflicts = int(size_aggs["conflicts"]["doc_count"])
        counts = {f"blocks.{state}": n for state, n in states.items()}
        counts.update(
            statements=per_index.get(ix.statements, 0),
            revisions=per_index.get(ix.revisions, 0),
            rejected=per_index.get(ix.rejected, 0) - conflicts,
            conflicts=conflicts,
            gaps=sum(len(h["_source"].get("gaps") or []) for h in strand_docs["hits"]["hits"]),
        )
        return {
            "counts": counts,
            "delays": delays,
            "largest": None if largest is None else float(largest),
            "oldest_pending_us": None if oldest is None else int(oldest),
            "strands": self._strands_of(seen, strand_docs),
        }

    # --- dump -------------------------------------------------------------------------------------

    def dump_rows(self, d: c.DumpBuilder) -> None:
        """Every block, statement, revision, control record and rejection (the strands and
        gaps are the store's)."""
        ix = self.rq.indices
        for hit in self.rq.search(ix.blocks, {"match_all": {}}, [{"block_id": "asc"}]):
            d.block(hit["_source"])
        for hit in self.rq.search(ix.statements, {"match_all": {}}, [{"statement_id": "asc"}]):
            d.statement(hit["_source"])
        for hit in self.rq.search(
            ix.revisions,
            {"match_all": {}},
            [{"revision_id": "asc"}],
            source={"excludes": ["revision"]},
        ):
            d.revision(hit["_source"])
        for hit in self.rq.search(
            ix.meta, {"bool": {"filter": [{"term": {"kind": "control"}}]}}, [{"record_id": "asc"}]
        ):
            d.control_record(hit["_source"])
        for hit in self.rq.search(ix.rejected, {"match_all": {}}, [{"rejection_id": "asc"}]):
            d.rejection(hit["_source"])
