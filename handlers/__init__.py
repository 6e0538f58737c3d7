"""The Lambda entry points, on top of everything else.

- ``handlers.ingest``: the ingest Lambda (a Kinesis batch in, partial batch failures out).
- ``handlers.settler``: the settler Lambda (one settle cycle per scheduled invocation).
- ``handlers.metrics``: the metric names both handlers publish and ``infra/`` turns into the
  dashboard and the alarms (defined here once, imported by both).

Layer: entry points, beside the command line (``qldb_settle``). They may import every layer
below (the composition ``compose``, the settler, ingest, buffer, ledger, destination, journal);
nothing in the service imports them (only ``infra/`` reads ``handlers.metrics``).
"""
