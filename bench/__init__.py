"""Benchmarks of qldb-settle (issue 9), run by ``make bench`` as ``python -m bench``.

Every figure is a ratio against a baseline measured in the same run (the machines are shared and
noisy): each measurement is repeated, baseline and measured code alternating, each repetition in
a fresh subprocess when its memory matters, and medians are kept.

- ``bench.ingest``: stream records per second through the ingest path against bare Ion parsing,
  in ``.venv`` (amazon.ion 0.9.3) and ``.venv-ingest`` (amazon.ion 0.15 with its C extension);
  imports only ``ingest``, ``journal``, ``buffer`` and ``ledger.classify``, so it runs in both;
- ``bench.cycle``: the cost of a settle cycle releasing 1,000 blocks against the number of
  blocks buffered but not settled behind them (time and peak RSS);
- ``bench.replay``: replay throughput into the embedded ledger against raw SQLite inserts of the
  same documents, and grouped against ungrouped replay over a 15 ms round trip;
- ``bench.qldb``: the whole cycle through ``serve-qldb`` and pyqldb beside the embedded one, and
  the protocol's own cost as no-op round trips (issue 14);
- ``bench.linearity``: ingest cost per record in events of 10 and of 10,000 records (issue 14);
- ``bench.profiles``: cProfile of each path (ingest, settle cycle by statements, by revisions),
  self time grouped by module (issue 14); ``bench.cycle`` also measures a cycle's peak memory
  facing the whole buffer as a backlog;
- ``bench.postgres``, ``bench.export``, ``bench.opensearch``: the other stores and the export
  ingest;
- ``bench.lag``: the replay lag distribution over long simulated runs (the demo loop);
- ``bench.strategies``: the original replay Lambda, the blog's startTime-ordered buffer and this
  service on the same simulated workloads;
- ``bench.backlog``: the blocks the settle and replay benchmarks use, real (from an embedded
  source ledger) and synthetic;
- ``bench.figures``: the figures of a run as a table (terminal, ``bench/README.md``);
  ``bench.__main__``: ``python -m bench``, every benchmark in order, ``bench/results.json``;
- ``bench.common``: timing, medians, subprocess plumbing, the table (stdlib only).

Imports: any layer below, mostly lazily in the child process that measures it: ``qldb_settle`` (the
simulator, the demo loop, the comparison), ``compose`` (the composition: settings to adapters),
``settler``, ``ingest``, ``buffer``, ``destination``, ``ledger``, ``runtime`` (its errors) and
``journal``; never ``infra`` (its peer). Nothing in the service imports it
(``tests/test_layers.py``).

Nothing is imported here: ``python -m bench.ingest`` must run in the small ingest environment.
"""
