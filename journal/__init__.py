"""QLDB's journal as the stream and the exports carry it: its records and the arithmetic that proves
them, shared by every other package.

- ``journal.records``: typed, frozen stream records (RECORDS.md), each built by a named
  constructor;
- ``journal.hashes``: QLDB's hash arithmetic (hashlib only); ``journal.canonical``: a canonical,
  library-version-independent fingerprint of Ion values;
- ``journal.ion_binary``: the Ion 1.0 binary codec; ``journal.ion_json``: Ion down-converted to
  JSON, as QLDB's JSON export does it;
- ``journal.errors``: the errors about records, blocks and input, and their base ``SettleError``
  (the errors about the run are ``runtime.errors``).

Imports: the standard library and amazon.ion only; never another package of the project (the
lowest layer, ``tests/test_layers.py``). Shared by the ingest Lambda, so never ionhash or pyqldb.
"""
