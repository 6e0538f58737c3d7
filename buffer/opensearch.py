"""``OpenSearchBuffer``: the settling buffer in Amazon OpenSearch Service (or any OpenSearch API).

The ingest Lambda writes into it and the settler Lambda reads from it, as the design proposes;
the policy is shared with ``SqliteBuffer``, so both adapters decide alike and pass one contract
suite: what ``put`` does with each copy is ``buffer.put_policy``'s (this adapter reads the stored
copies by id and plans the writes a decision means), the rest (which copy is kept, the dump's
shape) ``buffer._common``'s.

This module composes the parts, one reason to change each: ``buffer.opensearch_put`` (the put:
classify and plan, then one ``_mget`` and one ``_bulk`` per chunk; its documents:
``buffer.opensearch_documents``), ``buffer.opensearch_statements``
(statements derived from a header), ``buffer.opensearch_rejections`` (keep, read, acknowledge),
``buffer.opensearch_read`` (strands, pending, blocks), ``buffer.opensearch_marks`` (marks, repair,
replayed marks, gaps), ``buffer.opensearch_figures`` (stats, dump), ``buffer.opensearch_lease``
(lease, retention), all on ``buffer.opensearch_requests`` (the requests they send). Indices and
mappings: ``buffer.opensearch_schema``. Requests, retries and the mapping of opensearch-py errors
into ``journal.errors``: ``buffer.opensearch_client``.

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

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from buffer.opensearch_client import Client, Endpoint, OpenSearchError, RetryPolicy, connect
from buffer.opensearch_figures import Figures
from buffer.opensearch_lease import LeaseDoc
from buffer.opensearch_marks import HeaderCache, Marks
from buffer.opensearch_put import Put
from buffer.opensearch_read import Reader
from buffer.opensearch_rejections import Rejections
from buffer.opensearch_requests import MAX_PAGE, Requests
from buffer.opensearch_schema import SCHEMA_VERSION, IndexSettings, Indices, template
from buffer.opensearch_statements import Statements
from buffer.port import (
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

SCHEMA_ID = "schema"


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
        self.requests = rq = Requests(
            client,
            self.indices,
            page_size=page_size,
            refresh_before_read=refresh_before_read,
        )
        # Block headers as the last pending page (or our own marks) left them, with their
        # versions, so marking a group needs no read first.
        headers = HeaderCache(4 * page_size)
        self._rejections = Rejections(rq)
        self._put = Put(rq, Statements(rq, statement_states=statement_states), self._rejections)
        self._reader = Reader(rq, headers)
        self._marks = Marks(rq, headers, statement_states=statement_states)
        self._figures = Figures(rq, self._reader, self._marks)
        self._lease = LeaseDoc(rq)
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
        stored = self.requests.get(self.indices.meta, SCHEMA_ID)
        if stored is None:
            self.requests.create_meta(SCHEMA_ID, {"kind": "schema", "version": SCHEMA_VERSION})
        elif int(stored["_source"].get("version", 0)) > SCHEMA_VERSION:
            raise InputError(
                f"the OpenSearch buffer {self.indices.prefix} has schema "
                f"{stored['_source']['version']}, newer than this qldb-settle ({SCHEMA_VERSION})"
            )

    # --- the port, each part by its module --------------------------------------------------------

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        return self._put.put(records, rejections)

    def strands(self) -> Sequence[tuple[str, str]]:
        return self._reader.strands()

    def pending(
        self, ledger: str, strand_id: str, after: int, limit: int
    ) -> Sequence[BufferedBlock]:
        return self._reader.pending(ledger, strand_id, after, limit)

    def get_block(self, block_id: str) -> BufferedBlock | None:
        return self._reader.get_block(block_id)

    def blocks(self, state: BlockState | None = None) -> Sequence[BlockRow]:
        return self._reader.blocks(state)

    def mark(self, marks: Sequence[Mark]) -> None:
        self._marks.mark(marks)

    def replayed_through(self, ledger: str, strand_id: str) -> int | None:
        return self._marks.replayed_through(ledger, strand_id)

    def repair(self, ledger: str, strand_id: str, sequence_no: int, at: datetime) -> int:
        return self._marks.repair(ledger, strand_id, sequence_no, at)

    def record_gaps(self, gaps: Sequence[Gap]) -> None:
        self._marks.record_gaps(gaps)

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> None:
        self._marks.withdraw_gaps(gaps)

    def gaps(self) -> Sequence[Gap]:
        return self._marks.gaps()

    def rejected(self) -> Sequence[Rejection]:
        return self._rejections.rejected()

    def unresolved_rejections(self) -> int:
        return self._rejections.unresolved_rejections()

    def acknowledge_rejections(
        self, ids: Sequence[str], reason: str, actor: str, at: datetime
    ) -> int:
        return self._rejections.acknowledge_rejections(ids, reason, actor, at)

    def stats(self, now: datetime) -> BufferStats:
        return self._figures.stats(now)

    def dump(self) -> Mapping[str, Any]:
        return self._figures.dump()

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        return self._lease.acquire_lease(owner, ttl_seconds, now)

    def release_lease(self, owner: str) -> None:
        self._lease.release_lease(owner)

    def lease(self) -> Lease | None:
        return self._lease.lease()

    def purge_replayed(self, older_than: datetime) -> int:
        return self._lease.purge_replayed(older_than)
