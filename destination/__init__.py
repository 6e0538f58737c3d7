"""Where a block is replayed: the destination port and its adapters (embedded ledger, QLDB,
PostgreSQL).

- ``destination.port``: the ``Destination`` port and its values (``Checkpoint``,
  ``BlockReplay``, ``Limits``, ``ApplyReport``);
- ``destination.embedded`` (over ``ledger``), ``destination.qldb`` (pyqldb) and
  ``destination.postgres`` (psycopg 3): the adapters, with what those replaying a block by its
  statements share in modules of their own (``destination.postgres_schema`` and
  ``destination.postgres_chain``: the PostgreSQL replica's schema and its chain check);
- ``destination.memory``: an in-memory fake for unit tests; ``destination.postgres_local``: a
  throwaway local PostgreSQL server for tests, benchmarks and local runs.

Imports: ``journal``, ``runtime`` and ``ledger`` (the embedded ledger, its PartiQL) only; never
``buffer`` (its peer: a destination knows nothing of where a block waited), ``ingest``,
``settler`` or any layer above (``tests/test_layers.py``).
"""
