"""Where a record enters: decode the Kinesis stream (base64, KPL, Ion), classify, dedupe, buffer.

- ``ingest.kpl``: KPL aggregates, strictly checked (MD5, protobuf) and split; an encoder.
- ``ingest.ionbin``: the structure of Ion binary checked before amazon.ion reads it, and a
  Firehose object split into its Ion binary streams.
- ``ingest.decode``: Lambda Kinesis events, Ion files and Firehose objects → ``Incoming`` records
  and ``Rejection`` items (``buffer.port``), nothing dropped.
- ``ingest.service``: the core, ``ingest_items`` / ``ingest_paths`` into any ``SettlingBuffer``.

The Lambda entry point is ``handlers.ingest``, above this package. Imports neither ionhash nor
pyqldb: the ingest Lambda ships amazon.ion 0.15 with its C extension.
"""
