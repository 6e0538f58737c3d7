"""``SqliteBuffer``: the settling buffer in one SQLite file, the embedded default.

One connection per instance, WAL mode (readers never wait for the ingest), a busy timeout, and one
transaction around each call that writes (a ``put`` batch is all or nothing). The schema is
created idempotently; ``PRAGMA application_id`` marks the file as a qldb-settle buffer and the
``meta`` table holds the schema version, so a file that is something else is refused
(``InputError``) instead of being written into. SQLite errors that mean "try again" (busy,
locked, read-only, disk I/O, disk full) become ``TransientError`` naming the file.

Tables: ``blocks`` (one header per block summary: state, commit time, hashes, counts, arrival, the
summary as a JSON body for fast rebuilding and its Ion binary as received; indexed by
``(ledger, strand_id, state, seq)`` so ``pending`` costs what it returns), ``statements`` (one row
per statement keyed by ``start_us``, with block address, commit time, transaction id, text,
digest, classification and state), ``revisions`` (document data as Ion binary, matched to blocks
by their ``blockAddress``), ``control``, ``rejected`` (raw bytes, kind, reason, resolution),
``strands`` (replayed mark, highest sequence seen), ``gaps``, ``lease``, ``counters`` (the counts
``stats`` reports, kept in the same transactions as the rows they count) and ``meta``.
The policy is shared with OpenSearch: what ``put`` does with each copy is ``buffer.put_policy``'s
(``buffer.sqlite_put`` reads the stored copies of a batch by id and writes what the decisions
mean, in bulk, in the transaction), the rest (which copy is kept, time, bodies, the dump's shape)
``buffer._common``'s.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from buffer import _common as c
from buffer.port import (
    BLOCK_STATES,
    BlockRow,
    BlockState,
    BufferedBlock,
    BufferStats,
    Gap,
    Incoming,
    Lease,
    Mark,
    PutReport,
    Rejection,
)
from buffer.sqlite_put import CHUNK, Batch, SqlitePut, flush_counters
from journal.errors import InputError, SettleError
from journal.records import RevisionDetails
from runtime.errors import TransientError

log = logging.getLogger(__name__)

APPLICATION_ID = 0x51534246  # "QSBF": a qldb-settle buffer
# 2: revisions.tx_time_form (the Ion precision and offset of txTime), added to a version 1 file.
SCHEMA_VERSION = 2

_SCHEMA = (
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
_REVISION_COLUMNS = (
    "arn, table_name, table_id, strand_id, seq, hash, data, data_hash, document_id, version, "
    "tx_time_us, tx_id, tx_time_form"
)

# ``_REVISION_COLUMNS`` named as ``c.RevisionParts``'s fields (``c.revision_from``).
_REVISION_FIELDS = tuple(
    "sequence_no" if n == "seq" else n for n in (n.strip() for n in _REVISION_COLUMNS.split(","))
)

_BLOCK_COLUMNS = "block_id, body, arn, kinds, state, arrived_us, reason"
# The release query: a range scan of blocks_release, costing what it returns (tests check the plan).
PENDING_SQL = (
    f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE ledger = ? AND strand_id = ? "
    "AND state = 'pending' AND seq > ? ORDER BY seq LIMIT ?"
)
REVISIONS_SQL = (
    f"SELECT revision_id, block_id, {_REVISION_COLUMNS} FROM revisions "
    "WHERE block_id IN ({marks}) ORDER BY revision_id"
)


class NotABuffer(InputError):
    """The file is not a qldb-settle settling buffer (another SQLite database, or not SQLite)."""


def _translate(exc: sqlite3.Error, path: str) -> SettleError | None:
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


class SqliteBuffer:
    """The ``SettlingBuffer`` port on one SQLite file (``buffer.port`` states the guarantees).

    ``read_only`` opens an existing buffer for reading (writes then raise ``TransientError``);
    ``busy_timeout_s`` is how long a call waits for another process's write lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        read_only: bool = False,
    ) -> None:
        self.path = str(path)
        self.read_only = read_only
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        target = (
            f"file:{quote(str(Path(self.path).absolute()))}?mode=ro" if read_only else self.path
        )
        try:
            self._db = sqlite3.connect(
                target,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
                uri=read_only,
            )
        except sqlite3.Error as exc:
            raise (_translate(exc, self.path) or exc) from exc
        try:
            with self._guard():
                self._open()
        except BaseException:
            self._db.close()
            raise

    # --- plumbing ---------------------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            mapped = _translate(exc, self.path)
            if mapped is None:
                raise
            raise mapped from exc

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[sqlite3.Cursor]:
        with self._lock, self._guard():
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                if self._db.in_transaction:
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("rollback failed on %s", self.path, exc_info=True)
                raise
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _open(self) -> None:
        # Both read in one snapshot: between two separate reads another process creating the
        # schema could commit, and a file with tables but no application id is not ours.
        with self._tx(write=False) as cur:
            (app_id,) = cur.execute("PRAGMA application_id").fetchone()
            (tables,) = cur.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if app_id == 0 and tables == 0:
            if self.read_only:
                raise NotABuffer(f"{self.path} is not a qldb-settle buffer (it is empty)")
            self._create()
        elif app_id != APPLICATION_ID:
            raise NotABuffer(
                f"{self.path} is not a qldb-settle buffer (an SQLite database of another kind)"
            )
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise NotABuffer(
                f"{self.path} has buffer schema {version}, newer than this qldb-settle "
                f"({SCHEMA_VERSION})"
            )
        if version < SCHEMA_VERSION and not self.read_only:
            self._create()
        if not self.read_only:
            (mode,) = self._db.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                self._wal()

    def _wal(self) -> None:
        """``PRAGMA journal_mode=WAL``, retried for as long as the busy timeout: the journal-mode
        change can be answered "database is locked" without waiting on the busy handler while
        another process holds the file (two processes opening a new buffer at the same time)."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                locked = "locked" in str(exc) or "busy" in str(exc)
                if not locked or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _create(self) -> None:
        """Create the schema; idempotent, and safe when two processes do it at once."""
        self._wal()
        with self._tx(write=True) as cur:
            for statement in _SCHEMA:
                cur.execute(statement)
            columns = {row[1] for row in cur.execute("PRAGMA table_info(revisions)")}
            if "tx_time_form" not in columns:  # a version 1 file
                cur.execute("ALTER TABLE revisions ADD COLUMN tx_time_form TEXT")
            cur.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            cur.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            cur.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('kind', 'qldb-settle buffer')"
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteBuffer({self.path!r})"

    # --- put --------------------------------------------------------------------------------------

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        """Store records create-if-absent and keep rejections, in one transaction, read and
        written in bulk (``buffer.sqlite_put``)."""
        with self._tx(write=True) as cur:
            return SqlitePut(cur).put(records, rejections)

    # --- reading blocks ---------------------------------------------------------------------------

    def strands(self) -> Sequence[tuple[str, str]]:
        with self._tx(write=False) as cur:
            rows = cur.execute(
                "SELECT ledger, strand_id FROM strands WHERE has_blocks = 1 "
                "ORDER BY ledger, strand_id"
            ).fetchall()
        return [(a, b) for a, b in rows]

    def pending(
        self, ledger: str, strand_id: str, after: int, limit: int
    ) -> Sequence[BufferedBlock]:
        if limit <= 0:
            return []
        with self._tx(write=False) as cur:
            rows = cur.execute(
                PENDING_SQL,
                (ledger, strand_id, after, limit),
            ).fetchall()
            return self._buffered(cur, rows)

    def get_block(self, block_id: str) -> BufferedBlock | None:
        with self._tx(write=False) as cur:
            rows = cur.execute(
                f"SELECT {_BLOCK_COLUMNS} FROM blocks WHERE block_id = ?", (block_id,)
            ).fetchall()
            found = self._buffered(cur, rows)
        return found[0] if found else None

    def _buffered(self, cur: sqlite3.Cursor, rows: list[Any]) -> list[BufferedBlock]:
        ids = [r[0] for r in rows]
        revisions: dict[str, list[tuple[str, RevisionDetails]]] = {i: [] for i in ids}
        for chunk in c.chunks(ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            for found in cur.execute(
                REVISIONS_SQL.format(marks=marks),
                chunk,
            ):
                revisions[found[1]].append((found[0], _revision(found[2:])))
        conflicted = self._conflicted(
            cur, ids, {rid: bid for bid, revs in revisions.items() for rid, _ in revs}
        )
        blocks = []
        for block_id, body, arn, kinds, state, arrived_us, reason in rows:
            summary = c.summary_from_body(body, arn)
            blocks.append(
                BufferedBlock(
                    summary=summary,
                    revisions=c.pick_revisions(summary, (r for _, r in revisions[block_id])),
                    statement_kinds=tuple(json.loads(kinds)),
                    state=state,
                    arrived_at=c.opt_from_us(arrived_us),
                    conflicted=block_id in conflicted,
                    reason=reason,
                )
            )
        return blocks

    @staticmethod
    def _conflicted(
        cur: sqlite3.Cursor, block_ids: list[str], revision_blocks: Mapping[str, str]
    ) -> set[str]:
        """Blocks with an unresolved conflict: on the block summary, on a revision stored for the
        block, or a conflicting copy that claimed the block."""
        if not block_ids:
            return set()
        wanted = set(block_ids)
        found: set[str] = set()
        for chunk in c.chunks(block_ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            for (block_id,) in cur.execute(
                "SELECT block_id FROM rejected WHERE kind = 'conflict' AND resolved_us IS NULL "
                f"AND block_id IN ({marks})",
                chunk,
            ):
                found.add(block_id)
        record_ids = [*block_ids, *revision_blocks]
        for chunk in c.chunks(record_ids, CHUNK):
            marks = ",".join("?" * len(chunk))
            for (record_id,) in cur.execute(
                "SELECT record_id FROM rejected WHERE kind = 'conflict' AND resolved_us IS NULL "
                f"AND record_id IN ({marks})",
                chunk,
            ):
                found.add(revision_blocks.get(record_id, record_id))
        return found & wanted

    def blocks(self, state: BlockState | None = None) -> Sequence[BlockRow]:
        out: list[BlockRow] = []
        with self._tx(write=False) as cur:
            strands = cur.execute(
                "SELECT ledger, strand_id FROM strands WHERE has_blocks = 1 "
                "ORDER BY ledger, strand_id"
            ).fetchall()
            for ledger, strand_id in strands:
                where, args = "ledger = ? AND strand_id = ?", [ledger, strand_id]
                if state is not None:
                    where += " AND state = ?"
                    args.append(state)
                for row in cur.execute(
                    "SELECT block_id, ledger, strand_id, seq, state, commit_us, statements, "
                    "revisions_expected, (SELECT count(*) FROM revisions r "
                    "WHERE r.block_id = b.block_id), reason, updated_us, actor "
                    f"FROM blocks b WHERE {where} ORDER BY seq",
                    args,
                ):
                    out.append(
                        BlockRow(
                            block_id=row[0],
                            ledger=row[1],
                            strand_id=row[2],
                            sequence_no=row[3],
                            state=row[4],
                            commit_time=c.from_us(row[5]),
                            statements=row[6],
                            revisions_expected=row[7],
                            revisions_buffered=row[8],
                            reason=row[9],
                            updated_at=c.opt_from_us(row[10]),
                            actor=row[11],
                        )
                    )
        return out

    # --- marks ------------------------------------------------------------------------------------

    def mark(self, marks: Sequence[Mark]) -> None:
        with self._tx(write=True) as cur:
            batch = Batch()
            for m in marks:
                if m.state not in BLOCK_STATES:
                    raise InputError(f"{m.state!r} is not a block state {BLOCK_STATES}")
                row = cur.execute(
                    "SELECT state, ledger, strand_id, seq FROM blocks WHERE block_id = ?",
                    (m.block_id,),
                ).fetchone()
                if row is None:
                    raise InputError(
                        f"block {m.block_id} is not in the settling buffer {self.path}"
                    )
                old, ledger, strand_id, seq = row
                cur.execute(
                    "UPDATE blocks SET state = ?, reason = ?, updated_us = ?, actor = ? "
                    "WHERE block_id = ?",
                    (m.state, m.reason, c.to_us(m.at), m.actor, m.block_id),
                )
                cur.execute(
                    "UPDATE statements SET state = ? WHERE block_id = ?", (m.state, m.block_id)
                )
                batch.deltas[f"blocks.{old}"] -= 1
                batch.deltas[f"blocks.{m.state}"] += 1
                if m.state in ("replayed", "skipped"):
                    cur.execute(
                        "INSERT INTO strands (ledger, strand_id, replayed_through) "
                        "VALUES (?, ?, ?) ON CONFLICT (ledger, strand_id) DO UPDATE SET "
                        "replayed_through = max(coalesce(replayed_through, -1), "
                        "excluded.replayed_through)",
                        (ledger, strand_id, seq),
                    )
            flush_counters(cur, batch)

    def replayed_through(self, ledger: str, strand_id: str) -> int | None:
        with self._tx(write=False) as cur:
            row = cur.execute(
                "SELECT replayed_through FROM strands WHERE ledger = ? AND strand_id = ?",
                (ledger, strand_id),
            ).fetchone()
        return None if row is None else cast("int | None", row[0])

    def repair(self, ledger: str, strand_id: str, sequence_no: int, at: datetime) -> int:
        with self._tx(write=True) as cur:
            ids = [
                r[0]
                for r in cur.execute(
                    "SELECT block_id FROM blocks WHERE ledger = ? AND strand_id = ? "
                    "AND state = 'pending' AND seq <= ?",
                    (ledger, strand_id, sequence_no),
                )
            ]
            for chunk in c.chunks(ids, CHUNK):
                marks = ",".join("?" * len(chunk))
                cur.execute(
                    "UPDATE blocks SET state = 'replayed', updated_us = ?, actor = 'settler', "
                    f"reason = ? WHERE block_id IN ({marks})",
                    (
                        c.to_us(at),
                        f"repaired from the destination checkpoint {sequence_no}",
                        *chunk,
                    ),
                )
                cur.execute(
                    f"UPDATE statements SET state = 'replayed' WHERE block_id IN ({marks})", chunk
                )
            cur.execute(
                "INSERT INTO strands (ledger, strand_id, replayed_through) VALUES (?, ?, ?) "
                "ON CONFLICT (ledger, strand_id) DO UPDATE SET "
                "replayed_through = excluded.replayed_through",
                (ledger, strand_id, sequence_no),
            )
            batch = Batch()
            batch.deltas["blocks.pending"] -= len(ids)
            batch.deltas["blocks.replayed"] += len(ids)
            flush_counters(cur, batch)
        return len(ids)

    def record_gaps(self, gaps: Sequence[Gap]) -> None:
        if not gaps:
            return
        with self._tx(write=True) as cur:
            batch = Batch()
            for gap in gaps:
                args = (gap.ledger, gap.strand_id, gap.first, gap.last, c.to_us(gap.passed_at))
                cur.execute(
                    "INSERT OR IGNORE INTO gaps (ledger, strand_id, first, last, passed_us) "
                    "VALUES (?, ?, ?, ?, ?)",
                    args,
                )
                if cur.rowcount == 1:
                    batch.deltas["gaps"] += 1
                else:
                    cur.execute(
                        "UPDATE gaps SET passed_us = min(passed_us, ?) WHERE ledger = ? AND "
                        "strand_id = ? AND first = ? AND last = ?",
                        (args[4], *args[:4]),
                    )
            flush_counters(cur, batch)

    def withdraw_gaps(self, gaps: Sequence[Gap]) -> None:
        if not gaps:
            return
        with self._tx(write=True) as cur:
            batch = Batch()
            for gap in gaps:
                cur.execute(
                    "DELETE FROM gaps WHERE ledger = ? AND strand_id = ? AND first = ? AND "
                    "last = ?",
                    (gap.ledger, gap.strand_id, gap.first, gap.last),
                )
                batch.deltas["gaps"] -= cur.rowcount
            flush_counters(cur, batch)

    def gaps(self) -> Sequence[Gap]:
        with self._tx(write=False) as cur:
            rows = cur.execute(
                "SELECT ledger, strand_id, first, last, passed_us FROM gaps "
                "ORDER BY ledger, strand_id, first, last"
            ).fetchall()
        return [
            Gap(ledger=a, strand_id=b, first=f, last=la, passed_at=c.from_us(p))
            for a, b, f, la, p in rows
        ]

    # --- rejections -------------------------------------------------------------------------------

    def rejected(self) -> Sequence[Rejection]:
        with self._tx(write=False) as cur:
            rows = cur.execute(
                "SELECT origin, raw, kind, reason, arrived_us, record_id, resolved_us, "
                "resolved_by, resolution FROM rejected "
                "ORDER BY arrived_us IS NULL, arrived_us, origin, rejection_id"
            ).fetchall()
        return [
            Rejection(
                origin=r[0],
                raw=r[1],
                kind=r[2],
                reason=r[3],
                arrived_at=c.opt_from_us(r[4]),
                record_id=r[5],
                resolved_at=c.opt_from_us(r[6]),
                resolved_by=r[7],
                resolution=r[8],
            )
            for r in rows
        ]

    def unresolved_rejections(self) -> int:
        with self._tx(write=False) as cur:
            (n,) = cur.execute("SELECT count(*) FROM rejected WHERE resolved_us IS NULL").fetchone()
        return int(n)

    def acknowledge_rejections(
        self, ids: Sequence[str], reason: str, actor: str, at: datetime
    ) -> int:
        changed = 0
        with self._tx(write=True) as cur:
            for rid in dict.fromkeys(ids):
                cur.execute(
                    "UPDATE rejected SET resolved_us = ?, resolved_by = ?, resolution = ? "
                    "WHERE rejection_id = ? AND resolved_us IS NULL",
                    (c.to_us(at), actor, reason, rid),
                )
                changed += cur.rowcount
        return changed

    # --- figures, lease, retention ----------------------------------------------------------------

    def stats(self, now: datetime) -> BufferStats:
        with self._tx(write=False) as cur:
            counts = dict(cur.execute("SELECT name, value FROM counters").fetchall())
            strands = cur.execute(
                "SELECT ledger, strand_id, highest_seen FROM strands ORDER BY ledger, strand_id"
            ).fetchall()
            oldest: int | None = None
            for ledger, strand_id, _ in strands:
                row = cur.execute(
                    "SELECT commit_us FROM blocks WHERE ledger = ? AND strand_id = ? "
                    "AND state = 'pending' ORDER BY seq LIMIT 1",
                    (ledger, strand_id),
                ).fetchone()
                if row is not None and (oldest is None or row[0] < oldest):
                    oldest = row[0]
            delays = [
                float(d)
                for (d,) in cur.execute(
                    "SELECT delay_ms FROM blocks WHERE arrived_us IS NOT NULL "
                    "ORDER BY arrived_us DESC LIMIT ?",
                    (c.DELAY_SAMPLE,),
                )
            ]
            (largest,) = cur.execute("SELECT max(delay_ms) FROM blocks").fetchone()
        if largest is not None and (not delays or max(delays) < largest):
            delays.append(float(largest))
        return BufferStats(
            blocks={s: int(counts.get(f"blocks.{s}", 0)) for s in BLOCK_STATES},
            statements=int(counts.get("statements", 0)),
            revisions=int(counts.get("revisions", 0)),
            rejected=int(counts.get("rejected", 0)),
            conflicts=int(counts.get("conflicts", 0)),
            gaps=int(counts.get("gaps", 0)),
            oldest_pending_commit=c.opt_from_us(oldest),
            highest_sequence_seen={f"{a}/{b}": h for a, b, h in strands if h >= 0},
            ingest_delays_ms=delays,
        )

    def acquire_lease(self, owner: str, ttl_seconds: float, now: datetime) -> bool:
        now_us = c.to_us(now)
        with self._tx(write=True) as cur:
            row = cur.execute(
                "SELECT owner, expires_us FROM lease WHERE name = 'settler'"
            ).fetchone()
            if row is not None and row[0] != owner and row[1] > now_us:
                return False
            cur.execute(
                "INSERT INTO lease (name, owner, expires_us) VALUES ('settler', ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_us = excluded.expires_us",
                (owner, now_us + round(ttl_seconds * 1_000_000)),
            )
        return True

    def release_lease(self, owner: str) -> None:
        with self._tx(write=True) as cur:
            cur.execute("DELETE FROM lease WHERE name = 'settler' AND owner = ?", (owner,))

    def lease(self) -> Lease | None:
        with self._tx(write=False) as cur:
            row = cur.execute(
                "SELECT owner, expires_us FROM lease WHERE name = 'settler'"
            ).fetchone()
        return None if row is None else Lease(owner=row[0], expires_at=c.from_us(row[1]))

    def purge_replayed(self, older_than: datetime) -> int:
        cutoff = c.to_us(older_than)
        purged = 0
        with self._tx(write=True) as cur:
            batch = Batch()
            strands = cur.execute("SELECT ledger, strand_id FROM strands").fetchall()
            for ledger, strand_id in strands:
                ids = [
                    r[0]
                    for r in cur.execute(
                        "SELECT block_id FROM blocks WHERE ledger = ? AND strand_id = ? "
                        "AND state = 'replayed' AND commit_us < ? AND purged = 0",
                        (ledger, strand_id, cutoff),
                    )
                ]
                for chunk in c.chunks(ids, CHUNK):
                    marks = ",".join("?" * len(chunk))
                    cur.execute(f"DELETE FROM statements WHERE block_id IN ({marks})", chunk)
                    batch.deltas["statements"] -= cur.rowcount
                    cur.execute(f"DELETE FROM revisions WHERE block_id IN ({marks})", chunk)
                    batch.deltas["revisions"] -= cur.rowcount
                    cur.execute(f"UPDATE blocks SET purged = 1 WHERE block_id IN ({marks})", chunk)
                purged += len(ids)
            flush_counters(cur, batch)
        return purged

    # --- dump -------------------------------------------------------------------------------------

    def dump(self) -> Mapping[str, Any]:
        d = c.DumpBuilder()
        with self._tx(write=False) as cur:
            for row in _rows(
                cur,
                "SELECT block_id, ledger, strand_id, seq AS sequence_no, state, commit_us, "
                "tx_id AS transaction_id, lower(hex(block_hash)) AS block_hash, fingerprint, "
                "statements, revisions_expected, kinds, reason, actor, updated_us, purged, origin, "
                "arrived_us, raw, arn FROM blocks",
            ):
                row["statement_kinds"] = json.loads(row.pop("kinds"))
                d.block(row)
            for row in _rows(
                cur,
                'SELECT block_id, idx AS "index", start_us, text, lower(hex(digest)) AS digest, '
                "kind, state FROM statements",
            ):
                d.statement(row)
            for row in _rows(
                cur,
                "SELECT revision_id, block_id, document_id, version, fingerprint, late, origin, "
                "arrived_us, raw, arn FROM revisions",
            ):
                d.revision(row)
            for row in _rows(
                cur,
                "SELECT record_id, control_type, fingerprint, origin, arrived_us, raw, arn "
                "FROM control",
            ):
                d.control_record(row)
            for row in _rows(
                cur,
                "SELECT rejection_id, kind, reason, record_id, block_id, raw_sha256, resolved_us, "
                "resolved_by, resolution, origin, arrived_us FROM rejected",
            ):
                d.rejection(row)
            for r in cur.execute(
                "SELECT ledger, strand_id, replayed_through, highest_seen, has_blocks FROM strands"
            ).fetchall():
                d.strand(f"{r[0]}/{r[1]}", r[2], r[3] if r[3] >= 0 else None, bool(r[4]))
            for r in cur.execute(
                "SELECT ledger, strand_id, first, last, passed_us FROM gaps "
                "ORDER BY ledger, strand_id, first, last"
            ).fetchall():
                d.gap(r[0], r[1], r[2], r[3], c.from_us(r[4]))
        return d.dump()


def _revision(row: Sequence[Any]) -> RevisionDetails:
    """A revision from the ``_REVISION_COLUMNS`` of its row."""
    return c.revision_from(dict(zip(_REVISION_FIELDS, row, strict=True)))


def _rows(cur: sqlite3.Cursor, sql: str) -> Iterator[dict[str, Any]]:
    """The rows of ``sql`` as mappings by column name (for ``c.DumpBuilder``); a ``raw`` column
    becomes its ``raw_sha256``."""
    cur.execute(sql)
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        values = dict(zip(names, row, strict=True))
        if "raw" in values:
            values["raw_sha256"] = c.sha256_hex(values.pop("raw"))
        yield values
