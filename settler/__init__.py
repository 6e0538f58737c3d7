"""Where a block is released: settle, verify and replay in commit order, exactly once.

- ``settler.cycle``: one settle cycle, ``settle(buffer, destination, now=..., policy=...)`` under
  a ``SettlePolicy`` (window, early release, group and page sizes, lease, retention, checks);
  ``settler.repair``: the buffer's marks mended from the destination's checkpoint before a
  strand is released, and the quarantined block that stops its line;
- ``settler.block_checks`` (hash chain, digests, content) and ``settler.plan`` (how a block is
  replayed): pure, no I/O, no clock;
- ``settler.cycle_report``: what a cycle did (``SettleReport``); ``settler.operator``: what an
  operator decides about a block (resolve, a replica's start);
- ``settler.ingest_health``: whether the ingest may still hold the blocks of a gap;
- ``settler.lease``: the lease a cycle holds so that one settler at a time writes;
- ``settler.collector``: the cyclic garbage collector tuned while a cycle runs;
- ``settler.compare``: a replica proven equal to its source, by content (``verify``, the demo).

Imports: ``journal``, ``ledger`` (classify, Ion hash), the ports of ``buffer`` and ``destination``
(``buffer.port``, ``destination.port``, never an adapter: the composition picks those), ``ingest``
(``ingest.export.origin``, the stream decoder for ``settler.compare``) and ``runtime`` (the
deadline, ``runtime.errors``, ``runtime.distribution`` for the lag's percentiles); never ``compose``
or any layer above (``tests/test_layers.py``).
"""
