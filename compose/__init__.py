"""The composition: settings and the roots that turn them into adapters of the ports.

- ``compose.settings``: the one frozen ``Settings`` object (environment, then flags).
- ``compose.roots``: ``open_buffer`` / ``open_destination`` from the settings' URLs; each adapter
  is imported only when chosen, so the ingest Lambda never imports pyqldb or ionhash.

Layer: above the settler (it may import journal, ingest, buffer, ledger, destination and
settler), below the entry points (the command line ``qldb_settle`` and the Lambda ``handlers``),
which import it; it never imports them.
"""
