"""Where a record enters: decode the Kinesis stream (base64, KPL, Ion), classify, dedupe, buffer.

Imports neither ionhash nor pyqldb: the ingest Lambda ships amazon.ion 0.15 with its C extension.
"""
