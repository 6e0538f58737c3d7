"""``SqliteStore``: the ``buffer.store`` verbs on one SQLite file (``buffer.sqlite_schema``).

One connection per store, WAL mode (readers never wait for the ingest), a busy timeout, and one
transaction per ``atomic`` block (``BEGIN IMMEDIATE`` for a write: a ``put`` is all or nothing).
The schema is created idempotently; a file that is something else is refused (``NotABuffer``).
``view`` and ``apply`` are ``buffer.sqlite_put``'s (reads by id and writes in bulk); every other
verb is one query or one ``executemany`` per chunk of ids.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from buffer import _common as c
from buffer import planner
from buffer.port import Incoming, Rejection
from buffer.sqlite_put import CHUNK, SqlitePut, chunked_read, flush_counters
from buffer.sqlite_schema import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, NotABuffer, translate
from buffer.store import GapKey, HeaderQuery, HeaderRow, StateWrite, StrandRow
from journal.records import RevisionDetails

log = logging.getLogger(__name__)

_REVISION_COLUMNS = (
    "arn, table_name, table_id, strand_id, seq, hash, data, data_hash, document_id, version, "
    "tx_time_us, tx_id, tx_time_form"
)
# ``_REVISION_COLUMNS`` named as ``c.RevisionParts``'s fields (``c.revision_from``).
_REVISION_FIELDS = tuple(
    "sequence_no" if n == "seq" else n for n in (n.strip() for n in _REVISION_COLUMNS.split(","))
)
REVISIONS_SQL = (
    f"SELECT revision_id, block_id, {_REVISION_COLUMNS} FROM revisions "
    "WHERE block_id IN ({marks}) ORDER BY revision_id"
)
_HEADER_COLUMNS = (
    "block_id, ledger, strand_id, seq, state, commit_us, statements, revisions_expected, "
    "reason, updated_us, actor, purged, arrived_us, body, arn, kinds"
)
_HEADER_SELECT = ", ".join(f"b.{n.strip()}" for n in _HEADER_COLUMNS.split(","))


def header_select(q: HeaderQuery) -> tuple[str, list[Any]]:
    """The query of ``q`` and its arguments, in sequence order (tests check the plans).

    Of one strand: a range scan of ``blocks_release`` when it names a state. Of every strand (no
    ``strand_id``): the ``strands`` rows joined to ``blocks_release`` strand by strand (``CROSS
    JOIN`` keeps ``strands`` outside), so a state's headers cost what they return, not a scan
    of every block's index entry (``blocks_release`` leads with the strand, not the state). Every
    stored block has its strand's row: the put that writes it writes that row (``strands``)."""
    where: list[str] = []
    args: list[Any] = []
    for clause, value in (
        ("b.ledger = ?" if q.strand_id is not None else "s.ledger = ?", q.ledger),
        ("b.strand_id = ?", q.strand_id),
        ("b.state = ?", q.state),
        ("b.seq > ?", q.after),
        ("b.seq <= ?", q.through),
        ("b.commit_us < ?", q.committed_before_us),
    ):
        if value is not None:
            where.append(clause)
            args.append(value)
    if q.unpurged:
        where.append("b.purged = 0")
    if q.strand_id is not None:
        source, order = "blocks b", "b.seq"
    else:
        source = (
            "strands s CROSS JOIN blocks b ON b.ledger = s.ledger AND b.strand_id = s.strand_id"
        )
        order = "s.ledger, s.strand_id, b.seq"
    sql = f"SELECT {_HEADER_SELECT} FROM {source} WHERE {' AND '.join(where or ['1'])} "
    sql += f"ORDER BY {order}"
    if q.limit is not None:
        sql += " LIMIT ?"
        args.append(q.limit)
    return sql, args


# The release query (``Buffer.pending``), with its arguments ledger, strand, state, after, limit.
PENDING_SQL = header_select(
    HeaderQuery(ledger="", strand_id="", state="pending", after=0, limit=1)
)[0]


class SqliteStore:
    """The storage verbs of ``buffer.store.Store`` on one SQLite file (the module docstring).

    ``read_only`` opens an existing buffer for reading (writes then raise ``TransientError``);
    ``busy_timeout_s`` is how long a call waits for another process's write lock.
    """

    def __init__(self, path: str, busy_timeout_s: float, read_only: bool) -> None:
        self.path = self.name = path
        self.read_only = read_only
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._cur: sqlite3.Cursor | None = None
        self._put: SqlitePut | None = None
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
            raise (translate(exc, self.path) or exc) from exc
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
            mapped = translate(exc, self.path)
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
            for statement in SCHEMA:
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

    @contextmanager
    def atomic(self, *, write: bool) -> Iterator[None]:
        """One transaction around the verbs called inside (nested blocks join it)."""
        with self._lock:
            if self._cur is not None:
                yield
                return
            with self._tx(write=write) as cur:
                self._cur = cur
                try:
                    yield
                finally:
                    self._cur = None
                    self._put = None

    @property
    def cur(self) -> sqlite3.Cursor:
        if self._cur is None:  # pragma: no cover - a verb outside ``atomic``
            raise RuntimeError("a store verb outside atomic()")
        return self._cur

    # --- put --------------------------------------------------------------------------------------

    def view(self, records: Sequence[Incoming]) -> planner.StoreView:
        self._put = SqlitePut(self.cur)
        return self._put.view(records)

    def apply(self, plan: planner.PutPlan) -> set[str]:
        put = self._put if self._put is not None else SqlitePut(self.cur)
        put.apply(plan)
        return set()

    # --- reads ------------------------------------------------------------------------------------

    def headers(self, query: HeaderQuery) -> list[HeaderRow]:
        sql, args = header_select(query)
        return [_header(row) for row in self.cur.execute(sql, args)]

    def headers_by_id(self, block_ids: Collection[str]) -> dict[str, HeaderRow]:
        sql = f"SELECT {_HEADER_COLUMNS} FROM blocks WHERE block_id IN ({{marks}})"
        return {b: _header((b, *row)) for b, row in chunked_read(self.cur, sql, block_ids).items()}

    def revisions_of(self, block_ids: Sequence[str]) -> dict[str, list[RevisionDetails]]:
        out: dict[str, list[RevisionDetails]] = {b: [] for b in block_ids}
        for chunk in c.chunks(list(block_ids), CHUNK):
            marks = ",".join("?" * len(chunk))
            for row in self.cur.execute(REVISIONS_SQL.format(marks=marks), chunk):
                out[row[1]].append(_revision(row[2:]))
        return out

    def revision_counts(self, block_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in c.chunks(list(block_ids), CHUNK):
            marks = ",".join("?" * len(chunk))
            out.update(
                self.cur.execute(
                    f"SELECT block_id, count(*) FROM revisions WHERE block_id IN ({marks}) "
                    "GROUP BY block_id",
                    chunk,
                ).fetchall()
            )
        return out

    def unresolved_conflicts(
        self, block_ids: Collection[str], record_ids: Collection[str]
    ) -> tuple[set[str], set[str]]:
        found: list[set[str]] = []
        for column, ids in (("block_id", block_ids), ("record_id", record_ids)):
            hits: set[str] = set()
            for chunk in c.chunks(list(ids), CHUNK):
                marks = ",".join("?" * len(chunk))
                hits.update(
                    r
                    for (r,) in self.cur.execute(
                        f"SELECT {column} FROM rejected WHERE kind = 'conflict' "
                        f"AND resolved_us IS NULL AND {column} IN ({marks})",
                        chunk,
                    )
                )
            found.append(hits)
        return found[0], found[1]

    # --- marks, gaps ------------------------------------------------------------------------------

    def set_states(self, writes: Sequence[StateWrite]) -> None:
        self.cur.executemany(
            "UPDATE blocks SET state = ?, reason = ?, updated_us = ?, actor = ? WHERE block_id = ?",
            [(w.state, w.reason, w.updated_us, w.actor, w.block_id) for w in writes],
        )
        self.cur.executemany(
            "UPDATE statements SET state = ? WHERE block_id = ?",
            [(w.state, w.block_id) for w in writes],
        )

    def set_through(self, ledger: str, strand_id: str, seq: int, *, raise_only: bool) -> None:
        value = (
            "max(coalesce(replayed_through, -1), excluded.replayed_through)"
            if raise_only
            else "excluded.replayed_through"
        )
        self.cur.execute(
            "INSERT INTO strands (ledger, strand_id, replayed_through) VALUES (?, ?, ?) "
            f"ON CONFLICT (ledger, strand_id) DO UPDATE SET replayed_through = {value}",
            (ledger, strand_id, seq),
        )

    def strand_rows(self) -> list[StrandRow]:
        return [
            StrandRow(a, b, through, None if seen < 0 else seen, bool(has))
            for a, b, through, seen, has in self.cur.execute(
                "SELECT ledger, strand_id, replayed_through, highest_seen, has_blocks "
                "FROM strands ORDER BY ledger, strand_id"
            )
        ]

    def through(self, ledger: str, strand_id: str) -> int | None:
        row = self.cur.execute(
            "SELECT replayed_through FROM strands WHERE ledger = ? AND strand_id = ?",
            (ledger, strand_id),
        ).fetchone()
        return None if row is None else row[0]

    def oldest_pending_us(self) -> int | None:
        """The first pending block of each strand (a range scan of ``blocks_release`` each)."""
        row = self.cur.execute(
            "SELECT MIN((SELECT commit_us FROM blocks b WHERE b.ledger = s.ledger "
            "AND b.strand_id = s.strand_id AND b.state = 'pending' ORDER BY b.seq LIMIT 1)) "
            "FROM strands s"
        ).fetchone()
        return None if row is None else row[0]

    def gap_rows(self) -> dict[GapKey, int]:
        return {
            (a, b, f, la): p
            for a, b, f, la, p in self.cur.execute(
                "SELECT ledger, strand_id, first, last, passed_us FROM gaps"
            )
        }

    def put_gaps(self, rows: Mapping[GapKey, int]) -> None:
        self.cur.executemany(
            "INSERT INTO gaps (ledger, strand_id, first, last, passed_us) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (ledger, strand_id, first, last) DO UPDATE SET "
            "passed_us = excluded.passed_us",
            [(*k, us) for k, us in rows.items()],
        )

    def delete_gaps(self, keys: Iterable[GapKey]) -> int:
        gone = 0
        for k in keys:
            self.cur.execute(
                "DELETE FROM gaps WHERE ledger = ? AND strand_id = ? AND first = ? AND last = ?",
                k,
            )
            gone += self.cur.rowcount
        return gone

    # --- rejections -------------------------------------------------------------------------------

    def rejections(self) -> list[tuple[str, Rejection]]:
        return [
            (rid, Rejection(
                origin=origin, raw=raw, kind=kind, reason=reason,
                arrived_at=c.opt_from_us(arrived), record_id=record_id,
                resolved_at=c.opt_from_us(resolved), resolved_by=by, resolution=resolution,
            ))
            for rid, origin, raw, kind, reason, arrived, record_id, resolved, by, resolution
            in self.cur.execute(
                "SELECT rejection_id, origin, raw, kind, reason, arrived_us, record_id, "
                "resolved_us, resolved_by, resolution FROM rejected"
            )
        ]  # fmt: skip

    def count_unresolved(self) -> int:
        (n,) = self.cur.execute(
            "SELECT count(*) FROM rejected WHERE resolved_us IS NULL"
        ).fetchone()
        return int(n)

    def unresolved_among(self, ids: Collection[str]) -> set[str]:
        sql = "SELECT rejection_id, resolved_us FROM rejected WHERE rejection_id IN ({marks})"
        return {i for i, row in chunked_read(self.cur, sql, ids).items() if row[0] is None}

    def resolve(self, ids: Collection[str], reason: str, actor: str, at_us: int) -> None:
        self.cur.executemany(
            "UPDATE rejected SET resolved_us = ?, resolved_by = ?, resolution = ? "
            "WHERE rejection_id = ?",
            [(at_us, actor, reason, i) for i in ids],
        )

    # --- lease, retention, figures ----------------------------------------------------------------

    def lease_row(self) -> tuple[str, int] | None:
        row = self.cur.execute(
            "SELECT owner, expires_us FROM lease WHERE name = 'settler'"
        ).fetchone()
        return None if row is None else (row[0], int(row[1]))

    def lease_cas(self, expected: tuple[str, int] | None, new: tuple[str, int] | None) -> bool:
        if self.lease_row() != expected:
            return False
        if new is None:
            self.cur.execute("DELETE FROM lease WHERE name = 'settler'")
        else:
            self.cur.execute(
                "INSERT INTO lease (name, owner, expires_us) VALUES ('settler', ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                "expires_us = excluded.expires_us",
                new,
            )
        return True

    def purge(self, block_ids: Sequence[str]) -> tuple[int, int]:
        statements = revisions = 0
        cur = self.cur
        for chunk in c.chunks(list(block_ids), CHUNK):
            marks = ",".join("?" * len(chunk))
            cur.execute(f"DELETE FROM statements WHERE block_id IN ({marks})", chunk)
            statements += cur.rowcount
            cur.execute(f"DELETE FROM revisions WHERE block_id IN ({marks})", chunk)
            revisions += cur.rowcount
            cur.execute(f"UPDATE blocks SET purged = 1 WHERE block_id IN ({marks})", chunk)
        return statements, revisions

    def counters(self) -> dict[str, int]:
        return dict(self.cur.execute("SELECT name, value FROM counters").fetchall())

    def add_counts(self, deltas: Mapping[str, int]) -> None:
        flush_counters(self.cur, deltas)

    def delays(self, sample: int) -> tuple[list[float], float | None]:
        recent = [
            float(d)
            for (d,) in self.cur.execute(
                "SELECT delay_ms FROM blocks WHERE arrived_us IS NOT NULL "
                "ORDER BY arrived_us DESC LIMIT ?",
                (sample,),
            )
        ]
        (largest,) = self.cur.execute("SELECT max(delay_ms) FROM blocks").fetchone()
        return recent, None if largest is None else float(largest)

    # --- dump -------------------------------------------------------------------------------------

    def dump_rows(self, into: c.DumpBuilder) -> None:
        d, cur = into, self.cur
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


def _header(row: Sequence[Any]) -> HeaderRow:
    """A header from the ``_HEADER_COLUMNS`` of its row."""
    return HeaderRow(
        block_id=row[0], ledger=row[1], strand_id=row[2], seq=row[3], state=row[4],
        commit_us=row[5], statements=row[6], revisions_expected=row[7], reason=row[8],
        updated_us=row[9], actor=row[10], purged=bool(row[11]), arrived_us=row[12],
        body=row[13], arn=row[14], kinds=tuple(json.loads(row[15])),
    )  # fmt: skip
