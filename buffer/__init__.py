"""Where a record waits: the settling buffer port and its adapters (SQLite, OpenSearch).

- ``buffer.port``: the ``SettlingBuffer`` port and its values (``Incoming``, ``Rejection``,
  ``BufferedBlock``, ``Mark``, ``Gap``, ``Lease``, ``BlockRow``, ``BufferStats``);
- ``buffer.put_policy`` (what a put does with each copy, without I/O), ``buffer.planner`` (a
  whole put planned over what the store read up front: the same-call overlay, the writes, the
  rejections kept and forgotten; pure) and ``buffer._common`` (which copy is kept, time, bodies,
  revision codec, the dump's shape): the policy every store shares;
- ``buffer.sqlite`` (``SqliteBuffer``, the embedded default: the policy over
  ``buffer.sqlite_store``, whose schema and errors are ``buffer.sqlite_schema``'s and whose put
  reads by id and writes a plan in bulk in one transaction, ``buffer.sqlite_put``), and
  ``buffer.opensearch`` (``OpenSearchBuffer``: the policy over ``buffer.opensearch_store``,
  whose verbs are its parts': ``opensearch_put`` a put's read and write and
  ``opensearch_documents`` the documents it writes, ``opensearch_statements``,
  ``opensearch_rejections``, ``opensearch_read`` the block reads, ``opensearch_marks`` block
  states, replayed marks and gaps, ``opensearch_figures`` counts and dump rows,
  ``opensearch_lease`` lease and retention, all sending through ``opensearch_requests``;
  ``opensearch_client`` and ``opensearch_schema`` below them): the adapters;
- ``buffer.store`` (the narrow store protocol: storage verbs only) and ``buffer.settling``
  (``Buffer``: the port's policy written once over any store);
- ``buffer.memory`` (``MemoryStore`` and ``MemoryBuffer``, an in-memory store for unit tests),
  ``buffer.opensearch_local`` and ``buffer.opensearch_proxy`` (a local OpenSearch-compatible
  server and a logging proxy in front of it): test support and local runs.

Imports: ``journal`` and ``runtime`` (and each adapter its own client library); never
``destination`` (its peer: a buffer knows nothing of where a block goes), ``ingest``,
``settler`` or any layer above (``tests/test_layers.py``). Inside the package the policy
(``port``, ``_common``, ``put_policy``, ``planner``, ``store``, ``settling``) imports no store or
client; a store imports the policy and its own modules, never another store's.
"""
