"""The Lambda entry points, on top of the service.

- ``handlers.ingest``: the ingest Lambda (a Kinesis batch in, partial batch failures out).
- ``handlers.settler``: the settler Lambda (one settle cycle per scheduled invocation).
- ``handlers.export``: the export Lambda (a QLDB journal export into the buffer).
- ``handlers.metrics``: the metric names the handlers publish and ``infra/`` turns into the
  dashboard and the alarms (defined here once, imported by both).

Imports: any layer below: ``compose`` (settings, the adapters), ``settler``, ``ingest``, the
ports of ``buffer`` and ``destination`` (``buffer.port``, ``destination.port``: the adapters come
from ``compose``), ``ledger``, ``runtime`` and ``journal``; never ``qldb_settle`` (its peer, the
command line: what both need lives in ``compose``), ``infra`` or ``bench``
(``tests/test_layers.py``). Nothing in the service imports them; only ``infra/`` reads
``handlers.metrics``.
"""
