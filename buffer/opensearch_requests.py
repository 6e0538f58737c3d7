"""The requests every part of ``OpenSearchBuffer`` sends, on one client and one set of indices.

``Requests`` holds the client (``buffer.opensearch_client``), the index names
(``buffer.opensearch_schema.Indices``), the search page size and the refresh strategy
(``buffer.opensearch``'s docstring), and sends: real-time gets and multi-gets, searches paged with
``search_after``, counts, aggregations (composite ones paged with ``after``), bulk requests and
the checks of their per-item statuses, and the conditional (``if_seq_no``/``if_primary_term``)
read-modify-write of single documents. The small encoders of document fields (dates, base64) and
the ids and limits the adapter's modules share are here too.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from typing import Any

from buffer import _common as c
from buffer.opensearch_client import Client, OpenSearchError
from buffer.opensearch_schema import Indices
from journal.errors import InputError
from runtime.errors import TransientError

Hit = dict[str, Any]
Action = tuple[dict[str, Any], dict[str, Any] | None]  # a bulk action and its source
MAX_PAGE = 10_000  # index.max_result_window: no search asks for more at once
MAX_RACES = 8  # classification rounds when concurrent writers keep changing the same ids
IDS_PER_QUERY = 1_000  # ids per mget or terms filter
HEADER_LIGHT = ["raw"]  # fields a header read never needs (the raw copy is evidence only)
NO_SOURCE = ["*"]  # an existence check: no field of the document is wanted


def date_field(us: int | None) -> str | None:
    """A ``date`` field value (milliseconds, UTC) from microseconds."""
    if us is None:
        return None
    return c.from_us(us).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def source_filter(excludes: Sequence[str]) -> dict[str, Any]:
    if list(excludes) == NO_SOURCE:
        return {"_source": False}
    return {"_source": {"excludes": list(excludes)}} if excludes else {}


def strand_doc_id(ledger: str, strand_id: str) -> str:
    return f"strand/{ledger}/{strand_id}"


def item_reason(result: Mapping[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error)


class Requests:
    """The requests of one buffer (the module docstring)."""

    def __init__(
        self, client: Client, indices: Indices, *, page_size: int, refresh_before_read: bool
    ) -> None:
        self.client = client
        self.indices = indices
        self.page_size = page_size
        self.refresh_before_read = refresh_before_read

    def create_meta(self, doc_id: str, source: Mapping[str, Any]) -> bool:
        """Create a meta document; False when it already exists."""
        index = self.indices.meta
        done = self.client.request(
            f"create {index}/{doc_id}",
            "create",
            index=index,
            id=doc_id,
            body=dict(source),
            allow=(409,),
        )
        return done is not None

    # --- requests ---------------------------------------------------------------------------------

    def refresh(self, *indices: str) -> None:
        if self.refresh_before_read:
            names = ",".join(indices)
            self.client.request(f"refresh {names}", "indices.refresh", index=names)

    def get(self, index: str, doc_id: str, *, excludes: Sequence[str] = ()) -> Hit | None:
        """One document, real-time (an mget: a missing document is an answer, not a 404 that
        opensearch-py would log as a warning)."""
        return self.mget(index, [doc_id], excludes=excludes).get(doc_id)

    def mget(
        self, index: str, ids: Iterable[str], *, excludes: Sequence[str] = ()
    ) -> dict[str, Hit]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Hit] = {}
        params: dict[str, Any] = {"_source_excludes": ",".join(excludes)} if excludes else {}
        for chunk in c.chunks(wanted, IDS_PER_QUERY):
            answer = self.client.request(
                f"mget {index} ({len(chunk)} ids)",
                "mget",
                index=index,
                body={"ids": chunk},
                **params,
            )
            for doc in answer["docs"]:
                if doc.get("found"):
                    found[doc["_id"]] = doc
        return found

    def mget_docs(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]]
    ) -> dict[tuple[str, str], Hit]:
        """(index, id) → document, for ``(index, id, excluded fields)`` across indices."""
        found: dict[tuple[str, str], Hit] = {}
        unique = list(dict.fromkeys((i, d, tuple(x)) for i, d, x in wanted))
        for start in range(0, len(unique), IDS_PER_QUERY):
            chunk = unique[start : start + IDS_PER_QUERY]
            docs = [{"_index": i, "_id": d, **source_filter(x)} for i, d, x in chunk]
            answer = self.client.request(
                f"mget ({len(chunk)} documents)", "mget", body={"docs": docs}
            )
            for doc in answer["docs"]:
                if doc.get("found"):
                    found[(doc["_index"], doc["_id"])] = doc
                elif "error" in doc:
                    raise OpenSearchError("mget", 404, item_reason(doc))
        return found

    def search(
        self,
        index: str,
        query: Mapping[str, Any],
        sort: Sequence[Mapping[str, Any]],
        *,
        limit: int | None = None,
        source: Any = True,
        versions: bool = False,
    ) -> Iterator[Hit]:
        """Every hit of ``query`` in ``sort`` order (the last sort key must be unique), paged
        with ``search_after``; at most ``limit`` hits."""
        after: list[Any] | None = None
        left = limit
        while left is None or left > 0:
            size = self.page_size if left is None else min(self.page_size, left)
            body: dict[str, Any] = {
                "query": query,
                "sort": list(sort),
                "size": size,
                "_source": source,
                "track_total_hits": False,
            }
            if versions:
                body["seq_no_primary_term"] = True
            if after is not None:
                body["search_after"] = after
            answer = self.client.request(f"search {index}", "search", index=index, body=body)
            hits = answer["hits"]["hits"]
            yield from hits
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
            if left is not None:
                left -= len(hits)

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": query} if query is not None else None
        answer = self.client.request(f"count {index}", "count", index=index, body=body)
        return int(answer["count"])

    def aggregate(
        self, index: str, aggs: Mapping[str, Any], query: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"size": 0, "aggs": aggs, "track_total_hits": False}
        if query is not None:
            body["query"] = query
        answer = self.client.request(f"aggregate {index}", "search", index=index, body=body)
        return dict(answer.get("aggregations", {}))

    def composite(
        self,
        index: str,
        sources: Sequence[Mapping[str, Any]],
        aggs: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every bucket of a composite aggregation, paged with ``after``."""
        after: dict[str, Any] | None = None
        while True:
            composite: dict[str, Any] = {"size": self.page_size, "sources": list(sources)}
            if after is not None:
                composite["after"] = after
            spec: dict[str, Any] = {"composite": composite}
            if aggs:
                spec["aggs"] = dict(aggs)
            result = self.aggregate(index, {"buckets": spec})["buckets"]
            buckets = result.get("buckets", [])
            yield from buckets
            after = result.get("after_key")
            if not buckets or after is None or len(buckets) < self.page_size:
                return

    def bulk(self, actions: list[Action], what: str) -> list[Hit]:
        if not actions:
            return []
        return self.client.bulk(actions, what)

    @staticmethod
    def check(results: Sequence[Hit], what: str, ok: Sequence[int] = ()) -> None:
        for result in results:
            status = int(result.get("status", 0))
            if status not in (200, 201, *ok):
                raise OpenSearchError(f"{what} ({result.get('_id')})", status, item_reason(result))

    def cas(
        self,
        index: str,
        doc_id: str,
        change: Callable[[Mapping[str, Any]], Mapping[str, Any] | None],
        *,
        missing_ok: bool = True,
    ) -> bool:
        """Read-modify-write one document with ``if_seq_no``/``if_primary_term``: ``change(source)``
        returns the fields to update (None: nothing to do). Returns whether it wrote."""
        for _ in range(MAX_RACES):
            doc = self.get(index, doc_id)
            if doc is None:
                if missing_ok:
                    return False
                raise InputError(f"{index}/{doc_id} is not in the settling buffer")
            fields = change(doc["_source"])
            if not fields:
                return False
            if self.update_if(index, doc_id, doc, fields):
                return True
        raise TransientError(f"OpenSearch {index}/{doc_id} kept changing under a conditional write")

    def update_if(
        self, index: str, doc_id: str, doc: Hit, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """A partial update on the version ``doc`` was read at (its answer, with the new
        ``_seq_no``); None when it moved (409)."""
        done = self.client.request(
            f"update {index}/{doc_id}",
            "update",
            index=index,
            id=doc_id,
            body={"doc": dict(fields)},
            if_seq_no=doc["_seq_no"],
            if_primary_term=doc["_primary_term"],
            allow=(409,),
        )
        return None if done is None else dict(done)
