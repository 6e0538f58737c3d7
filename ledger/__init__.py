"""The embedded ledger: QLDB's PartiQL subset over SQLite, with its own hash-chained journal.

Light on import: ``ledger.classify`` (used by the ingest Lambda) needs only lark and amazon.ion,
so the engine (which imports ionhash) is loaded on first access of its names.
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
