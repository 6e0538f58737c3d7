"""``SqliteBuffer``: the settling buffer in one SQLite file, the embedded default.

The port's policy is ``buffer.settling.Buffer``'s; ``SqliteBuffer(path)`` builds it over a
``buffer.sqlite_store.SqliteStore`` on the file (its verbs: one connection, WAL mode, one
transaction per call that writes, ``buffer.sqlite_put`` reading by id and writing a put's plan in
bulk), whose schema, file identity and error mapping are ``buffer.sqlite_schema``'s.
"""

from __future__ import annotations

import os

from buffer.settling import Buffer
from buffer.sqlite_schema import APPLICATION_ID, SCHEMA_VERSION, NotABuffer
from buffer.sqlite_store import PENDING_SQL, REVISIONS_SQL, SqliteStore

__all__ = [
    "APPLICATION_ID",
    "PENDING_SQL",
    "REVISIONS_SQL",
    "SCHEMA_VERSION",
    "NotABuffer",
    "SqliteBuffer",
]


class SqliteBuffer(Buffer):
    """The ``SettlingBuffer`` port on one SQLite file (``buffer.port`` states the guarantees).

    ``read_only`` opens an existing buffer for reading (writes then raise ``TransientError``);
    ``busy_timeout_s`` is how long a call waits for another process's write lock.
    """

    store: SqliteStore

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        read_only: bool = False,
    ) -> None:
        super().__init__(SqliteStore(str(path), busy_timeout_s, read_only))
        self.path = self.store.path
        self.read_only = read_only

    def __repr__(self) -> str:
        return f"SqliteBuffer({self.path!r})"
