"""The embedded ledger: QLDB's PartiQL subset over SQLite, with its own hash-chained journal.

``EmbeddedLedger(path)`` opens (or creates) a ledger file. ``begin()`` starts a ``Transaction``
(``ledger.transaction``); ``execute`` runs statements against the latest committed state plus the
transaction's own changes; ``commit`` validates optimistically (like QLDB: a transaction whose
reads were changed by a transaction that committed after the read fails with ``OccConflict``)
and appends one block to the journal (``ledger.commit``): revisions hashed with the Ion hash,
``entriesHash`` the Merkle root of the entries, ``blockHash = dot(entriesHash,
previousBlockHash)``. ``CommittedBlock.stream_records`` (``ledger.blocks``) gives the
BLOCK_SUMMARY and REVISION_DETAILS records QLDB would stream for the block. Every committed
transaction appends a block, read-only ones included; DDL adds a system revision (a
``revisionSummaries`` entry without ``documentId``); the first block's ``previousBlockHash`` is
``SHA-256("qldb-settle genesis <strandId>")``.

This module holds the ledger object: ids, connections (one per thread; a commit takes SQLite's
write lock with ``BEGIN IMMEDIATE`` and validates against the blocks committed since each read,
so several threads and processes may share one file), the decoded-document and per-unit caches,
``atomic()``, and reading blocks back. The file layout is ``ledger.storage``'s.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import sqlite3
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any

from journal.ion_binary import decode
from ledger.blocks import CommittedBlock, Revision, block_payload, ion_time
from ledger.changes import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS_PER_TRANSACTION,
    MAX_TRANSACTION_BYTES,
)
from ledger.commit import commit_in
from ledger.errors import OccConflict, ParseError, TransactionClosed
from ledger.storage import SCHEMA, UnitCache, store_id_counter
from ledger.transaction import Transaction

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_LEN = 22
_CACHE_SIZE = 20_000


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _base62(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    for _ in range(_ID_LEN):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


class EmbeddedLedger:
    """A QLDB-like ledger in one SQLite file. ``clock`` gives commit and statement times
    (default: the system clock); ``id_seed`` makes document, table, index, transaction and strand
    ids deterministic (two processes using one file with the same seed may draw the same
    document id: the second commit then fails with ``OccConflict`` and a retry draws anew).
    ``enforce_limits`` applies QLDB's quotas to transactions run through ``begin``/``execute``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ledger_name: str = "embedded",
        region: str = "us-east-1",
        account: str = "000000000000",
        enforce_limits: bool = True,
        clock: Callable[[], datetime] | None = None,
        id_seed: int | str | None = None,
    ) -> None:
        self.path = FsPath(path)
        self.ledger_name = ledger_name
        self.region = region
        self.account = account
        self.enforce_limits = enforce_limits
        self.clock: Callable[[], datetime] = clock or _system_clock
        self._seed = None if id_seed is None else str(id_seed)
        self._local = threading.local()
        self._lock = threading.RLock()
        self._connections: list[sqlite3.Connection] = []
        self._cache: OrderedDict[tuple[str, int], Any] = OrderedDict()
        self._closed = False
        conn = self._connection()
        with self._lock:
            conn.executescript(SCHEMA)
            conn.execute("BEGIN IMMEDIATE")
            meta = dict(conn.execute("SELECT key, value FROM ledger_meta").fetchall())
            if "strand_id" not in meta:
                meta = {
                    "strand_id": self._id_from("strand", 0),
                    "ledger_name": ledger_name,
                    "id_counter": "0",
                }
                conn.executemany(
                    "INSERT INTO ledger_meta (key, value) VALUES (?, ?)", sorted(meta.items())
                )
            conn.execute("COMMIT")
        self.strand_id = meta["strand_id"]
        self._counter = int(meta["id_counter"])

    # -- ids

    def _id_from(self, kind_: str, n: int) -> str:
        if self._seed is None:
            return _base62(secrets.token_bytes(17))
        return _base62(hashlib.sha256(f"{self._seed}/{kind_}/{n}".encode()).digest())

    def _new_id(self) -> str:
        with self._lock:
            self._counter += 1
            return self._id_from("id", self._counter)

    # -- connections and caches

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise TransactionClosed(f"ledger {self.path} is closed")
            conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=OFF")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _decoded(self, doc_id: str, version: int, data: bytes) -> Any:
        key = (doc_id, version)
        cache = self._cache
        value = cache.get(key)
        if value is None:
            value = decode(data)
            with self._lock:
                cache[key] = value
                if len(cache) > _CACHE_SIZE:
                    cache.popitem(last=False)
        return value

    def _tip(self, conn: sqlite3.Connection) -> int:
        cache: UnitCache | None = getattr(self._local, "cache", None)
        if cache is not None and cache.tip is not None:
            return cache.tip
        row = conn.execute("SELECT max(seq) FROM ledger_blocks").fetchone()
        tip = -1 if row[0] is None else int(row[0])
        if cache is not None:
            cache.tip = tip
        return tip

    def _active_table_id(self, conn: sqlite3.Connection, name: str) -> str | None:
        """The id of the committed active table named ``name`` (None: there is none)."""
        cache: UnitCache | None = getattr(self._local, "cache", None)
        if cache is not None and name in cache.tables:
            return cache.tables[name]
        row = conn.execute(
            "SELECT table_id FROM ledger_tables WHERE name = ? AND status = 'ACTIVE'", (name,)
        ).fetchone()
        table_id = None if row is None else str(row[0])
        if cache is not None:
            cache.tables[name] = table_id
        return table_id

    def _online_indexes(self, conn: sqlite3.Connection, table_id: str) -> dict[str, str]:
        """field -> index id of a table's committed online indexes (a copy to change at will)."""
        cache: UnitCache | None = getattr(self._local, "cache", None)
        if cache is not None:
            known = cache.indexes.get(table_id)
            if known is not None:
                return dict(known)
        indexes = {
            str(f): str(i)
            for f, i in conn.execute(
                "SELECT field, index_id FROM ledger_indexes WHERE table_id = ? AND status = "
                "'ONLINE'",
                (table_id,),
            )
        }
        if cache is not None:
            cache.indexes[table_id] = dict(indexes)
        return indexes

    # -- public API

    @property
    def ledger(self) -> str:
        """The ledger key (``region:account:name``) its stream records carry."""
        return f"{self.region}:{self.account}:{self.ledger_name}"

    def stream_arn(self, stream_id: str = "embeddedStream0000000001") -> str:
        """A QLDB stream ARN for this ledger (``stream_id`` defaults to a fixed 22-char id)."""
        return f"arn:aws:qldb:{self.region}:{self.account}:stream/{self.ledger_name}/{stream_id}"

    def begin(self) -> Transaction:
        return Transaction(self, self._new_id())

    def execute(self, statement: str, *params: Any) -> list[Any]:
        """Run one statement in its own transaction (retried on an OCC conflict, as QLDB's
        drivers do, up to four times)."""
        for attempt in range(5):
            tx = self.begin()
            try:
                result = tx.execute(statement, *params)
                tx.commit()
                return result
            except OccConflict:
                if attempt == 4 or self._in_unit():
                    raise
            finally:
                if not tx.closed:
                    tx.abort()
        raise AssertionError("unreachable")

    def blocks(self, after: int = -1) -> Iterator[CommittedBlock]:
        """The journal's blocks with a sequence number above ``after``, in order."""
        conn = self._connection()
        last = after
        while True:
            rows = conn.execute(
                "SELECT seq, summary FROM ledger_blocks WHERE seq > ? ORDER BY seq LIMIT 200",
                (last,),
            ).fetchall()
            if not rows:
                return
            for seq, summary in rows:
                yield self._block(conn, seq, summary)
                last = seq

    def block(self, sequence_no: int) -> CommittedBlock | None:
        conn = self._connection()
        row = conn.execute(
            "SELECT summary FROM ledger_blocks WHERE seq = ?", (sequence_no,)
        ).fetchone()
        return None if row is None else self._block(conn, sequence_no, row[0])

    def _block(self, conn: sqlite3.Connection, seq: int, summary: str) -> CommittedBlock:
        record = json.loads(summary)
        payload = block_payload(record, self.strand_id)
        tx_id = str(record["tx"])
        tables = {doc_id: name for doc_id, name, _, _ in record["documents"]}
        rows = {
            rid: (version, data, h, table_id, redacted)
            for rid, version, data, h, table_id, redacted in conn.execute(
                "SELECT r.id, r.version, r.data, r.hash, r.table_id, x.data_hash "
                "FROM ledger_revisions r LEFT JOIN ledger_redactions x ON x.id = r.id AND "
                "x.version = r.version WHERE r.block_seq = ?",
                (seq,),
            )
        }
        revisions = []
        for _, rid in record["summaries"]:
            if rid is None:
                continue
            version, data, h, table_id, redacted = rows[rid]
            revisions.append(
                Revision(
                    table_name=tables[rid],
                    table_id=table_id,
                    document_id=rid,
                    version=version,
                    raw=None if data is None else bytes(data),
                    hash=bytes(h),
                    tx_time_ms=int(record["tx_ms"]),
                    tx_id=tx_id,
                    data_hash=None if redacted is None else bytes(redacted),
                )
            )
        return CommittedBlock(
            strand_id=self.strand_id, sequence_no=seq, transaction_id=tx_id,
            timestamp_ms=int(record["ts"]), block_hash=bytes.fromhex(record["hash"]),
            entries_hash=bytes.fromhex(record["entries_hash"]),
            previous_block_hash=bytes.fromhex(record["prev"]), payload=payload,
            revisions=tuple(revisions),
        )  # fmt: skip

    def documents(self) -> Iterator[tuple[str, str, Any]]:
        """``(table name, document id, data)`` of every current document of every active table,
        sorted by table name then id."""
        conn = self._connection()
        for name, doc_id, version, data in conn.execute(
            "SELECT t.name, d.id, d.version, d.data FROM ledger_documents d "
            "JOIN ledger_tables t ON t.table_id = d.table_id WHERE t.status = 'ACTIVE' "
            "ORDER BY t.name, d.id"
        ).fetchall():
            yield name, doc_id, self._decoded(doc_id, version, data)

    def tables(self) -> list[tuple[str, str, str]]:
        """``(name, table id, status)`` of every table."""
        conn = self._connection()
        return [
            (n, i, s)
            for n, i, s in conn.execute(
                "SELECT name, table_id, status FROM ledger_tables ORDER BY name, table_id"
            )
        ]

    def indexes(self, table: str) -> list[tuple[str, str]]:
        """``(field, index id)`` of the online indexes of the active table ``table``."""
        conn = self._connection()
        return [
            (f, i)
            for f, i in conn.execute(
                "SELECT i.field, i.index_id FROM ledger_indexes i JOIN ledger_tables t ON "
                "t.table_id = i.table_id WHERE t.name = ? AND t.status = 'ACTIVE' AND "
                "i.status = 'ONLINE' ORDER BY i.field",
                (table,),
            )
        ]

    def tip(self) -> int:
        """The sequence number of the last block (-1 when the journal is empty)."""
        return self._tip(self._connection())

    @contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One SQLite transaction around several ledger transactions (and the caller's own
        statements on the yielded connection): all of them commit, or none. Transactions begun
        and committed inside see each other's blocks; the caller's thread must do all the work."""
        conn = self._connection()
        depth = getattr(self._local, "unit", 0)
        if depth:
            raise RuntimeError("atomic() does not nest")
        conn.execute("BEGIN IMMEDIATE")
        self._local.unit = 1
        self._local.cache = UnitCache()
        try:
            yield conn
            store_id_counter(conn, self._counter)  # the unit's commits left it to this one write
        except BaseException:
            conn.execute("ROLLBACK")
            self._cache.clear()
            raise
        else:
            conn.execute("COMMIT")
        finally:
            self._local.unit = 0
            self._local.cache = None

    def _in_unit(self) -> bool:
        return bool(getattr(self._local, "unit", 0))

    def _unit_cache(self) -> UnitCache | None:
        """The cache of this thread's ``atomic()`` unit (None: not in one)."""
        cache: UnitCache | None = getattr(self._local, "cache", None)
        return cache

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in self._connections:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed already
                    conn.close()
            self._connections.clear()
            self._local = threading.local()
            self._cache.clear()

    def __enter__(self) -> EmbeddedLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- commit

    def _forget_schema(self) -> None:
        """A commit with DDL changes the tables and indexes the unit cache holds."""
        cache: UnitCache | None = getattr(self._local, "cache", None)
        if cache is not None:
            cache.tables.clear()
            cache.indexes.clear()

    def _commit(self, tx: Transaction) -> CommittedBlock:
        conn = self._connection()
        unit = self._in_unit()
        with self._lock:
            if unit:
                conn.execute("SAVEPOINT ledger_commit")
            else:
                conn.execute("BEGIN IMMEDIATE")
            cache: UnitCache | None = getattr(self._local, "cache", None)
            try:
                block = commit_in(self, conn, tx)
            except BaseException:
                if unit:
                    conn.execute("ROLLBACK TO ledger_commit")
                    conn.execute("RELEASE ledger_commit")
                else:
                    conn.execute("ROLLBACK")
                if cache is not None:  # it may hold what the rolled-back commit wrote
                    cache.tables.clear()
                    cache.indexes.clear()
                raise
            if unit:
                conn.execute("RELEASE ledger_commit")
            else:
                conn.execute("COMMIT")
            if cache is not None:
                cache.tip = block.sequence_no
                cache.last_block = (block.sequence_no, block.block_hash, block.timestamp_ms)
        for w, r in zip(tx._writes.values(), block.revisions, strict=True):
            if w.decoded is not None:
                self._cache[(r.document_id, r.version)] = w.decoded
        return block


__all__ = [
    "MAX_DOCUMENTS_PER_TRANSACTION",
    "MAX_DOCUMENT_BYTES",
    "MAX_TRANSACTION_BYTES",
    "CommittedBlock",
    "EmbeddedLedger",
    "ParseError",
    "Revision",
    "Transaction",
    "ion_time",
]
