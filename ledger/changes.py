"""What a transaction changes, before it commits: staged writes and DDL, and QLDB's limits.

``Write`` is one document's new content (Ion binary, its Ion hash, index keys taken at staging),
``Ddl`` one DDL statement's effect, ``Doc`` a document as a statement sees it. Plain data shared
by statement execution (``ledger.execute``), transactions and the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from journal.ion_binary import decode

MAX_DOCUMENTS_PER_TRANSACTION = 40
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_DOCUMENT_BYTES = 128 * 1024


def short(text: str, limit: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


@dataclass(slots=True)
class Write:
    table_id: str
    table_name: str
    base_version: int | None  # None: inserted by this transaction
    data: bytes | None  # None: deleted
    data_hash: bytes | None
    decoded: Any = None
    statements: list[int] = field(default_factory=list)
    index_keys: dict[str, str | None] = field(default_factory=dict)  # field -> key, at staging

    @property
    def value(self) -> Any:
        """The new content as simpleion values (decoded on first use)."""
        if self.decoded is None and self.data is not None:
            self.decoded = decode(self.data)
        return self.decoded


@dataclass(slots=True)
class Ddl:
    statement: int
    kind: str
    table_id: str
    index_id: str | None = None


@dataclass(slots=True)
class Doc:
    doc_id: str
    version: int | None
    value: Any
    committed: bool
