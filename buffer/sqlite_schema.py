"""The SQLite buffer file: its schema, its identity and what its errors mean.

Tables: ``blocks`` (one header per block summary: state, commit time, hashes, counts, arrival, the
summary as a JSON body for fast rebuilding and its Ion binary as received; indexed by
``(ledger, strand_id, state, seq)`` so ``pending`` costs what it returns), ``statements`` (one row
per statement keyed by ``start_us``, with block address, commit time, transaction id, text,
digest, classification and state), ``revisions`` (document data as Ion binary, matched to blocks
by their ``blockAddress``), ``control``, ``rejected`` (raw bytes, kind, reason, resolution),
``strands`` (replayed mark, highest sequence seen), ``gaps``, ``lease``, ``counters`` (the counts
``stats`` reports, kept in the same transactions as the rows they count) and ``meta``.
``PRAGMA application_id`` marks the file as a qldb-settle buffer and ``meta`` holds the schema
version (``NotABuffer`` otherwise). ``translate`` maps SQLite errors that mean "try again" (busy,
locked, read-only, disk I/O, disk full) to ``TransientError`` naming the file.
"""

from __future__ import annotations

import sqlite3

from journal.errors import InputError, SettleError
from runtime.errors import TransientError

APPLICATION_ID = 0x51534246  # "QSBF": a qldb-settle buffer
# 2: revisions.tx_time_form (the Ion precision and offset of txTime), added to a version 1 file.
SCHEMA_VERSION = 2

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS blocks (
        block_id TEXT PRIMARY KEY,
        ledger TEXT NOT NULL, strand_id TEXT NOT NULL, seq INTEGER NOT NULL,
        state TEXT NOT NULL,
        commit_us INTEGER NOT NULL, tx_id TEXT NOT NULL, block_hash BLOB NOT NULL,
        statements INTEGER NOT NULL, revisions_expected INTEGER NOT NULL,
        body TEXT NOT NULL, kinds TEXT NOT NULL,
        fingerprint TEXT NOT NULL, raw BLOB NOT NULL, arn TEXT NOT NULL,
        origin TEXT NOT NULL, arrived_us INTEGER, delay_ms REAL,
        reason TEXT, updated_us INTEGER, actor TEXT,
        purged INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX IF NOT EXISTS blocks_release ON blocks (ledger, strand_id, state, seq)",
    "CREATE INDEX IF NOT EXISTS blocks_arrival ON blocks (arrived_us)",
    "CREATE INDEX IF NOT EXISTS blocks_delay ON blocks (delay_ms)",
    """CREATE TABLE IF NOT EXISTS statements (
        block_id TEXT NOT NULL, idx INTEGER NOT NULL,
        ledger TEXT NOT NULL, strand_id TEXT NOT NULL, seq INTEGER NOT NULL,
        start_us INTEGER NOT NULL, commit_us INTEGER NOT NULL, tx_id TEXT NOT NULL,
        text TEXT NOT NULL, digest BLOB NOT NULL, kind TEXT, state TEXT NOT NULL,
        PRIMARY KEY (block_id, idx)) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS statements_start ON statements (start_us)",
    """CREATE TABLE IF NOT EXISTS revisions (
        revision_id TEXT PRIMARY KEY, block_id TEXT NOT NULL,
        ledger TEXT NOT NULL, strand_id TEXT NOT NULL, seq INTEGER NOT NULL,
        document_id TEXT NOT NULL, version INTEGER NOT NULL,
        table_name TEXT NOT NULL, table_id TEXT NOT NULL,
        hash BLOB NOT NULL, data BLOB, data_hash BLOB,
        tx_time_us INTEGER NOT NULL, tx_id TEXT NOT NULL,
        fingerprint TEXT NOT NULL, raw BLOB NOT NULL, arn TEXT NOT NULL,
        origin TEXT NOT NULL, arrived_us INTEGER, late INTEGER NOT NULL,
        tx_time_form TEXT)""",
    "CREATE INDEX IF NOT EXISTS revisions_block ON revisions (block_id)",
    """CREATE TABLE IF NOT EXISTS control (
        record_id TEXT PRIMARY KEY, control_type TEXT NOT NULL,
        fingerprint TEXT NOT NULL, raw BLOB NOT NULL, arn TEXT NOT NULL,
        origin TEXT NOT NULL, arrived_us INTEGER)""",
    """CREATE TABLE IF NOT EXISTS rejected (
        rejection_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL, reason TEXT NOT NULL, raw BLOB NOT NULL, raw_sha256 TEXT NOT NULL,
        origin TEXT NOT NULL, arrived_us INTEGER,
        record_id TEXT, block_id TEXT,
        resolved_us INTEGER, resolved_by TEXT, resolution TEXT)""",
    "CREATE INDEX IF NOT EXISTS rejected_record ON rejected (record_id)",
    "CREATE INDEX IF NOT EXISTS rejected_block ON rejected (block_id)",
    """CREATE TABLE IF NOT EXISTS strands (
        ledger TEXT NOT NULL, strand_id TEXT NOT NULL,
        replayed_through INTEGER, highest_seen INTEGER NOT NULL DEFAULT -1,
        has_blocks INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (ledger, strand_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS gaps (
        ledger TEXT NOT NULL, strand_id TEXT NOT NULL, first INTEGER NOT NULL,
        last INTEGER NOT NULL, passed_us INTEGER NOT NULL,
        PRIMARY KEY (ledger, strand_id, first, last)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS lease (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_us INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS counters (
        name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID""",
)

# Primary SQLite result codes (sqlite3.h).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _PROTOCOL, _NOTADB = (
    5, 6, 8, 10, 11, 13, 14, 15, 26,
)  # fmt: skip
_TRANSIENT = {
    _BUSY: "the database is busy (another process holds a lock)",
    _LOCKED: "the database is locked",
    _READONLY: "the database is read-only",
    _IOERR: "disk I/O error",
    _FULL: "the disk is full",
    _PROTOCOL: "locking protocol error",
}


class NotABuffer(InputError):
    """The file is not a qldb-settle settling buffer (another SQLite database, or not SQLite)."""


def translate(exc: sqlite3.Error, path: str) -> SettleError | None:
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc).lower()
    if primary is None:
        if "locked" in text or "busy" in text:
            primary = _BUSY
        elif "readonly" in text or "read-only" in text:
            primary = _READONLY
        elif "disk i/o" in text:
            primary = _IOERR
        elif "not a database" in text:
            primary = _NOTADB
        elif "unable to open" in text:
            primary = _CANTOPEN
    if primary in _TRANSIENT:
        return TransientError(f"settling buffer {path}: {_TRANSIENT[primary]} ({exc})")
    if primary in (_NOTADB, _CORRUPT):
        return NotABuffer(f"{path} is not a qldb-settle buffer ({exc})")
    if primary == _CANTOPEN:
        return InputError(f"cannot open the settling buffer {path} ({exc})")
    return None
