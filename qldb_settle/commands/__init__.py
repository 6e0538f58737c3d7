"""One module per subcommand of ``qldb-settle``, each with ``register(subparsers)`` (found by
``qldb_settle.cli`` and listed in its ``ORDER``), its flags and printing shared through
``qldb_settle.output``; ``_ingest_export`` is the journal-export half of ``ingest``."""
