"""Rejected records in OpenSearch: kept once per ``rejection_id``, read, acknowledged.

``Rejections.keep`` creates each rejection once, keeping the earliest copy's provenance and bytes
(``_common.rejection_key``); ``rejected`` and ``unresolved_rejections`` read them,
``unresolved_among`` and ``resolve`` acknowledge them (``buffer.settling.Buffer`` decides which).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from buffer import _common as c
from buffer.opensearch_requests import Action, Requests, b64, date_field, unb64
from buffer.port import Rejection


class Rejections:
    """The ``rejected`` index of one buffer."""

    def __init__(self, rq: Requests) -> None:
        self.rq = rq
        self.indices = rq.indices

    def keep(self, rejections: Sequence[tuple[Rejection, str | None]]) -> None:
        """Create each rejection once (by ``rejection_id``); of copies, the earliest
        ``(arrived_at, origin)`` is the one kept."""
        best: dict[str, tuple[Rejection, str | None]] = {}
        for rejection, block_id in rejections:
            rid = rejection.rejection_id
            known = best.get(rid)
            if known is None or c.rejection_key(rejection) < c.rejection_key(known[0]):
                best[rid] = (rejection, block_id if known is None else known[1])
        if not best:
            return
        index = self.indices.rejected
        actions: list[Action] = []
        for rid, (r, block_id) in best.items():
            arrived = c.opt_us(r.arrived_at)
            actions.append(
                (
                    {"create": {"_index": index, "_id": rid}},
                    {
                        "rejection_id": rid,
                        "kind": r.kind,
                        "reason": r.reason,
                        "raw": b64(r.raw),
                        "raw_sha256": c.sha256_hex(r.raw),
                        "origin": r.origin,
                        "arrived_us": arrived,
                        "arrived_at": date_field(arrived),
                        "record_id": r.record_id,
                        "block_id": block_id,
                        "resolved": False,
                        "resolved_us": None,
                        "resolved_by": None,
                        "resolution": None,
                    },
                )
            )
        results = self.rq.bulk(actions, "keep rejections")
        taken = [
            rid for rid, result in zip(best, results, strict=True) if result.get("status") == 409
        ]
        self.rq.check([r for r in results if r.get("status") != 409], "keep rejections")
        for rid in taken:
            r = best[rid][0]
            self.rq.cas(index, rid, _if_earlier(r))

    def rejected(self) -> Sequence[Rejection]:
        """Every rejection (the caller refreshed the index)."""
        out = []
        for hit in self.rq.search(
            self.indices.rejected,
            {"match_all": {}},
            [
                {"arrived_us": {"order": "asc", "missing": "_last"}},
                {"origin": "asc"},
                {"rejection_id": "asc"},
            ],
        ):
            src = hit["_source"]
            out.append(
                Rejection(
                    origin=src["origin"],
                    raw=unb64(src["raw"]),
                    kind=src["kind"],
                    reason=src["reason"],
                    arrived_at=c.opt_from_us(src.get("arrived_us")),
                    record_id=src.get("record_id"),
                    resolved_at=c.opt_from_us(src.get("resolved_us")),
                    resolved_by=src.get("resolved_by"),
                    resolution=src.get("resolution"),
                )
            )
        return out

    def unresolved_rejections(self) -> int:
        return self.rq.count(self.indices.rejected, {"term": {"resolved": False}})

    def unresolved_among(self, ids: Collection[str]) -> set[str]:
        """Of ``ids``, the rejections kept and not yet resolved (real-time)."""
        docs = self.rq.mget(self.indices.rejected, sorted(ids), excludes=["raw"])
        return {rid for rid, doc in docs.items() if not doc["_source"].get("resolved")}

    def resolve(self, ids: Sequence[str], reason: str, actor: str, at_us: int) -> None:
        """Resolve each rejection, once (a compare-and-set per id)."""
        change = {
            "resolved": True,
            "resolved_us": at_us,
            "resolved_by": actor,
            "resolution": reason,
        }
        for rid in ids:
            self.rq.cas(
                self.indices.rejected, rid, lambda src: None if src.get("resolved") else change
            )


def _if_earlier(r: Rejection) -> Callable[[Mapping[str, Any]], Mapping[str, Any] | None]:
    """The change keeping a rejection's earliest copy (its provenance and bytes)."""
    arrived = c.opt_us(r.arrived_at)

    def change(src: Mapping[str, Any]) -> Mapping[str, Any] | None:
        stored = c.arrival_key(src.get("arrived_us"), src["origin"], src["raw_sha256"])
        if c.rejection_key(r) < stored:
            return {
                "origin": r.origin,
                "arrived_us": arrived,
                "arrived_at": date_field(arrived),
                "raw": b64(r.raw),
                "raw_sha256": c.sha256_hex(r.raw),
            }
        return None

    return change
