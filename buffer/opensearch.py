"""``OpenSearchBuffer``: the settling buffer in Amazon OpenSearch Service (or any OpenSearch API).

The ingest Lambda writes into it and the settler Lambda reads from it, as the design proposes;
the policy is shared with ``SqliteBuffer``, so both adapters decide alike and pass one contract
suite: what ``put`` does with each copy is ``buffer.put_policy``'s (this adapter reads the stored
copies by id and plans the writes a decision means), the rest (which copy is kept, the dump's
shape) ``buffer._common``'s.
Indices and mappings: ``buffer.opensearch_schema``. Requests, retries and the mapping of
opensearch-py errors into ``journal.errors``: ``buffer.opensearch_client``.

How the port's guarantees are kept without transactions:

- **Create-if-absent**: every record is written with ``op_type=create`` under its deterministic
  ``_id`` through the bulk API, in chunks bounded by count and bytes. 409 means the id is taken:
  the stored copy is fetched and compared (same fingerprint: duplicate; other: conflict, kept
  with the rejected records). Replacing a stored copy (an earlier copy's provenance, or an
  earlier conflicting copy while its block is still pending) is a conditional write
  (``if_seq_no``/``if_primary_term``); when another writer got there first the record is
  classified again against what is now stored. Each document carries the ``write_id`` of the
  ``put`` call that wrote it, so a retried request whose first answer was lost recognises its
  own copy instead of counting it as a duplicate.
- **Statements** are derived from their block header and written in the same bulk request as
  it (ahead of it). A bulk request is not atomic: should a statement be refused after its header
  was stored, ``put`` raises, the batch is re-delivered, and the re-delivery (whose one ``_mget``
  also checks that the statements of every summary exist) writes them again from the header.
- **Requests** (docs/opensearch.md): an ingest event costs one ``_mget`` and one ``_bulk`` (per
  chunk); a settled group of blocks one ``_bulk`` (marks and statement states) and one update of
  the strand's replayed mark, since the versions the marks are conditional on come from the
  pending page that read the blocks (``seq_no_primary_term``).
- **Marks, repair, gaps and the lease** are read-modify-write cycles on single documents with
  ``if_seq_no``/``if_primary_term``; a conflict re-reads and decides again (a lost answer to our
  own write is recognised because the document already says what we wrote). ``mark`` checks every
  block first, so a mark naming an unknown block changes nothing.
- **Releasable blocks** come from a search on the block headers filtered by ledger, strand,
  ``state: pending`` and ``sequence_no > after``, sorted by ``sequence_no`` (unique within a
  strand) then ``block_id``, paged with ``search_after``: never ``from``, so its cost grows with
  the page, not with what is buffered, and it never hits the result window.

Refresh strategy. Gets and mgets by id are real-time; searches see only refreshed segments. The
ingest writes without waiting for a refresh (throughput; its own reads are mgets), and every read
that searches (pending, get_block's revisions, blocks, strands, gaps, stats, rejected, repair,
retention, dump) first asks for a refresh of the indices it reads (a no-op when nothing changed).
So the settler always sees every write the ingest has acknowledged, whatever ``refresh_interval``
is; the interval then only bounds how stale an operator's Dashboards view may be.
``refresh_before_read=False`` leaves it to the interval: only safe when the settle window is far
longer than the interval (docs/opensearch.md).

osmem-server notes (the in-memory OpenSearch API the tests run against, 0.1.6, API 3.8.0). Relied
on, as in OpenSearch: bulk ``create``/``index``/``update``/``delete`` with per-item statuses (409
for a taken id or a stale ``if_seq_no``, 404 for a missing document), ``if_seq_no`` and
``if_primary_term`` on update and bulk items, multi-index ``mget`` with per-document source
filtering, ``search_after`` on sorted keyword/long fields, ``terms``/``range``/``exists``/``bool``
filters, composite, terms and max aggregations, ``count``, ``delete_by_query``, composable index
templates, ``dynamic: strict`` mappings, ``enabled: false`` objects, and the 10,000-hit result
window (``from + size``). Worked around: numeric
fields with doc values cost osmem ~0.5 ms each per document, so numbers nobody searches, sorts or
aggregates on are mapped ``index: false, doc_values: false``. Not emulated: refresh (writes are
searchable at once), so tests check that the adapter asks for a refresh, not its effect; and
faults (429/503, dropped connections): the tests put a fault-injecting proxy in front of it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from buffer import _common as c
from buffer import put_policy as policy
from buffer.opensearch_client import Client, Endpoint, OpenSearchError, RetryPolicy, connect
from buffer.opensearch_schema import SCHEMA_VERSION, IndexSettings, Indices, template
from buffer.port import (
    BLOCK_STATES,
    BlockRow,
    BlockState,
    BufferedBlock,
    BufferStats,
    Gap,
    Incoming,
    Lease,
    Mark,
    PutReport,
    Rejection,
)
from journal.errors import InputError
from journal.records import BlockSummary, ControlRecord, RevisionDetails
from runtime.errors import TransientError

log = logging.getLogger(__name__)

Hit = dict[str, Any]
Action = tuple[dict[str, Any], dict[str, Any] | None]  # a bulk action and its source
LEASE_ID = "lease/settler"
SCHEMA_ID = "schema"
MAX_PAGE = 10_000  # index.max_result_window: no search asks for more at once
MAX_RACES = 8  # classification rounds when concurrent writers keep changing the same ids
_IDS_PER_QUERY = 1_000  # ids per mget or terms filter
_HEADER_LIGHT = ["raw"]  # fields a header read never needs (the raw copy is evidence only)
_NO_SOURCE = ["*"]  # an existence check: no field of the document is wanted


# --- small helpers --------------------------------------------------------------------------------


def _date(us: int | None) -> str | None:
    """A ``date`` field value (milliseconds, UTC) from microseconds."""
    if us is None:
        return None
    return c.from_us(us).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def _source_filter(excludes: Sequence[str]) -> dict[str, Any]:
    if list(excludes) == _NO_SOURCE:
        return {"_source": False}
    return {"_source": {"excludes": list(excludes)}} if excludes else {}


def _strand_doc_id(ledger: str, strand_id: str) -> str:
    return f"strand/{ledger}/{strand_id}"


def _provenance(item: Incoming, arn: str, write_id: str) -> dict[str, Any]:
    arrived = c.opt_us(item.arrived_at)
    return {
        "fingerprint": item.fingerprint,
        "raw": _b64(item.raw),
        "raw_sha256": c.sha256_hex(item.raw),
        "arn": arn,
        "origin": item.origin,
        "arrived_us": arrived,
        "arrived_at": _date(arrived),
        "write_id": write_id,
    }


def _stored_key(source: Mapping[str, Any]) -> c.CopyKey:
    """The copy key of a stored copy (``_common.copy_key`` from its stored fields)."""
    arrived = source.get("arrived_us")
    sha = str(source["raw_sha256"])
    if arrived is None:
        return (1, 0, str(source["origin"]), str(source["fingerprint"]), sha)
    return (0, int(arrived), str(source["origin"]), str(source["fingerprint"]), sha)


@dataclass(slots=True)
class _Slot:
    """One document a ``put`` may write: what is stored, and what this call plans for it."""

    index: str
    doc_id: str
    stored: Hit | None  # the stored document (``_source``, ``_seq_no``, ``_primary_term``)
    source: dict[str, Any] | None = None  # the planned document (None: as stored)
    action: Literal["create", "update", "replace"] | None = None
    changes: dict[str, Any] = field(default_factory=dict)  # fields of an "update"

    @property
    def current(self) -> dict[str, Any] | None:
        """The document as it will be once the plan is written."""
        if self.source is not None:
            return self.source
        if self.stored is None:
            return None
        return {**self.stored["_source"], **self.changes}

    def plan_create(self, source: dict[str, Any]) -> None:
        self.source = source
        self.action = "create" if self.stored is None else "replace"
        self.changes = {}

    def plan_update(self, changes: Mapping[str, Any]) -> None:
        if self.source is not None:
            self.source.update(changes)
        else:
            self.changes.update(changes)
            self.action = "update"


@dataclass(slots=True)
class _Plan:
    """What one round of a ``put`` writes, and how it counts each record."""

    write_id: str
    slots: dict[tuple[str, str], _Slot] = field(default_factory=dict)
    # rejection id -> (rejection, block it flags, record id whose classification made it)
    rejections: dict[str, tuple[Rejection, str | None, str]] = field(default_factory=dict)
    forget: dict[str, str] = field(default_factory=dict)  # rejection id -> record id
    # record id -> (index, seq_no, primary_term) of the stored copy a conflict was decided against
    against: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    again: bool = False  # a later round, for records another writer changed meanwhile
    reports: dict[str, PutReport] = field(default_factory=dict)  # record id -> its counts
    statements_of: dict[str, str] = field(default_factory=dict)  # block id -> "write" | "kinds"
    # blocks stored with statements (partly) missing: written again from their header
    heal: set[str] = field(default_factory=set)
    present: set[str] = field(default_factory=set)  # statement ids found by the classifying mget

    def count(self, record_id: str) -> PutReport:
        """The counts of one record id (a raced id is counted again in the next round)."""
        report = self.reports.get(record_id)
        if report is None:
            report = self.reports[record_id] = PutReport()
        report.records += 1
        return report

    def conflicted(self, record_id: str, slot: _Slot) -> None:
        """A copy was found conflicting with the stored one: remember which version, so the
        outcome is checked once the rejection is written (another writer may have replaced it)."""
        if slot.stored is not None and slot.source is None:
            self.against[record_id] = (
                slot.index,
                int(slot.stored["_seq_no"]),
                int(slot.stored["_primary_term"]),
            )

    def settled_as_stored_content(self, rejection: Rejection, record_id: str) -> None:
        """In a later round a copy is the stored content (created, or a duplicate): a conflict
        kept for this content by a round that saw another copy stored must go."""
        if self.again:
            self.forget_conflict(rejection, record_id)

    def forget_conflict(self, rejection: Rejection, source_id: str) -> None:
        """This copy's content is the stored one now (it came first): the conflict kept earlier
        for a later copy of it goes (those copies are duplicates of the stored copy now)."""
        rid = rejection.rejection_id
        self.rejections.pop(rid, None)
        self.forget[rid] = source_id

    def reject(self, rejection: Rejection, block_id: str | None, source_id: str) -> None:
        rid = rejection.rejection_id
        known = self.rejections.get(rid)
        if known is None or c.rejection_key(rejection) < c.rejection_key(known[0]):
            self.rejections[rid] = (
                rejection,
                block_id if known is None else known[1],
                source_id if known is None else known[2],
            )


class OpenSearchBuffer:
    """The ``SettlingBuffer`` port on OpenSearch (``buffer.port`` states the guarantees).

    ``page_size`` bounds every search page (at most 10,000, the result window);
    ``refresh_before_read`` is the refresh strategy of the module docstring;
    ``statement_states`` mirrors each block's state onto its statements (for operators searching
    statements; it costs the settler one bulk item per statement, in the bulk request of the
    marks); off, statements carry no state. ``create`` puts the
    index templates and creates the indices (idempotent; off for a role that may only write).
    """

    def __init__(
        self,
        client: Client,
        *,
        index_prefix: str = "qldb-settle",
        settings: IndexSettings | None = None,
        page_size: int = 1_000,
        refresh_before_read: bool = True,
        statement_states: bool = True,
        create: bool = True,
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE}, not {page_size}")
        self.client = client
        self.indices = Indices.for_prefix(index_prefix)
        self.settings = settings or IndexSettings()
        self.page_size = page_size
        self.refresh_before_read = refresh_before_read
        self.statement_states = statement_states
        # Block headers as the last pending page (or our own marks) left them, with their
        # versions, so marking a group needs no read first; a stale entry only costs a 409 and a
        # re-read (every write on them is conditional). Bounded: the newest entries are kept.
        self._headers: dict[str, Hit] = {}
        self._strand_docs_seen: dict[str, Hit] = {}  # strand meta documents, likewise
        if create:
            self.create_indices()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        index_prefix: str = "qldb-settle",
        auth: str = "auto",
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        bulk_actions: int = 500,
        bulk_bytes: int = 5_000_000,
        **options: Any,
    ) -> OpenSearchBuffer:
        """Open the buffer at ``http(s)://HOST[:PORT]``: SigV4-signed (service ``es``, the
        credentials of the boto3 session: the Lambda's role) for ``*.amazonaws.com`` hosts or
        ``auth="sigv4"``, plain HTTP(S) otherwise or with ``auth="none"``. Bulk requests carry at
        most ``bulk_actions`` documents and ``bulk_bytes`` bytes (Amazon OpenSearch Service
        refuses HTTP bodies over 10 MiB on small instance types)."""
        endpoint = Endpoint.parse(url, auth)
        client = Client(
            connect(endpoint, timeout=timeout),
            endpoint,
            retry=retry,
            max_bulk_actions=bulk_actions,
            max_bulk_bytes=bulk_bytes,
            timeout=timeout,
        )
        try:
            return cls(client, index_prefix=index_prefix, **options)
        except BaseException:
            client.close()
            raise

    def __repr__(self) -> str:
        return f"OpenSearchBuffer({self.client.endpoint.url!r}, prefix={self.indices.prefix!r})"

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> OpenSearchBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- indices ----------------------------------------------------------------------------------

    def create_indices(self) -> None:
        """Put each index's template and create the index when absent (idempotent, and safe
        when several Lambdas start at once); refuse a buffer written by a newer schema."""
        for kind, name in self.indices.all().items():
            body = template(name, kind, self.settings)
            self.client.request(
                f"put index template {name}", "indices.put_index_template", name=name, body=body
            )
            exists = self.client.request(f"check index {name}", "indices.exists", index=name)
            if not exists:
                try:
                    self.client.request(f"create index {name}", "indices.create", index=name)
                except OpenSearchError as exc:
                    if "already_exists" not in exc.reason:
                        raise
        stored = self._get(self.indices.meta, SCHEMA_ID)
        if stored is None:
            self._write_meta_create(SCHEMA_ID, {"kind": "schema", "version": SCHEMA_VERSION})
        elif int(stored["_source"].get("version", 0)) > SCHEMA_VERSION:
            raise InputError(
                f"the OpenSearch buffer {self.indices.prefix} has schema "
                f"{stored['_source']['version']}, newer than this qldb-settle ({SCHEMA_VERSION})"
            )

    def _write_meta_create(self, doc_id: str, source: Mapping[str, Any]) -> bool:
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

    def _refresh(self, *indices: str) -> None:
        if self.refresh_before_read:
            names = ",".join(indices)
            self.client.request(f"refresh {names}", "indices.refresh", index=names)

    def _get(self, index: str, doc_id: str, *, excludes: Sequence[str] = ()) -> Hit | None:
        """One document, real-time (an mget: a missing document is an answer, not a 404 that
        opensearch-py would log as a warning)."""
        return self._mget(index, [doc_id], excludes=excludes).get(doc_id)

    def _mget(
        self, index: str, ids: Iterable[str], *, excludes: Sequence[str] = ()
    ) -> dict[str, Hit]:
        wanted = list(dict.fromkeys(ids))
        found: dict[str, Hit] = {}
        params: dict[str, Any] = {"_source_excludes": ",".join(excludes)} if excludes else {}
        for chunk in c.chunks(wanted, _IDS_PER_QUERY):
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

    def _mget_docs(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]]
    ) -> dict[tuple[str, str], Hit]:
        """(index, id) → document, for ``(index, id, excluded fields)`` across indices."""
        found: dict[tuple[str, str], Hit] = {}
        unique = list(dict.fromkeys((i, d, tuple(x)) for i, d, x in wanted))
        for start in range(0, len(unique), _IDS_PER_QUERY):
            chunk = unique[start : start + _IDS_PER_QUERY]
            docs = [{"_index": i, "_id": d, **_source_filter(x)} for i, d, x in chunk]
            answer = self.client.request(
                f"mget ({len(chunk)} documents)", "mget", body={"docs": docs}
            )
            for doc in answer["docs"]:
                if doc.get("found"):
                    found[(doc["_index"], doc["_id"])] = doc
                elif "error" in doc:
                    raise OpenSearchError("mget", 404, _item_reason(doc))
        return found

    def _search(
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

    def _count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": query} if query is not None else None
        answer = self.client.request(f"count {index}", "count", index=index, body=body)
        return int(answer["count"])

    def _aggregate(
        self, index: str, aggs: Mapping[str, Any], query: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"size": 0, "aggs": aggs, "track_total_hits": False}
        if query is not None:
            body["query"] = query
        answer = self.client.request(f"aggregate {index}", "search", index=index, body=body)
        return dict(answer.get("aggregations", {}))

    def _composite(
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
            result = self._aggregate(index, {"buckets": spec})["buckets"]
            buckets = result.get("buckets", [])
            yield from buckets
            after = result.get("after_key")
            if not buckets or after is None or len(buckets) < self.page_size:
                return

    def _bulk(self, actions: list[Action], what: str) -> list[Hit]:
        if not actions:
            return []
        return self.client.bulk(actions, what)

    # --- put --------------------------------------------------------------------------------------

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        """Store records create-if-absent and keep rejections (see the module docstring)."""
        report = PutReport()
        write_id = uuid.uuid4().hex
        todo = list(records)
        for round_ in range(MAX_RACES):
            if not todo:
                break
            plan = self._plan(todo, write_id, again=round_ > 0)
            raced = self._write_plan(plan)
            for record_id, counted in plan.reports.items():
                if record_id not in raced:
                    report.add(counted)
            # Ids another writer changed meanwhile are classified again against the store.
            todo = [i for i in todo if i.record.record_id in raced]
        if todo:
            raise TransientError(
                f"OpenSearch buffer {self.indices.prefix}: concurrent writers kept changing "
                f"{len(todo)} records; nothing was lost, run it again"
            )
        for _ in rejections:
            report.records += 1
            report.rejected += 1
        self._keep_rejections([(r, None) for r in rejections])
        return report

    def _plan(self, items: Sequence[Incoming], write_id: str, *, again: bool = False) -> _Plan:
        """Classify every item against the store and the items before it (summaries first, each
        kind in copy order, so the outcome does not depend on the order of ``items``) and plan
        the writes."""
        plan = _Plan(write_id=write_id, again=again)
        summaries = [i for i in items if isinstance(i.record, BlockSummary)]
        revisions = [i for i in items if isinstance(i.record, RevisionDetails)]
        controls = [i for i in items if isinstance(i.record, ControlRecord)]
        ix = self.indices
        keys = {
            (i.record.ledger, i.record.address.strand_id)
            for i in [*summaries, *revisions]
            if isinstance(i.record, BlockSummary | RevisionDetails)
        }
        # Everything the classification needs, in one real-time multi-get.
        wanted = (
            [(ix.blocks, i.record.record_id, _HEADER_LIGHT) for i in summaries]
            + [
                (ix.blocks, i.record.block_id, _HEADER_LIGHT)
                for i in revisions
                if isinstance(i.record, RevisionDetails)
            ]
            + [(ix.revisions, i.record.record_id, ["raw", "revision"]) for i in revisions]
            + [(ix.meta, i.record.record_id, ["raw"]) for i in controls]
            + [(ix.meta, _strand_doc_id(a, b), ()) for a, b in keys]
            + [
                (ix.statements, f"{i.record.record_id}/{n}", _NO_SOURCE)
                for i in summaries
                if isinstance(i.record, BlockSummary)
                for n in range(len(i.record.statements))
            ]
        )
        found = self._mget_docs(wanted)
        plan.present = {d for (i, d) in found if i == ix.statements}
        headers = {d: h for (i, d), h in found.items() if i == ix.blocks}
        stored_revs = {d: h for (i, d), h in found.items() if i == ix.revisions}
        stored_controls = {d: h for (i, d), h in found.items() if i == ix.meta}
        asked = {d for (i, d, _) in wanted if i == ix.blocks}
        extra = [
            h["_source"]["block_id"]
            for h in stored_revs.values()
            if h["_source"]["block_id"] not in asked
        ]
        if extra:  # a stored revision claimed by another block: its header too
            headers.update(self._mget(ix.blocks, extra, excludes=_HEADER_LIGHT))
        strands = self._strand_state(keys, stored_controls)

        def slot(index: str, doc_id: str, stored: Mapping[str, Hit]) -> _Slot:
            key = (index, doc_id)
            if key not in plan.slots:
                plan.slots[key] = _Slot(index=index, doc_id=doc_id, stored=stored.get(doc_id))
            return plan.slots[key]

        for item in sorted(summaries, key=c.incoming_key):
            summary = item.record
            assert isinstance(summary, BlockSummary)
            s = slot(ix.blocks, summary.block_id, headers)
            self._plan_summary(plan, s, item, summary, strands)
        for item in sorted(revisions, key=c.incoming_key):
            rev = item.record
            assert isinstance(rev, RevisionDetails)
            s = slot(ix.revisions, rev.record_id, stored_revs)
            header = slot(ix.blocks, rev.block_id, headers)
            self._plan_revision(
                plan,
                s=s,
                header_slot=header,
                headers=headers,
                item=item,
                rev=rev,
                strands=strands,
            )
        for item in sorted(controls, key=c.incoming_key):
            control = item.record
            assert isinstance(control, ControlRecord)
            s = slot(ix.meta, control.record_id, stored_controls)
            self._plan_control(plan, s, item, control)
        return plan

    @staticmethod
    def _strand_state(
        keys: Iterable[tuple[str, str]], docs: Mapping[str, Hit]
    ) -> dict[tuple[str, str], tuple[int | None, list[tuple[int, int]]]]:
        """Each strand's replayed mark and passed gaps, from its meta document."""
        out: dict[tuple[str, str], tuple[int | None, list[tuple[int, int]]]] = {}
        for ledger, strand_id in keys:
            doc = docs.get(_strand_doc_id(ledger, strand_id))
            if doc is None:
                out[(ledger, strand_id)] = (None, [])
                continue
            src = doc["_source"]
            gaps = [(int(g["first"]), int(g["last"])) for g in src.get("gaps") or []]
            mark = src.get("replayed_through")
            out[(ledger, strand_id)] = (None if mark is None else int(mark), gaps)
        return out

    def _header_source(
        self, item: Incoming, summary: BlockSummary, state: BlockState, write_id: str
    ) -> dict[str, Any]:
        commit = c.to_us(summary.commit_time)
        address = summary.address
        return {
            **_provenance(item, summary.stream.arn, write_id),
            "block_id": summary.block_id,
            "ledger": summary.ledger,
            "strand_id": address.strand_id,
            "sequence_no": address.sequence_no,
            "state": state,
            "commit_us": commit,
            "commit_time": _date(commit),
            "transaction_id": summary.transaction_id,
            "block_hash": summary.block_hash.hex(),
            "statements": len(summary.statements),
            "revisions_expected": len(summary.user_revisions),
            "statement_kinds": list(item.statement_kinds),
            "summary": c.summary_body(summary),
            "delay_ms": c.delay_ms(item.arrived_at, summary.commit_time),
            "reason": None,
            "updated_us": None,
            "actor": None,
            "purged": False,
        }

    def _plan_summary(
        self,
        plan: _Plan,
        s: _Slot,
        item: Incoming,
        summary: BlockSummary,
        strands: Mapping[tuple[str, str], tuple[int | None, list[tuple[int, int]]]],
    ) -> None:
        report = plan.count(summary.block_id)
        current = s.current
        block_id = summary.block_id
        d = policy.decide_summary(
            item,
            summary,
            None if current is None else self._stored(s, current),
            state=None if current is None else current["state"],
            purged=current is not None and bool(current.get("purged")),
            strand=lambda: strands[(summary.ledger, summary.address.strand_id)],
        )
        d.count(report, "blocks", len(summary.statements))
        if d.verdict in ("stored", "late"):
            state: BlockState = "late" if d.verdict == "late" else "pending"
            s.plan_create(self._header_source(item, summary, state, plan.write_id))
            plan.statements_of[block_id] = "write"
            plan.settled_as_stored_content(c.conflict_of(item, block_id), block_id)
            return
        assert current is not None
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(c.conflict_of(item, block_id), block_id)
            wanted = (f"{block_id}/{n}" for n in range(len(summary.statements)))
            if (
                s.source is None
                and s.stored is not None
                and not current.get("purged")
                and not all(w in plan.present for w in wanted)
            ):
                # A put that died between its header and its statements (one bulk, not
                # atomic): this re-delivery writes them from the stored header.
                plan.heal.add(block_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(
                {
                    **_provenance(item, summary.stream.arn, plan.write_id),
                    "statement_kinds": list(item.statement_kinds),
                    "delay_ms": c.delay_ms(item.arrived_at, summary.commit_time),
                }
            )
            plan.statements_of.setdefault(block_id, "kinds")
        elif d.verdict == "conflict":
            plan.conflicted(block_id, s)
        elif d.verdict == "conflict-earlier":  # the stored copy becomes the rejection
            s.plan_create(self._header_source(item, summary, "pending", plan.write_id))
            plan.statements_of[block_id] = "write"
        self._plan_rejections(plan, d, block_id)

    @staticmethod
    def _plan_rejections(plan: _Plan, d: policy.Decision, record_id: str) -> None:
        if d.keep is not None:
            plan.reject(d.keep, d.block, record_id)
        if d.forget is not None:
            plan.forget_conflict(d.forget, record_id)

    def _stored(self, s: _Slot, current: Mapping[str, Any]) -> policy.StoredCopy:
        """The copy a slot holds, as the put policy compares it."""
        return policy.StoredCopy(
            fingerprint=current["fingerprint"],
            key=_stored_key(current),
            origin=current["origin"],
            arrived_us=current.get("arrived_us"),
            raw=lambda: self._raw_of(s),
        )

    def _raw_of(self, s: _Slot) -> bytes:
        """The raw bytes of the copy a slot holds (planned, or fetched: reads skip ``raw``)."""
        if s.source is not None:
            return _unb64(s.source["raw"])
        if "raw" in s.changes:
            return _unb64(s.changes["raw"])
        doc = self._get(s.index, s.doc_id)
        if doc is None:
            raise TransientError(f"{s.index}/{s.doc_id} vanished while it was being compared")
        return _unb64(doc["_source"]["raw"])

    def _revision_source(
        self, item: Incoming, rev: RevisionDetails, late: bool, write_id: str
    ) -> dict[str, Any]:
        parts = c.RevisionParts.of(rev)
        return {
            **_provenance(item, rev.stream.arn, write_id),
            "revision_id": rev.record_id,
            "block_id": rev.block_id,
            "ledger": rev.ledger,
            "strand_id": parts.strand_id,
            "sequence_no": parts.sequence_no,
            "document_id": parts.document_id,
            "version": parts.version,
            "table_name": parts.table_name,
            "table_id": parts.table_id,
            "revision": {
                "hash": parts.hash.hex(),
                "data": None if parts.data is None else _b64(parts.data),
                "data_hash": None if parts.data_hash is None else parts.data_hash.hex(),
                "tx_time_us": parts.tx_time_us,
                "tx_id": parts.tx_id,
            },
            "late": late,
        }

    def _plan_revision(
        self,
        plan: _Plan,
        *,
        s: _Slot,
        header_slot: _Slot,
        headers: Mapping[str, Hit],
        item: Incoming,
        rev: RevisionDetails,
        strands: Mapping[tuple[str, str], tuple[int | None, list[tuple[int, int]]]],
    ) -> None:
        report = plan.count(rev.record_id)
        header = header_slot.current
        current = s.current
        stored_block: str | None = None
        stored_header = None
        if current is not None:
            stored_block = current["block_id"]
            if stored_block == rev.block_id:
                stored_header = header
            else:
                other = plan.slots.get((self.indices.blocks, stored_block))
                if other is not None:
                    stored_header = other.current
                else:
                    hit = headers.get(stored_block)
                    stored_header = None if hit is None else hit["_source"]
        d = policy.decide_revision(
            item,
            rev,
            None if current is None else self._stored(s, current),
            stored_late=current is not None and bool(current["late"]),
            stored_block=stored_block,
            header=_header(header),
            stored_header=_header(stored_header),
            strand=lambda: strands[(rev.ledger, rev.address.strand_id)],
        )
        d.count(report, "revisions")
        if d.verdict == "purged-duplicate":
            return
        if d.verdict in ("stored", "late"):
            s.plan_create(self._revision_source(item, rev, d.verdict == "late", plan.write_id))
            plan.settled_as_stored_content(c.conflict_of(item, rev.record_id), rev.record_id)
            return
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(c.conflict_of(item, rev.record_id), rev.record_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(_provenance(item, rev.stream.arn, plan.write_id))
        elif d.verdict == "conflict":
            plan.conflicted(rev.record_id, s)
        elif d.verdict == "conflict-earlier":
            s.plan_create(self._revision_source(item, rev, False, plan.write_id))
        self._plan_rejections(plan, d, rev.record_id)

    def _plan_control(self, plan: _Plan, s: _Slot, item: Incoming, control: ControlRecord) -> None:
        report = plan.count(control.record_id)
        source = {
            **_provenance(item, control.stream.arn, plan.write_id),
            "kind": "control",
            "record_id": control.record_id,
            "control_type": control.control_type,
        }
        current = s.current
        d = policy.decide_control(
            item, control, None if current is None else self._stored(s, current)
        )
        d.count(report, "control")
        if d.verdict == "stored":
            s.plan_create(source)
            plan.settled_as_stored_content(
                c.conflict_of(item, control.record_id), control.record_id
            )
            return
        if d.verdict.startswith("duplicate"):
            plan.settled_as_stored_content(
                c.conflict_of(item, control.record_id), control.record_id
            )
        elif d.verdict == "conflict":
            plan.conflicted(control.record_id, s)
        self._plan_rejections(plan, d, control.record_id)
        if d.verdict == "duplicate-earlier":
            s.plan_update(_provenance(item, control.stream.arn, plan.write_id))
        elif d.verdict == "conflict-earlier":
            s.plan_update(source)

    def _write_plan(self, plan: _Plan) -> set[str]:
        """Write a plan: statements, records and statement kinds in one bulk request (per chunk),
        then, only where the plan holds them, rejections and the checks of conflicts. Returns the
        record ids another writer changed meanwhile (to classify again).

        A bulk request is not atomic: a header may be stored while one of its statements was
        refused. ``put`` then raises (the batch is re-delivered), and the re-delivery, finding the
        header a duplicate with statements missing (``_Plan.heal``), writes them again."""
        ix = self.indices
        headers = {
            s.doc_id: s for (index, _), s in plan.slots.items() if index == ix.blocks and s.action
        }
        actions: list[Action] = []
        kinds: list[tuple[int, str]] = []  # (action index, block id) of statement-only writes
        for block_id, what in plan.statements_of.items():
            slot = headers.get(block_id)
            if what == "write" and slot is not None and slot.source is not None:
                for action in self._statement_actions(slot.source, slot.stored):
                    kinds.append((len(actions), block_id))
                    actions.append(action)
        for block_id in sorted(plan.heal):
            current = plan.slots[(ix.blocks, block_id)].current
            if current is not None:
                for action in self._statement_actions(current, None):
                    kinds.append((len(actions), block_id))
                    actions.append(action)
        for block_id, what in plan.statements_of.items():
            slot = headers.get(block_id)
            if what == "kinds" and slot is not None and block_id not in plan.heal:
                new_kinds = slot.changes.get("statement_kinds", [])
                n = int((slot.current or {}).get("statements", 0))
                for i in range(n):
                    kinds.append((len(actions), block_id))
                    actions.append(
                        (
                            {"update": {"_index": ix.statements, "_id": f"{block_id}/{i}"}},
                            {"doc": {"kind": new_kinds[i] if i < len(new_kinds) else None}},
                        )
                    )
        statement_items = {i for i, _ in kinds}
        order: list[tuple[int, _Slot]] = []
        for s in plan.slots.values():
            if s.action is None:
                continue
            meta: dict[str, Any] = {"_index": s.index, "_id": s.doc_id}
            if s.action != "create":
                assert s.stored is not None
                meta["if_seq_no"] = s.stored["_seq_no"]
                meta["if_primary_term"] = s.stored["_primary_term"]
            order.append((len(actions), s))
            if s.action == "create":
                actions.append(({"create": meta}, s.source))
            elif s.action == "replace":
                actions.append(({"index": meta}, s.source))
            else:
                actions.append(({"update": meta}, {"doc": s.changes}))
        results = self._bulk(actions, "write records")
        # (a 404 is a delete of an extra statement that is gone already, or a statement whose
        # kind follows a copy another writer removed: its statements are written again below)
        self._check([results[i] for i in sorted(statement_items)], "write statements", ok=(404,))
        raced: set[str] = set()
        lost: list[_Slot] = []
        for at, s in order:
            result = results[at]
            status = int(result.get("status", 0))
            if status in (200, 201):
                continue
            if status == 409:
                lost.append(s)
                continue
            raise OpenSearchError(f"write {s.index}/{s.doc_id}", status, _item_reason(result))
        if lost:
            # 409: taken, or moved since it was read. Our own write whose answer was lost (a
            # retried request) carries our write id; anything else is another writer's.
            now_docs = self._mget_docs([(s.index, s.doc_id, ["raw"]) for s in lost])
            for s in lost:
                doc = now_docs.get((s.index, s.doc_id))
                if doc is None or doc["_source"].get("write_id") != plan.write_id:
                    raced.add(s.doc_id)
        # A replaced header, or one another writer got to first, may have statements written by
        # a writer that lost: make them the header's again.
        for block_id, slot in headers.items():
            if block_id in raced or slot.action == "replace":
                self._sync_statements(block_id)
        self._keep_rejections(
            [(r, block) for r, block, source in plan.rejections.values() if source not in raced]
        )
        forget: list[Action] = [
            ({"delete": {"_index": ix.rejected, "_id": rid}}, None)
            for rid, source in plan.forget.items()
            if source not in raced
        ]
        self._check(self._bulk(forget, "drop superseded conflicts"), "drop conflicts", ok=(404,))
        # A conflict holds if the copy it was found against is still the stored one; if another
        # writer replaced it meanwhile, classify again (and drop the conflict if it is moot).
        checks = [
            (v[0], d, v)
            for d, v in plan.against.items()
            if d not in raced and plan.slots[(v[0], d)].action is None  # a write checked itself
        ]
        if checks:
            now = self._mget_docs([(i, d, ["raw", "summary", "revision"]) for i, d, _ in checks])
            for index, doc_id, (_, seq_no, term) in checks:
                doc = now.get((index, doc_id))
                if doc is None or (int(doc["_seq_no"]), int(doc["_primary_term"])) != (
                    seq_no,
                    term,
                ):
                    raced.add(doc_id)
        return raced

    def _statement_actions(self, header: Mapping[str, Any], stored: Hit | None) -> list[Action]:
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
                        "start_time": _date(start),
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

    def _sync_statements(self, block_id: str) -> None:
        """Make a block's statements match its stored header, again until the header did not
        change meanwhile (concurrent writers of conflicting copies each end here)."""
        index = self.indices.statements
        for _ in range(MAX_RACES):
            doc = self._get(self.indices.blocks, block_id, excludes=_HEADER_LIGHT)
            if doc is None or doc["_source"].get("purged"):
                return
            self._check(
                self._bulk(self._statement_actions(doc["_source"], None), "rewrite statements"),
                "rewrite statements",
            )
            known = [f"{block_id}/{i}" for i in range(int(doc["_source"]["statements"]))]
            self._refresh(index)  # delete_by_query deletes what a search sees
            self.client.request(
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
            again = self._get(self.indices.blocks, block_id, excludes=["raw", "summary"])
            if again is not None and again["_seq_no"] == doc["_seq_no"]:
                return
        raise TransientError(f"the header of block {block_id} kept changing under its statements")

    @staticmethod
    def _check(results: Sequence[Hit], what: str, ok: Sequence[int] = ()) -> None:
        for result in results:
            status = int(result.get("status", 0))
            if status not in (200, 201, *ok):
                raise OpenSearchError(f"{what} ({result.get('_id')})", status, _item_reason(result))

    def _keep_rejections(self, rejections: Sequence[tuple[Rejection, str | None]]) -> None:
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
                        "raw": _b64(r.raw),
                        "raw_sha256": c.sha256_hex(r.raw),
                        "origin": r.origin,
                        "arrived_us": arrived,
                        "arrived_at": _date(arrived),
                        "record_id": r.record_id,
                        "block_id": block_id,
                        "resolved": False,
                        "resolved_us": None,
                        "resolved_by": None,
                        "resolution": None,
                    },
                )
            )
        results = self._bulk(actions, "keep rejections")
        taken = [
            rid for rid, result in zip(best, results, strict=True) if result.get("status") == 409
        ]
        self._check([r for r in results if r.get("status") != 409], "keep rejections")
        for rid in taken:
            r = best[rid][0]
            self._cas(index, rid, _if_earlier(r))

    def _cas(
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
            doc = self._get(index, doc_id)
            if doc is None:
                if missing_ok:
                    return False
                raise InputError(f"{index}/{doc_id} is not in the settling buffer")
            fields = change(doc["_source"])
            if not fields:
                return False
            if self._update_if(index, doc_id, doc, fields):
                return True
        raise TransientError(f"OpenSearch {index}/{doc_id} kept changing under a conditional write")

    def _update_if(
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

    # --- reading blocks ---------------------------------------------------------------------------

    def strands(self) -> Sequence[tuple[str, str]]:
        self._refresh(self.indices.blocks)
        buckets = self._composite(
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
        self._refresh(ix.blocks, ix.revisions, ix.rejected)
        query = {
            "bool": {
                "filter": [
                    {"term": {"ledger": ledger}},
                    {"term": {"strand_id": strand_id}},
                    {"term": {"state": "pending"}},
                    {"range": {"sequence_no": {"gt": after}}},
                ]
            }
        }
        hits = list(
            self._search(
                ix.blocks,
                query,
                [{"sequence_no": "asc"}, {"block_id": "asc"}],
                limit=limit,
                source={"excludes": _HEADER_LIGHT},
                versions=True,
            )
        )
        self._remember_headers(hits)
        return self._buffered([h["_source"] for h in hits])

    def _remember_headers(self, hits: Iterable[Hit]) -> None:
        for hit in hits:
            if "_seq_no" in hit:
                light = {k: v for k, v in hit["_source"].items() if k != "summary"}
                self._headers.pop(hit["_id"], None)
                self._headers[hit["_id"]] = {**hit, "_source": light}
        excess = len(self._headers) - 4 * self.page_size
        for key in list(self._headers)[: max(0, excess)]:
            del self._headers[key]

    def get_block(self, block_id: str) -> BufferedBlock | None:
        doc = self._get(self.indices.blocks, block_id, excludes=_HEADER_LIGHT)
        if doc is None:
            return None
        self._refresh(self.indices.revisions, self.indices.rejected)
        return self._buffered([doc["_source"]])[0]

    def _buffered(self, headers: Sequence[Mapping[str, Any]]) -> list[BufferedBlock]:
        ids = [h["block_id"] for h in headers]
        revisions: dict[str, list[tuple[str, RevisionDetails]]] = {i: [] for i in ids}
        for chunk in c.chunks(ids, _IDS_PER_QUERY):
            for hit in self._search(
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
        for chunk in c.chunks(record_ids, _IDS_PER_QUERY):
            query = {
                "bool": {
                    "filter": [{"term": {"kind": c.CONFLICT}}, {"term": {"resolved": False}}],
                    "should": [{"terms": {"block_id": chunk}}, {"terms": {"record_id": chunk}}],
                    "minimum_should_match": 1,
                }
            }
            for hit in self._search(
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
        self._refresh(ix.blocks, ix.revisions)
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

        for hit in self._search(
            ix.blocks,
            query,
            [{"ledger": "asc"}, {"strand_id": "asc"}, {"sequence_no": "asc"}, {"block_id": "asc"}],
            source={"excludes": ["raw", "summary"]},
        ):
            page.append(hit["_source"])
            if len(page) >= self.page_size:
                flush()
        flush()
        return out

    def _revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for chunk in c.chunks(block_ids, _IDS_PER_QUERY):
            aggs = self._aggregate(
                self.indices.revisions,
                {"per_block": {"terms": {"field": "block_id", "size": len(chunk)}}},
                {"bool": {"filter": [{"terms": {"block_id": chunk}}]}},
            )
            for bucket in aggs["per_block"]["buckets"]:
                counts[bucket["key"]] = int(bucket["doc_count"])
        return counts

    # --- marks ------------------------------------------------------------------------------------

    def mark(self, marks: Sequence[Mark]) -> None:
        """Check every block, then write each mark with ``if_seq_no``; raise the strands' replayed
        marks for replayed and skipped blocks."""
        for m in marks:
            if m.state not in BLOCK_STATES:
                raise InputError(f"{m.state!r} is not a block state {BLOCK_STATES}")
        if not marks:
            return
        ix = self.indices
        found = {
            m.block_id: self._headers[m.block_id] for m in marks if m.block_id in self._headers
        }
        unknown = [m.block_id for m in marks if m.block_id not in found]
        if unknown:
            found.update(self._mget(ix.blocks, unknown, excludes=["raw", "summary"]))
        for m in marks:
            if m.block_id not in found:
                raise InputError(
                    f"block {m.block_id} is not in the settling buffer {self.indices.prefix}"
                )
        final: dict[str, Mark] = {}
        for m in marks:
            final[m.block_id] = m  # the last mark of a block wins, as applied in order
        docs = {bid: found[bid] for bid in final}
        self._write_marks(
            {
                bid: {
                    "state": m.state,
                    "reason": m.reason,
                    "updated_us": c.to_us(m.at),
                    "actor": m.actor,
                }
                for bid, m in final.items()
            },
            docs,
        )
        raise_to: dict[tuple[str, str], int] = {}
        for m in marks:
            if m.state in ("replayed", "skipped"):
                src = found[m.block_id]["_source"]
                key = (src["ledger"], src["strand_id"])
                raise_to[key] = max(raise_to.get(key, -1), int(src["sequence_no"]))
        for (ledger, strand_id), seq in raise_to.items():
            self._set_mark(ledger, strand_id, _at_least(seq))

    def _write_marks(
        self, changes: Mapping[str, Mapping[str, Any]], docs: Mapping[str, Hit]
    ) -> None:
        """Conditional partial updates of block headers and, in the same bulk request, their
        statements' state (one request per group of blocks, per chunk of ``bulk_actions``).

        Not atomic: a fault may leave some headers of a group marked and others not. The strand's
        replayed mark is raised only after every header's mark is written (``mark``), so after
        such a fault the strand's mark is still below the destination's checkpoint and the next
        cycle's ``repair`` marks the rest from the checkpoint (tests/opensearch: a fault between
        the marks of one group)."""
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
            all_results = self._bulk(actions, "mark blocks")
            results = all_results[:n_headers]
            self._check(all_results[n_headers:], "mark statements", ok=(404,))
            conflicts = [bid for bid, r in zip(ids, results, strict=True) if r.get("status") == 409]
            self._check([r for r in results if r.get("status") != 409], "mark blocks")
            for bid, r in zip(ids, results, strict=True):
                if r.get("status") != 409 and "_seq_no" in r:
                    src = {**todo[bid]["_source"], **changes[bid]}
                    self._remember_headers(
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
                    self._headers.pop(bid, None)
            todo = {}
            if conflicts:
                fresh = self._mget(ix.blocks, conflicts, excludes=["raw", "summary"])
                for bid in conflicts:
                    doc = fresh.get(bid)
                    if doc is None:
                        raise TransientError(f"block {bid} vanished while it was being marked")
                    src = doc["_source"]
                    if any(src.get(k) != v for k, v in changes[bid].items()):
                        todo[bid] = doc  # someone else changed it: write on the new version
        else:
            raise TransientError("OpenSearch block headers kept changing under the marks")

    def _set_mark(
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
        doc_id = _strand_doc_id(ledger, strand_id)
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
                if self._write_meta_create(doc_id, {**empty, **fields}):
                    return
                continue  # someone created it meanwhile: change what they wrote
            answer = self._update_if(self.indices.meta, doc_id, doc, fields)
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
        doc = self._get(self.indices.meta, doc_id)
        if doc is None:
            self._strand_docs_seen.pop(doc_id, None)
        else:
            self._strand_docs_seen[doc_id] = doc
        return doc

    def replayed_through(self, ledger: str, strand_id: str) -> int | None:
        doc = self._strand_doc(_strand_doc_id(ledger, strand_id))
        if doc is None:
            return None
        mark = doc["_source"].get("replayed_through")
        return None if mark is None else int(mark)

    def repair(self, ledger: str, strand_id: str, sequence_no: int, at: datetime) -> int:
        ix = self.indices
        self._refresh(ix.blocks)
        query = {
            "bool": {
                "filter": [
                    {"term": {"ledger": ledger}},
                    {"term": {"strand_id": strand_id}},
                    {"term": {"state": "pending"}},
                    {"range": {"sequence_no": {"lte": sequence_no}}},
                ]
            }
        }
        ids = [
            h["_id"]
            for h in self._search(
                ix.blocks, query, [{"sequence_no": "asc"}, {"block_id": "asc"}], source=False
            )
        ]
        change = {
            "state": "replayed",
            "updated_us": c.to_us(at),
            "actor": "settler",
            "reason": f"repaired from the destination checkpoint {sequence_no}",
        }
        for chunk in c.chunks(ids, _IDS_PER_QUERY):
            docs = self._mget(ix.blocks, chunk, excludes=["raw", "summary"])
            self._write_marks(dict.fromkeys(docs, change), docs)
        self._set_mark(ledger, strand_id, lambda old: None if old == sequence_no else sequence_no)
        return len(ids)

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

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> None:
        def remove(entries: list[dict[str, Any]], mine: Sequence[Gap]) -> list[dict[str, Any]]:
            gone = {(g.first, g.last) for g in mine}
            return [g for g in entries if (g["first"], g["last"]) not in gone]

        self._change_gaps(gaps, remove)

    def _change_gaps(
        self,
        gaps: Sequence[Gap],
        change: Callable[[list[dict[str, Any]], Sequence[Gap]], list[dict[str, Any]]],
    ) -> None:
        """One compare-and-set update of each strand document concerned (none when its gaps
        stay as they are)."""
        by_strand: dict[tuple[str, str], list[Gap]] = {}
        for gap in gaps:
            by_strand.setdefault((gap.ledger, gap.strand_id), []).append(gap)
        for (ledger, strand_id), mine in by_strand.items():

            def fields(src: Mapping[str, Any], mine: Sequence[Gap] = mine) -> dict[str, Any] | None:
                entries = list(src.get("gaps") or [])
                new = change(entries, mine)
                return None if new == entries else {"gaps": new}

            self._change_strand(ledger, strand_id, fields, "gaps")

    def _strand_docs(self) -> list[Mapping[str, Any]]:
        self._refresh(self.indices.meta)
        return [
            h["_source"]
            for h in self._search(
                self.indices.meta,
                {"bool": {"filter": [{"term": {"kind": "strand"}}]}},
                [{"ledger": "asc"}, {"strand_id": "asc"}],
            )
        ]

    def gaps(self) -> Sequence[Gap]:
        out = []
        for src in self._strand_docs():
            for g in src.get("gaps") or []:
                out.append(
                    Gap(
                        ledger=src["ledger"],
                        strand_id=src["strand_id"],
                        first=int(g["first"]),
                        last=int(g["last"]),
                        passed_at=c.from_us(int(g["passed_us"])),
                    )
                )
        out.sort(key=lambda g: (g.ledger, g.strand_id, g.first, g.last))
        return out

    # --- rejections -------------------------------------------------------------------------------

    def rejected(self) -> Sequence[Rejection]:
        self._refresh(self.indices.rejected)
        out = []
        for hit in self._search(
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
                    raw=_unb64(src["raw"]),
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
        self._refresh(self.indices.rejected)
        return self._count(self.indices.rejected, {"term": {"resolved": False}})

    def acknowledge_rejections(
        self, ids: Sequence[str], reason: str, actor: str, at: datetime
    ) -> int:
        changed = 0
        at_us = c.to_us(at)
        for rid in dict.fromkeys(ids):
            wrote = self._cas(
                self.indices.rejected,
                rid,
                lambda src: (
                    None
                    if src.get("resolved")
                    else {
                        "resolved": True,
                        "resolved_us": at_us,
                        "resolved_by": actor,
                        "resolution": reason,
                    }
                ),
            )
            changed += int(wrote)
        return changed

    # --- figures, lease, retention ----------------------------------------------------------------

    def _highest_seen(self) -> dict[str, int]:
        highest: dict[str, int] = {}
        for index in (self.indices.blocks, self.indices.revisions):
            for bucket in self._composite(
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
        ix = self.indices
        self._refresh(ix.blocks, ix.statements, ix.revisions, ix.rejected, ix.meta)
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
        answer = self.client.request("stats (msearch)", "msearch", body=body)
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

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        """Take or renew the lease (one document, conditional writes): a concurrent acquire
        that loses the race gets False, never a shared lease."""
        now_us = c.to_us(now)
        expires = now_us + round(ttl_seconds * 1_000_000)
        meta = self.indices.meta
        for _ in range(MAX_RACES):
            doc = self._get(meta, LEASE_ID)
            if doc is None:
                if self._write_meta_create(
                    LEASE_ID, {"kind": "lease", "owner": owner, "expires_us": expires}
                ):
                    return True
                continue  # someone created it meanwhile: decide on what they wrote
            src = doc["_source"]
            if src.get("owner") not in (owner, None) and int(src.get("expires_us") or 0) > now_us:
                return False
            if self._update_if(meta, LEASE_ID, doc, {"owner": owner, "expires_us": expires}):
                return True
            again = self._get(meta, LEASE_ID)
            # True only when our write landed and its answer was lost.
            return (
                again is not None
                and again["_source"].get("owner") == owner
                and int(again["_source"].get("expires_us") or 0) == expires
            )
        return False

    def release_lease(self, owner: str) -> None:
        self._cas(
            self.indices.meta,
            LEASE_ID,
            lambda src: {"owner": None, "expires_us": 0} if src.get("owner") == owner else None,
        )

    def lease(self) -> Lease | None:
        doc = self._get(self.indices.meta, LEASE_ID)
        if doc is None or doc["_source"].get("owner") is None:
            return None
        src = doc["_source"]
        return Lease(owner=src["owner"], expires_at=c.from_us(int(src.get("expires_us") or 0)))

    def purge_replayed(self, older_than: datetime) -> int:
        ix = self.indices
        self._refresh(ix.blocks)
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
            h["_id"] for h in self._search(ix.blocks, query, [{"block_id": "asc"}], source=False)
        ]
        for chunk in c.chunks(ids, _IDS_PER_QUERY):
            # Mark first: a purged header answers for re-delivered revisions (duplicates).
            self._check(
                self._bulk(
                    [
                        ({"update": {"_index": ix.blocks, "_id": bid}}, {"doc": {"purged": True}})
                        for bid in chunk
                    ],
                    "mark purged blocks",
                ),
                "mark purged blocks",
            )
            for index in (ix.statements, ix.revisions):
                self.client.request(
                    f"purge {index}",
                    "delete_by_query",
                    index=index,
                    body={"query": {"bool": {"filter": [{"terms": {"block_id": chunk}}]}}},
                    conflicts="proceed",
                    refresh=True,
                )
        return len(ids)

    # --- dump -------------------------------------------------------------------------------------

    def dump(self) -> Mapping[str, Any]:
        ix = self.indices
        self._refresh(*ix.all().values())
        d = c.DumpBuilder()
        for hit in self._search(ix.blocks, {"match_all": {}}, [{"block_id": "asc"}]):
            d.block(hit["_source"])
        for hit in self._search(ix.statements, {"match_all": {}}, [{"statement_id": "asc"}]):
            d.statement(hit["_source"])
        for hit in self._search(
            ix.revisions,
            {"match_all": {}},
            [{"revision_id": "asc"}],
            source={"excludes": ["revision"]},
        ):
            d.revision(hit["_source"])
        for hit in self._search(
            ix.meta, {"bool": {"filter": [{"term": {"kind": "control"}}]}}, [{"record_id": "asc"}]
        ):
            d.control_record(hit["_source"])
        for hit in self._search(ix.rejected, {"match_all": {}}, [{"rejection_id": "asc"}]):
            d.rejection(hit["_source"])
        highest = self._highest_seen()
        with_blocks = {f"{a}/{b}" for a, b in self.strands()}
        strand_docs = {f"{s['ledger']}/{s['strand_id']}": s for s in self._strand_docs()}
        for key in sorted({*highest, *strand_docs}):
            doc = strand_docs.get(key, {})
            d.strand(key, doc.get("replayed_through"), highest.get(key), key in with_blocks)
        for g in self.gaps():
            d.gap(g.ledger, g.strand_id, g.first, g.last, g.passed_at)
        return d.dump()


def _if_earlier(r: Rejection) -> Callable[[Mapping[str, Any]], Mapping[str, Any] | None]:
    """The change keeping a rejection's earliest copy (its provenance and bytes)."""
    arrived = c.opt_us(r.arrived_at)

    def change(src: Mapping[str, Any]) -> Mapping[str, Any] | None:
        stored = c.arrival_key(src.get("arrived_us"), src["origin"], src["raw_sha256"])
        if c.rejection_key(r) < stored:
            return {
                "origin": r.origin,
                "arrived_us": arrived,
                "arrived_at": _date(arrived),
                "raw": _b64(r.raw),
                "raw_sha256": c.sha256_hex(r.raw),
            }
        return None

    return change


def _at_least(seq: int) -> Callable[[int | None], int | None]:
    """Raise a replayed mark to ``seq`` (never lower it)."""
    return lambda old: seq if old is None or old < seq else None


def _revision(src: Mapping[str, Any]) -> RevisionDetails:
    r = src["revision"]
    return c.revision_from(
        {
            **src,
            "hash": bytes.fromhex(r["hash"]),
            "data": None if r["data"] is None else _unb64(r["data"]),
            "data_hash": None if r["data_hash"] is None else bytes.fromhex(r["data_hash"]),
            "tx_time_us": r["tx_time_us"],
            "tx_id": r["tx_id"],
        }
    )


def _header(h: Mapping[str, Any] | None) -> policy.Header | None:
    """A block header document as the put policy reads it."""
    if h is None:
        return None
    return policy.Header(
        state=h["state"],
        purged=bool(h.get("purged")),
        body=h.get("summary") or {},
        arn=h.get("arn") or "",
    )


def _item_reason(result: Mapping[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, Mapping):
        return f"{error.get('type')}: {error.get('reason')}"
    return str(error)
