"""The embedded ledger: QLDB's PartiQL subset over SQLite, with its own hash-chained journal.

What lives here, by reason to change:

- PartiQL: ``grammar.lark``, ``parser`` (text to ``nodes``), ``nodes``, ``evaluate`` (values,
  paths, operators; ``functions``: QLDB's scalar functions, ``functions_cast``: CAST,
  ``functions_time``: the date functions, ``function_names``: the names the parser accepts;
  ``timestamps``: Ion timestamps' precision and offset, ``timestamp_format``: TO_STRING's format
  strings, ``timestamp_parse``: TO_TIMESTAMP's), ``select`` (SELECT's joins and projection),
  ``classify`` (statement shapes for the ingest path);
- ``blocks``: the block and revision model, BLOCK_SUMMARY payloads and stream records;
- ``storage``: the SQLite schema, index keys, state rows and a commit's writes;
- ``changes``: what a transaction stages (writes, DDL) and QLDB's limits;
- ``plan``: how a statement finds candidates (id, index, scan);
- ``execute``: one statement run against a transaction's view;
- ``transaction``: the transaction API and its read bookkeeping;
- ``commit``: optimistic validation and sealing a block (hashes, Merkle root);
- ``engine``: ``EmbeddedLedger`` (ids, connections, caches, ``atomic()``, reading blocks);
- ``redaction``: ``EXEC redact_revision`` (checks, staging, the commit's writes);
- ``proofs``: digests and proofs of the journal (QLDB's verification API);
- ``hashing`` (Ion hash), ``errors``;
- serving QLDB's APIs: ``session_server`` (the Session API's state machine), ``control_plane``
  (the ``qldb`` control plane: digest, block, revision, ledgers), ``ledger_catalog`` (which
  ledger a name opens), ``qldb_http`` (both over HTTP on one port).

Imports: ``journal`` (hashes, Ion binary) and third-party libraries only; never ``buffer``,
``destination``, ``settler``, ``ingest``, ``compose``, ``handlers`` or ``qldb_settle``. Inside,
the arrows point one way: engine -> commit, transaction -> execute -> plan -> storage -> evaluate
-> nodes; blocks and changes are leaves beside them. Light on import: ``ledger.classify`` (used
by the ingest Lambda) needs only lark and amazon.ion, so the engine (which imports ionhash) is
loaded on first access of its names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledger.errors import LedgerError, LimitExceeded, OccConflict, ParseError, StatementError

if TYPE_CHECKING:
    from ledger.engine import CommittedBlock, EmbeddedLedger, Transaction

__all__ = [
    "CommittedBlock",
    "EmbeddedLedger",
    "LedgerError",
    "LimitExceeded",
    "OccConflict",
    "ParseError",
    "StatementError",
    "Transaction",
]

_LAZY = {"EmbeddedLedger": "ledger.engine", "Transaction": "ledger.engine",
         "CommittedBlock": "ledger.engine"}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
