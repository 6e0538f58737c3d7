"""Where a record enters: decode the Kinesis stream (base64, KPL, Ion), classify, dedupe, buffer.

- ``ingest.kpl``: KPL aggregates, strictly checked (MD5, protobuf) and split; an encoder.
- ``ingest.decode``: Lambda Kinesis events, Ion files and Firehose objects → ``Incoming`` records
  and ``Rejection`` items (``buffer.port``), nothing dropped.
- ``ingest.service``: the core, ``ingest_items`` / ``ingest_paths`` into any ``SettlingBuffer``.
- ``ingest.export``: a QLDB journal export (S3 or a folder) into the buffer, resumably.

The structure of Ion binary, checked before amazon.ion reads it, and the split of a Firehose
object into its Ion binary streams are the one Ion reader's (``journal.ion_binary.structure``).

The Lambda entry points are ``handlers.ingest`` and ``handlers.export``, above this package.

Imports: ``journal``, ``runtime``, the port of ``buffer`` (``buffer.port``, never an adapter: the
composition picks it) and ``ledger`` (``ledger.classify`` only, lazily); never ``destination``
(an ingest replays nothing), ``settler`` or any layer above, nor ionhash or pyqldb through any
module it reaches: the ingest Lambda ships amazon.ion 0.15 with its C extension
(``tests/test_layers.py``).
"""
