"""``OpenSearchBuffer``: the settling buffer in Amazon OpenSearch Service (or any OpenSearch API).

The ingest Lambda writes into it and the settler Lambda reads from it, as the design proposes.
``OpenSearchBuffer`` is the port's policy, ``buffer.settling.Buffer`` (shared with ``SqliteBuffer``
and ``MemoryBuffer``: one contract suite), over ``buffer.opensearch_store.OpenSearchStore``, the
``buffer.store`` verbs on OpenSearch; this module opens the client and creates the indices.

The store's verbs are its parts', one reason to change each: ``buffer.opensearch_put`` (a put's
round: one ``_mget`` read, one ``_bulk`` per chunk written; its documents:
``buffer.opensearch_documents``), ``buffer.opensearch_statements`` (statements derived from a
header), ``buffer.opensearch_rejections`` (keep, read, resolve), ``buffer.opensearch_read``
(strands with blocks, revisions, conflicts), ``buffer.opensearch_marks`` (block states, replayed
marks, gaps, and the header cache), ``buffer.opensearch_figures`` (counts, strands, dump rows),
``buffer.opensearch_lease`` (lease, retention), all on ``buffer.opensearch_requests`` (the
requests they send). Indices and mappings: ``buffer.opensearch_schema``. Requests, retries and
the mapping of opensearch-py errors into ``journal.errors``: ``buffer.opensearch_client``.

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

from typing import Any

from buffer.opensearch_client import Client, Endpoint, OpenSearchError, RetryPolicy, connect
from buffer.opensearch_requests import MAX_PAGE, Requests
from buffer.opensearch_schema import SCHEMA_VERSION, IndexSettings, Indices, template
from buffer.opensearch_store import OpenSearchStore
from buffer.settling import Buffer
from journal.errors import InputError

SCHEMA_ID = "schema"


class OpenSearchBuffer(Buffer):
    """The ``SettlingBuffer`` port on OpenSearch (``buffer.port`` states the guarantees): the
    policy of ``buffer.settling.Buffer`` over an ``OpenSearchStore``.

    ``page_size`` bounds every search page (at most 10,000, the result window);
    ``refresh_before_read`` is the refresh strategy of the module docstring;
    ``statement_states`` mirrors each block's state onto its statements (for operators searching
    statements; it costs the settler one bulk item per statement, in the bulk request of the
    marks); off, statements carry no state. ``create`` puts the
    index templates and creates the indices (idempotent; off for a role that may only write).
    """

    store: OpenSearchStore

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
        super().__init__(OpenSearchStore(rq, statement_states=statement_states))
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
