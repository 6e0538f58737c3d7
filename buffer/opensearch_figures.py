"""What an operator reads of the whole OpenSearch buffer: ``stats`` and ``dump``.

``stats`` asks every figure in one ``_msearch`` (after one refresh); ``dump`` reads every index in
the shape ``_common.DumpBuilder`` gives both adapters.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from buffer import _common as c
from buffer.opensearch_client import OpenSearchError
from buffer.opensearch_marks import Marks
from buffer.opensearch_read import Reader
from buffer.opensearch_requests import MAX_PAGE, Requests
from buffer.port import BLOCK_STATES, BufferStats


class Figures:
    """Stats and dump of one buffer."""

    def __init__(self, rq: Requests, reader: Reader, marks: Marks) -> None:
        self.rq = rq
        self.reader = reader
        self.marks = marks

    def _highest_seen(self) -> dict[str, int]:
        highest: dict[str, int] = {}
        for index in (self.rq.indices.blocks, self.rq.indices.revisions):
            for bucket in self.rq.composite(
                index,
                [
                    {"ledger": {"terms": {"field": "ledger"}}},
                    {"strand": {"terms": {"field": "strand_id"}}},
                ],
                {"highest": {"max": {"field": "sequence_no"}}},
            ):
                key = f"{bucket['key']['ledger']}/{bucket['key']['strand']}"
                value = bucket["highest"]["value"]
                if value is not None:
                    highest[key] = max(highest.get(key, -1), int(value))
        return highest

    def stats(self, now: datetime) -> BufferStats:
        """Every figure in one ``_msearch`` request (after one refresh): the settler asks once per
        cycle, ``status`` once per call. The oldest pending commit is the smallest commit time of
        any pending block (within a strand commit times rise with the sequence number, so it is
        the commit of the first pending block of some strand)."""
        ix = self.rq.indices
        self.rq.refresh(ix.blocks, ix.statements, ix.revisions, ix.rejected, ix.meta)
        strand_terms = {
            "terms": {"field": "ledger", "size": MAX_PAGE},
            "aggs": {
                "strand": {
                    "terms": {"field": "strand_id", "size": MAX_PAGE},
                    "aggs": {"highest": {"max": {"field": "sequence_no"}}},
                }
            },
        }
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
            (f"{ix.blocks},{ix.revisions}", {"size": 0, "aggs": {"ledger": strand_terms}}),
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
            (
                ix.meta,
                {
                    "size": MAX_PAGE,
                    "query": {"bool": {"filter": [{"term": {"kind": "strand"}}]}},
                    "_source": ["gaps"],
                },
            ),
        ]
        body: list[dict[str, Any]] = []
        for index, search in searches:
            body += [{"index": index}, {"track_total_hits": False, **search}]
        answer = self.rq.client.request("stats (msearch)", "msearch", body=body)
        responses = answer["responses"]
        for response in responses:
            if "error" in response:
                raise OpenSearchError("stats", response.get("status", 500), str(response["error"]))
        counts_aggs, sample, seen, sizes, strand_docs = responses
        aggs = counts_aggs.get("aggregations", {})
        states = {b["key"]: int(b["doc_count"]) for b in aggs["states"]["buckets"]}
        oldest = aggs["pending"]["oldest"]["value"]
        delays = [
            float(h["_source"]["delay_ms"])
            for h in sample["hits"]["hits"]
            if h["_source"].get("delay_ms") is not None
        ]
        value = aggs["largest"]["value"]
        if value is not None and (not delays or max(delays) < float(value)):
            delays.append(float(value))
        highest: dict[str, int] = {}
        for ledger in seen.get("aggregations", {}).get("ledger", {}).get("buckets", []):
            for strand in ledger["strand"]["buckets"]:
                if strand["highest"]["value"] is not None:
                    highest[f"{ledger['key']}/{strand['key']}"] = int(strand["highest"]["value"])
        size_aggs = sizes.get("aggregations", {})
        per_index = {b["key"]: int(b["doc_count"]) for b in size_aggs["index"]["buckets"]}
        conflicts = int(size_aggs["conflicts"]["doc_count"])
        gaps = sum(len(h["_source"].get("gaps") or []) for h in strand_docs["hits"]["hits"])
        return BufferStats(
            blocks={s: states.get(s, 0) for s in BLOCK_STATES},
            statements=per_index.get(ix.statements, 0),
            revisions=per_index.get(ix.revisions, 0),
            rejected=per_index.get(ix.rejected, 0) - conflicts,
            conflicts=conflicts,
            gaps=gaps,
            oldest_pending_commit=None if oldest is None else c.from_us(int(oldest)),
            highest_sequence_seen=dict(sorted(highest.items())),
            ingest_delays_ms=delays,
        )

    # --- dump -------------------------------------------------------------------------------------

    def dump(self) -> Mapping[str, Any]:
        ix = self.rq.indices
        self.rq.refresh(*ix.all().values())
        d = c.DumpBuilder()
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
        highest = self._highest_seen()
        with_blocks = {f"{a}/{b}" for a, b in self.reader.strands()}
        strand_docs = {f"{s['ledger']}/{s['strand_id']}": s for s in self.marks.strand_docs()}
        for key in sorted({*highest, *strand_docs}):
            doc = strand_docs.get(key, {})
            d.strand(key, doc.get("replayed_through"), highest.get(key), key in with_blocks)
        for g in self.marks.gaps():
            d.gap(g.ledger, g.strand_id, g.first, g.last, g.passed_at)
        return d.dump()
