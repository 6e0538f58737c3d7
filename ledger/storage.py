"""How the embedded ledger is stored: one SQLite file (WAL) and the SQL that writes it.

The file holds the current documents (Ion binary), every revision with its hash, the tables and
indexes, index entries, the data hashes of redacted revisions (written by ``ledger.redaction``),
and the blocks (one compact JSON record each, from which ``ledger.blocks`` rebuilds the
payload). This module owns the schema, the index keys, the state
rows (``TableState``, ``IndexState``), the per-unit read cache, and the writes a commit makes
(``store_ddl``, ``store_revisions``, ``build_new_indexes``, ``append_block``). It changes when
the file layout does; it does not hash, plan or evaluate.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger.errors import OccConflict
from ledger.evaluate import kind, text_of

if TYPE_CHECKING:
    from ledger.blocks import Revision
    from ledger.transaction import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_tables (
    table_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_tables_name ON ledger_tables (name, status);
CREATE TABLE IF NOT EXISTS ledger_indexes (
    index_id TEXT PRIMARY KEY, table_id TEXT NOT NULL, field TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_documents (
    id TEXT PRIMARY KEY, table_id TEXT NOT NULL, version INTEGER NOT NULL,
    block_seq INTEGER NOT NULL, data BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_documents_table ON ledger_documents (table_id, id);
CREATE TABLE IF NOT EXISTS ledger_revisions (
    id TEXT NOT NULL, version INTEGER NOT NULL, table_id TEXT NOT NULL,
    block_seq INTEGER NOT NULL, hash BLOB NOT NULL, data BLOB,
    PRIMARY KEY (id, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_revisions_block ON ledger_revisions (block_seq);
CREATE INDEX IF NOT EXISTS ledger_revisions_table ON ledger_revisions (table_id, block_seq);
CREATE TABLE IF NOT EXISTS ledger_index_entries (
    index_id TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,
    PRIMARY KEY (index_id, key, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ledger_index_entries_doc ON ledger_index_entries (id);
CREATE TABLE IF NOT EXISTS ledger_redactions (
    id TEXT NOT NULL, version INTEGER NOT NULL, data_hash BLOB NOT NULL,
    redacted_in INTEGER NOT NULL, PRIMARY KEY (id, version)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ledger_blocks (
    seq INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, tx_ms INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
    block_hash BLOB NOT NULL, ddl INTEGER NOT NULL, summary TEXT NOT NULL);
"""


def index_key(value: Any) -> str | None:
    """The index key of a scalar value (numbers by value, strings and symbols by text), or None
    for values an index does not hold (null, missing, containers)."""
    k = kind(value)
    if k == "string":
        return "s:" + text_of(value)
    if k == "number":
        d = Decimal(repr(float(value))) if isinstance(value, float) else Decimal(value)
        if not d.is_finite():
            return "f:" + str(d)
        d = d.normalize()
        return "n:" + ("0" if d.is_zero() else str(d))
    if k == "bool":
        return "b:1" if value else "b:0"
    if k == "timestamp":
        v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return "t:" + str(v.isoformat())
    return None


@dataclass(slots=True)
class UnitCache:
    """Committed tables, indexes and tip read inside one ``atomic()`` unit. The unit holds
    SQLite's write lock, so only its own commits change them: a commit moves the tip, one with
    DDL empties the tables and indexes, and so does a commit that fails."""

    tip: int | None = None
    tables: dict[str, str | None] = field(default_factory=dict)  # active name -> id
    indexes: dict[str, dict[str, str]] = field(default_factory=dict)  # table id -> field -> index
    # (sequence number, block hash, timestamp ms) of the unit's last commit: the next block's
    # previous block, known without reading it back.
    last_block: tuple[int, bytes, int] | None = None


@dataclass(slots=True)
class TableState:
    table_id: str
    name: str
    status: str  # ACTIVE | INACTIVE


@dataclass(slots=True)
class IndexState:
    index_id: str
    table_id: str
    field: str
    status: str  # ONLINE | DELETED


# --- a commit's writes (inside the caller's SQLite transaction or savepoint) ---------------------


def store_ddl(conn: sqlite3.Connection, tx: Transaction) -> None:
    """The tables and indexes the transaction's DDL created, dropped or restored."""
    for d in tx._ddl:
        if d.kind in ("create_table", "drop_table", "undrop_table"):
            t = tx._tables[d.table_id]
            conn.execute(
                "INSERT INTO ledger_tables (table_id, name, status) VALUES (?, ?, ?) "
                "ON CONFLICT (table_id) DO UPDATE SET status = excluded.status",
                (t.table_id, t.name, t.status),
            )
        else:
            assert d.index_id is not None
            ix = tx._indexes[d.index_id]
            conn.execute(
                "INSERT INTO ledger_indexes (index_id, table_id, field, status) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (index_id) DO UPDATE SET status = "
                "excluded.status",
                (ix.index_id, ix.table_id, ix.field, ix.status),
            )
            if ix.status != "ONLINE":
                conn.execute("DELETE FROM ledger_index_entries WHERE index_id = ?", (ix.index_id,))


def store_revisions(
    conn: sqlite3.Connection,
    tx: Transaction,
    revisions: Sequence[Revision],
    seq: int,
    online_indexes: Callable[[sqlite3.Connection, str], dict[str, str]],
) -> None:
    """Each revision, the current documents and their index entries, one ``executemany`` per
    kind of row (a transaction writes each document once). A revision that exists already
    (another writer drew the same id) is an ``OccConflict``."""
    indexes_of: dict[str, dict[str, str]] = {}
    rows: list[tuple[Any, ...]] = []
    unindex: list[tuple[str]] = []
    deleted: list[tuple[str]] = []
    current: list[tuple[Any, ...]] = []
    entries: list[tuple[str, str, str]] = []
    for r in revisions:
        w = tx._writes[r.document_id]
        rows.append((r.document_id, r.version, r.table_id, seq, r.hash, w.data))
        if w.base_version is not None:
            unindex.append((r.document_id,))
        if w.data is None:
            deleted.append((r.document_id,))
            continue
        current.append((r.document_id, r.table_id, r.version, seq, w.data))
        idx = indexes_of.get(r.table_id)
        if idx is None:
            idx = indexes_of[r.table_id] = online_indexes(conn, r.table_id)
        for fld, index_id in idx.items():
            key = w.index_keys.get(fld)
            if key is not None:
                entries.append((index_id, key, r.document_id))
    try:
        conn.executemany(
            "INSERT INTO ledger_revisions (id, version, table_id, block_seq, hash, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
    except sqlite3.IntegrityError:
        raise OccConflict(tx.id, f"{_existing(conn, revisions)} exists already") from None
    if unindex:
        conn.executemany("DELETE FROM ledger_index_entries WHERE id = ?", unindex)
    if deleted:
        conn.executemany("DELETE FROM ledger_documents WHERE id = ?", deleted)
    if current:
        conn.executemany(
            "INSERT INTO ledger_documents (id, table_id, version, block_seq, data) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = "
            "excluded.version, block_seq = excluded.block_seq, data = excluded.data",
            current,
        )
    if entries:
        conn.executemany(
            "INSERT OR IGNORE INTO ledger_index_entries (index_id, key, id) VALUES (?, ?, ?)",
            entries,
        )


def _existing(conn: sqlite3.Connection, revisions: Sequence[Revision]) -> str:
    """Which of the revisions is stored already ("document D version V"), for the conflict."""
    for r in revisions:
        row = conn.execute(
            "SELECT 1 FROM ledger_revisions WHERE id = ? AND version = ?",
            (r.document_id, r.version),
        ).fetchone()
        if row is not None:
            return f"document {r.document_id} version {r.version}"
    return "a revision of the transaction's documents"


def build_new_indexes(
    conn: sqlite3.Connection, tx: Transaction, decoded: Callable[[str, int, bytes], Any]
) -> None:
    """Index entries of the documents already in a table an index was created on."""
    for d in tx._ddl:
        if d.kind != "create_index":
            continue
        assert d.index_id is not None
        ix = tx._indexes[d.index_id]
        if ix.status != "ONLINE":
            continue
        for doc_id, version, data in conn.execute(
            "SELECT id, version, data FROM ledger_documents WHERE table_id = ?",
            (ix.table_id,),
        ).fetchall():
            index_document(conn, {ix.field: ix.index_id}, doc_id, decoded(doc_id, version, data))


def index_document(
    conn: sqlite3.Connection, indexes: Mapping[str, str], doc_id: str, value: Any
) -> None:
    for fld, index_id in indexes.items():
        if kind(value) != "struct" or fld not in value:
            continue
        key = index_key(value[fld])
        if key is not None:
            conn.execute(
                "INSERT OR IGNORE INTO ledger_index_entries (index_id, key, id) VALUES (?, ?, ?)",
                (index_id, key, doc_id),
            )


def append_block(
    conn: sqlite3.Connection,
    record: Mapping[str, Any],
    *,
    block_hash: bytes,
    ddl: bool,
    id_counter: int | None,
) -> None:
    """The block's row (its compact record as JSON), and the id counter it used (None: the
    caller stores the counter later, in the same SQLite transaction: ``store_id_counter``)."""
    conn.execute(
        "INSERT INTO ledger_blocks (seq, tx_id, tx_ms, ts_ms, block_hash, ddl, summary) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record["seq"],
            record["tx"],
            record["tx_ms"],
            record["ts"],
            block_hash,
            1 if ddl else 0,
            json.dumps(record, separators=(",", ":")),
        ),
    )
    if id_counter is not None:
        store_id_counter(conn, id_counter)


def store_id_counter(conn: sqlite3.Connection, id_counter: int) -> None:
    """The highest id counter drawn (never lowered: another process may have drawn more)."""
    conn.execute(
        "UPDATE ledger_meta SET value = ? WHERE key = 'id_counter' AND CAST(value AS INTEGER) < ?",
        (str(id_counter), id_counter),
    )
