"""The composition: settings and the roots that turn them into adapters of the ports.

- ``compose.settings``: the one frozen ``Settings`` object (environment, then flags).
- ``compose.roots``: ``open_buffer`` / ``open_destination`` from the settings' URLs; each adapter
  is imported only when chosen, so the ingest Lambda never imports pyqldb or ionhash;
- ``compose.container``: ``ContainerPart``, what a Lambda container keeps between invocations.

Imports: any layer below, ``journal``, ``runtime``, ``ledger``, ``buffer``, ``destination``,
``ingest`` and ``settler`` (today the adapters and ``runtime.errors``); never the entry points
that import it (``handlers``, ``qldb_settle``), ``infra`` or ``bench`` (``tests/test_layers.py``).
"""
