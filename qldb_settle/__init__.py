"""The command line, ``qldb-settle``, and what only it runs.

- ``qldb_settle.cli``: the entry point; each subcommand a module of ``qldb_settle.commands``,
  imported when chosen, with the flags and printing they share in ``qldb_settle.output``;
- ``qldb_settle.demo_run`` and ``qldb_settle.simulate``: the demo loop and the simulated source
  ledger and stream (``qldb_settle.simulate.workload``: the source's transactions;
  ``.stream``: its journal as Kinesis delivers it; ``.export``: as a journal export);
- ``qldb_settle.commands.verify``: the ``verify`` command, printing what ``settler.compare``
  (the core comparison of a replica with its source) finds.

Imports: any layer below: ``compose`` (settings, the adapters), ``settler``, ``ingest``,
``buffer``, ``destination``, ``ledger``, ``runtime`` and ``journal``; never ``handlers`` (its
peer, the Lambda entry points: what both need lives in ``compose``), ``infra`` or ``bench``
(``tests/test_layers.py``).
"""
