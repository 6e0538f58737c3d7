"""Where a block is replayed: the destination port and its adapters (embedded ledger, QLDB,
PostgreSQL).

- ``destination.port``: the ``Destination`` port and its values (``Checkpoint``,
  ``BlockReplay``, ``Limits``, ``ApplyReport``);
- ``destination.embedded`` (over ``ledger``), ``destination.qldb`` (pyqldb) and
  ``destination.postgres`` (psycopg 3): the adapters;
- what the adapters share: ``destination.statement_replay`` (learning source table ids, the index
  a DROP INDEX names, matching a block's revisions to the documents its statements wrote) and
  ``destination.partiql`` (quoting and reading PartiQL text);
- the adapters' parts: ``destination.qldb_replay`` (the statements that replay a block in a QLDB
  transaction) and ``destination.qldb_checkpoint`` (the checkpoint document);
  ``destination.postgres_schema`` and ``destination.postgres_chain`` (the PostgreSQL replica's
  schema and its chain check);
- ``destination.memory``: an in-memory fake for unit tests; ``destination.postgres_local``: a
  throwaway local PostgreSQL server for tests, benchmarks and local runs.

Imports: ``journal``, ``runtime`` and ``ledger`` (the embedded ledger, its PartiQL) only; never
``buffer`` (its peer: a destination knows nothing of where a block waited), ``ingest``,
``settler`` or any layer above (``tests/test_layers.py``).
"""
