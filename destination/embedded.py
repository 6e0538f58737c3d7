"""``EmbeddedDestination``: the ``Destination`` port over an embedded ledger file (``ledger``).

One ``apply`` is one SQLite transaction (``EmbeddedLedger.atomic``) holding, in this order: the
compare-and-set of the checkpoint, one ledger transaction (so one block of the replica's own
journal) per replayed block or part, the source-to-destination document id map, and the new
checkpoint. Anything failing rolls all of it back.

Where things live: the checkpoint, the id map and the source ids of tables are plain SQLite tables
(``settle_*``) in the ledger's file, not ledger tables, so they never appear among the replica's
documents, in ``export`` or in ``verify``.

Replay (DESIGN.md rule 7):

- ``statements`` mode runs each ``StatementOp`` as the source ran it. ``UNDROP TABLE "id"`` and
  ``DROP INDEX "id" ON T`` name source ids; they are translated through the ids recorded for the
  source table (learnt from ``BlockReplay.table_names`` while the table was in use) or, for an
  index, the table's only index (QLDB never streams index ids, so nothing better is known). Then
  each of the block's revisions is matched to the document its statements wrote (same table,
  equal Ion hash) and the map records it; a revision the statements did not reproduce is a
  ``ReplayError`` (the replica would diverge). That matching, and the learning of table ids, are
  ``destination.statement_replay``, shared with the QLDB destination; this module says only where
  the facts are kept.
- ``revisions`` mode makes the mapped copy equal each revision: ``INSERT INTO T ?`` (the data as an
  Ion parameter), ``UPDATE T AS t BY pid SET t."f" = ? ... REMOVE t."g" WHERE pid = ?`` or
  ``DELETE FROM T AS t BY pid WHERE pid = ?``; a missing table is created first. A redacted
  revision removes the copy as a deletion does (its content is gone; the next revision of the
  document brings it back); one down-converted by a JSON Lines export is stored with its JSON
  types, and a warning says so for each.

The embedded ledger is not bound by QLDB's transaction limits (``limits = Limits()``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyNull

from destination import port
from destination.partiql import quote
from destination.port import ApplyReport, BlockReplay, Checkpoint, Limits, RevisionOp, StatementOp
from destination.statement_replay import (
    index_named,
    learn_table_ids,
    map_statement_writes,
    undrop_target,
)
from journal.errors import ReplayError
from ledger import EmbeddedLedger, LedgerError, StatementError
from ledger.engine import Transaction
from ledger.hashing import ion_hash
from ledger.nodes import CreateTable, DropIndex, UndropTable
from ledger.parser import parse
from runtime.errors import CheckpointMismatch

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settle_checkpoint (
    ledger TEXT NOT NULL, strand_id TEXT NOT NULL, sequence_no INTEGER NOT NULL,
    part INTEGER, block_hash BLOB NOT NULL, PRIMARY KEY (ledger, strand_id));
CREATE TABLE IF NOT EXISTS settle_id_map (
    ledger TEXT NOT NULL, source_id TEXT NOT NULL, table_name TEXT NOT NULL,
    dest_id TEXT NOT NULL, down_converted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (ledger, source_id));
CREATE INDEX IF NOT EXISTS settle_id_map_dest ON settle_id_map (dest_id);
CREATE TABLE IF NOT EXISTS settle_table_ids (
    ledger TEXT NOT NULL, source_id TEXT NOT NULL, dest_id TEXT NOT NULL,
    PRIMARY KEY (ledger, source_id));
"""
INTERNAL_TABLES = ("settle_checkpoint", "settle_id_map", "settle_table_ids")

# A statement starting so is DML, not one of the DDL statements whose source ids are translated.
_DML = re.compile(r"\s*(?:INSERT|UPDATE|DELETE|SELECT)\b", re.IGNORECASE)

_PLAIN = frozenset({IonType.STRING, IonType.INT, IonType.BOOL, IonType.BLOB, IonType.CLOB})


def _same(a: Any, b: Any) -> bool:
    """Whether two values are the same Ion value (equal Ion hashes). Strings, ints, bools and
    lobs of one type without annotations are the same exactly when Python finds them equal."""
    t = getattr(a, "ion_type", None)
    if (
        t in _PLAIN
        and t is getattr(b, "ion_type", None)
        and not getattr(a, "ion_annotations", True)
        and not getattr(b, "ion_annotations", True)
        and not isinstance(a, IonPyNull)
        and not isinstance(b, IonPyNull)
    ):
        return bool(a == b)
    return ion_hash(a) == ion_hash(b)


class EmbeddedDestination:
    """The replica in an embedded ledger file (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        ledger_name: str = "replica",
        clock: Callable[[], datetime] | None = None,
        id_seed: int | str | None = None,
    ) -> None:
        self.limits = Limits()
        self._ledger = EmbeddedLedger(
            path, ledger_name=ledger_name, enforce_limits=False, clock=clock, id_seed=id_seed
        )
        conn = self._ledger._connection()
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(settle_id_map)")}
        if "down_converted" not in columns:  # a replica made before the column existed
            conn.execute(
                "ALTER TABLE settle_id_map ADD COLUMN down_converted INTEGER NOT NULL DEFAULT 0"
            )

    @property
    def ledger(self) -> EmbeddedLedger:
        """The embedded ledger holding the replica (for query, export and verify)."""
        return self._ledger

    # --- the port --------------------------------------------------------------------------------

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        return _read_checkpoint(self._ledger._connection(), ledger, strand_id)

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        ledger, strand = port.strand_of(blocks)
        last = blocks[-1]
        report = ApplyReport()
        with self._ledger.atomic() as conn:
            current = _read_checkpoint(conn, ledger, strand)
            if current != expected:
                raise CheckpointMismatch(
                    f"checkpoint of {ledger}/{strand} is {port.describe(current)}, not the "
                    f"expected {port.describe(expected)}: nothing applied"
                )
            learnt: set[tuple[str, str]] = set()
            ids = _IdMap(conn, ledger, blocks)
            for block in blocks:
                try:
                    self._apply_block(conn, block, report, learnt, ids)
                except LedgerError as exc:
                    raise ReplayError(block.block_id, str(exc)) from None
            ids.store()
            lossy = [
                op
                for block in blocks
                for op in block.ops
                if isinstance(op, RevisionOp) and op.down_converted
            ]
            if lossy:
                log.warning(
                    "NOTE blocks %s..%s: %d revisions came from a JSON Lines export: QLDB "
                    "down-converted their Ion types (decimals to numbers, timestamps, blobs and "
                    "symbols to strings), and the replica stores them with those JSON types",
                    blocks[0].block_id, last.address.sequence_no, len(lossy),
                )  # fmt: skip
            new = last.checkpoint()
            conn.execute(
                "INSERT INTO settle_checkpoint (ledger, strand_id, sequence_no, part, block_hash) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (ledger, strand_id) DO UPDATE SET "
                "sequence_no = excluded.sequence_no, part = excluded.part, "
                "block_hash = excluded.block_hash",
                (ledger, strand, new.sequence_no, new.part, new.block_hash),
            )
        return report

    def close(self) -> None:
        self._ledger.close()

    # --- reading the replica ---------------------------------------------------------------------

    def source_ids(self) -> dict[str, str]:
        """Destination document id -> source document id, for the documents replayed from a
        known source document."""
        conn = self._ledger._connection()
        return {d: s for s, d in conn.execute("SELECT source_id, dest_id FROM settle_id_map")}

    def documents(self) -> Iterator[tuple[str, str, Any]]:
        """``(table, destination id, data)`` of the replica's current documents."""
        return self._ledger.documents()

    def down_converted_documents(self) -> list[tuple[str, Any]]:
        """``(table, data)`` of the current documents whose content is a revision a JSON Lines
        export down-converted (``settle_id_map.down_converted``)."""
        conn = self._ledger._connection()
        ids = {
            str(row[0])
            for row in conn.execute("SELECT dest_id FROM settle_id_map WHERE down_converted = 1")
        }
        if not ids:
            return []
        return [(table, data) for table, dest, data in self.documents() if dest in ids]

    # --- replay ----------------------------------------------------------------------------------

    def _apply_block(
        self,
        conn: sqlite3.Connection,
        block: BlockReplay,
        report: ApplyReport,
        learnt: set[tuple[str, str]],
        ids: _IdMap,
    ) -> None:
        self._learn_table_ids(conn, block, learnt)
        tx = self._ledger.begin()
        try:
            if block.mode == "statements":
                for op in block.ops:
                    if isinstance(op, StatementOp):
                        self._statement(conn, tx, block, op)
                        report.statements += 1
                    else:
                        report.documents_written += self._revision(conn, tx, op, ids)
                        report.revisions += 1
                report.documents_written += self._map_statement_writes(tx, block, ids)
            else:
                for op in block.ops:
                    if isinstance(op, RevisionOp):
                        report.documents_written += self._revision(conn, tx, op, ids)
                        report.revisions += 1
                    else:
                        self._statement(conn, tx, block, op)
                        report.statements += 1
            if tx.has_statements:
                tx.commit()
            else:
                tx.abort()
        finally:
            if not tx.closed:
                tx.abort()

    def _learn_table_ids(
        self, conn: sqlite3.Connection, block: BlockReplay, learnt: set[tuple[str, str]]
    ) -> None:
        """Record which destination table each source table id of the block is, in
        ``settle_table_ids`` (``learnt``: the ids known to be recorded, in this ``apply``)."""

        def known(source_id: str) -> bool:
            if (block.ledger, source_id) in learnt:
                return True
            row = conn.execute(
                "SELECT 1 FROM settle_table_ids WHERE ledger = ? AND source_id = ?",
                (block.ledger, source_id),
            ).fetchone()
            if row is not None:
                learnt.add((block.ledger, source_id))
            return row is not None

        def record(source_id: str, dest: str) -> None:
            conn.execute(
                "INSERT INTO settle_table_ids (ledger, source_id, dest_id) VALUES (?, ?, ?)",
                (block.ledger, source_id, dest),
            )
            learnt.add((block.ledger, source_id))

        learn_table_ids(
            block.table_names,
            known=known,
            active_id=lambda name: self._ledger._active_table_id(conn, name),
            record=record,
        )

    def _statement(
        self, conn: sqlite3.Connection, tx: Transaction, block: BlockReplay, op: StatementOp
    ) -> None:
        text = op.text
        statement = None
        if not _DML.match(text):  # DML names no source id: the ledger alone parses it
            with contextlib.suppress(StatementError):  # executing it reports the parse error
                statement = parse(text).statement
        if isinstance(statement, UndropTable):
            dest = self._dest_table_id(conn, block.ledger, statement.table_id)
            text = f"UNDROP TABLE {quote(dest)}"
        elif isinstance(statement, DropIndex):
            dest = self._dest_index_id(statement.table, statement.index_id)
            text = f"DROP INDEX {quote(dest)} ON {quote(statement.table)} WITH (purge = true)"
        tx.execute(text)
        if isinstance(statement, CreateTable):
            log.debug("replayed CREATE TABLE %s of block %s", statement.table, block.block_id)

    def _dest_table_id(self, conn: sqlite3.Connection, ledger: str, source_id: str) -> str:
        row = conn.execute(
            "SELECT dest_id FROM settle_table_ids WHERE ledger = ? AND source_id = ?",
            (ledger, source_id),
        ).fetchone()
        return undrop_target(
            source_id,
            learnt=None if row is None else str(row[0]),
            replica_has=lambda i: any(i == t for _, t, _ in self._ledger.tables()),
            unknown=lambda: StatementError(
                f'UNDROP TABLE "{source_id}"',
                f"the source table id {source_id} was never seen with a table name, so the table "
                "it names in the replica is unknown",
            ),
        )

    def _dest_index_id(self, table: str, source_id: str) -> str:
        return index_named(
            table,
            source_id,
            [(i, expr) for expr, i in self._ledger.indexes(table)],
            log=log,
            unknown=lambda n: StatementError(
                f'DROP INDEX "{source_id}" ON {table}',
                f"the source index id is unknown to the replica and table {table} has "
                f"{n} indexes, so which one it names cannot be told",
            ),
        )

    def _ensure_table(self, conn: sqlite3.Connection, tx: Transaction, name: str) -> None:
        active = self._ledger._active_table_id(conn, name)
        if active is None and name not in tx.created_tables():
            tx.execute(f"CREATE TABLE {quote(name)}")

    def _revision(
        self, conn: sqlite3.Connection, tx: Transaction, op: RevisionOp, ids: _IdMap
    ) -> int:
        known = ids.copy_of(op.document_id)
        dest = None if known is None else known[0]
        table = quote(op.table_name)
        if op.data is None:  # a deletion, or a redacted revision: the copy's content is gone
            if dest is None:
                return 0
            tx.execute(f"DELETE FROM {table} AS t BY pid WHERE pid = ?", dest)
            ids.forget(op.document_id)
            return 1
        if not isinstance(op.data, Mapping):
            raise StatementError(
                f"revision {op.document_id} v{op.version}",
                f"its data is not a struct ({type(op.data).__name__})",
            )
        self._ensure_table(conn, tx, op.table_name)
        if dest is not None:
            current = tx.execute(f"SELECT VALUE t FROM {table} AS t BY pid WHERE pid = ?", dest)
            if current:
                self._replace(tx, table, dest, current[0], op.data)
                ids.record(op.document_id, op.table_name, dest, down_converted=op.down_converted)
                return 1
        # The data hash verification proved (None: not computed) is carried, not recomputed.
        [inserted] = tx.execute(f"INSERT INTO {table} ?", op.data, param_hashes=(op.data_hash,))
        dest = str(inserted["documentId"])
        ids.record(op.document_id, op.table_name, dest, down_converted=op.down_converted)
        return 1

    def _replace(
        self, tx: Transaction, table: str, dest: str, current: Any, new: Mapping[str, Any]
    ) -> None:
        sets = [(str(k), v) for k, v in new.items() if k not in current or not _same(current[k], v)]
        removes = [str(k) for k in current if k not in new]
        clauses = []
        if sets:
            clauses.append("SET " + ", ".join(f"t.{quote(k)} = ?" for k, _ in sets))
        clauses += [f"REMOVE t.{quote(k)}" for k in removes]
        if not clauses:
            # The same content: QLDB still made a revision, so the replica makes one too.
            clauses = [f"REMOVE t.{quote('qldb_settle_absent')}"]
        tx.execute(
            f"UPDATE {table} AS t BY pid {' '.join(clauses)} WHERE pid = ?",
            *(v for _, v in sets),
            dest,
        )

    def _map_statement_writes(self, tx: Transaction, block: BlockReplay, ids: _IdMap) -> int:
        """Match the block's revisions to the documents its statements wrote and record the map
        (``statement_replay.map_statement_writes``); the documents written."""
        written = tx.written_hashes()
        if block.revisions:
            map_statement_writes(block, _StatementWrites(ids, written))
        return len(written)


class _IdMap:
    """The ``settle_id_map`` rows of one ``apply`` (one ledger): the rows of every source
    document its blocks revise, read in one query up front; what the blocks change is kept here
    and written in one go (``store``) inside the same SQLite transaction, which rolls back whole
    on any failure. Source id -> (destination id, down-converted) or None (no copy)."""

    _CHUNK = 500  # source ids per query (SQLite's bound-variable limit is 999 or more)

    def __init__(
        self, conn: sqlite3.Connection, ledger: str, blocks: Sequence[BlockReplay]
    ) -> None:
        self._conn = conn
        self._ledger = ledger
        self._rows: dict[str, tuple[str, bool] | None] = {}
        self._changed: dict[str, tuple[str, str, bool] | None] = {}  # source id -> new row
        wanted = sorted(
            {
                op.document_id
                for block in blocks
                for op in (*block.ops, *block.revisions)
                if isinstance(op, RevisionOp)
            }
        )
        for start in range(0, len(wanted), self._CHUNK):
            chunk = wanted[start : start + self._CHUNK]
            self._rows.update(dict.fromkeys(chunk))
            for source, dest, lossy in conn.execute(
                "SELECT source_id, dest_id, down_converted FROM settle_id_map WHERE ledger = ? "
                f"AND source_id IN ({', '.join('?' * len(chunk))})",
                (ledger, *chunk),
            ):
                self._rows[str(source)] = (str(dest), bool(lossy))

    def copy_of(self, source_id: str) -> tuple[str, bool] | None:
        """The copy of a source document: (destination id, down-converted), or None."""
        if source_id not in self._rows:  # not among the revisions read up front
            row = self._conn.execute(
                "SELECT dest_id, down_converted FROM settle_id_map WHERE ledger = ? AND "
                "source_id = ?",
                (self._ledger, source_id),
            ).fetchone()
            self._rows[source_id] = None if row is None else (str(row[0]), bool(row[1]))
        return self._rows[source_id]

    def record(self, source_id: str, table: str, dest: str, *, down_converted: bool) -> None:
        """``dest`` is the copy of the source document; whether its content is a revision a JSON
        Lines export down-converted (False: the block's statements wrote it, from a copy that was
        exact, or the settler would have replayed the block from revisions)."""
        self._rows[source_id] = (dest, down_converted)
        self._changed[source_id] = (table, dest, down_converted)

    def forget(self, source_id: str) -> None:
        self._rows[source_id] = None
        self._changed[source_id] = None

    def store(self) -> None:
        """Write what changed (the final row of each source document)."""
        gone = [(self._ledger, s) for s, row in self._changed.items() if row is None]
        kept = [
            (self._ledger, s, row[0], row[1], int(row[2]))
            for s, row in self._changed.items()
            if row is not None
        ]
        if gone:
            self._conn.executemany(
                "DELETE FROM settle_id_map WHERE ledger = ? AND source_id = ?", gone
            )
        if kept:
            self._conn.executemany(
                "INSERT INTO settle_id_map (ledger, source_id, table_name, dest_id, "
                "down_converted) VALUES (?, ?, ?, ?, ?) ON CONFLICT (ledger, source_id) DO "
                "UPDATE SET table_name = excluded.table_name, dest_id = excluded.dest_id, "
                "down_converted = excluded.down_converted",
                kept,
            )
        self._changed.clear()


class _StatementWrites:
    """``statement_replay.StatementWrites`` over one ledger transaction: its written documents
    with the Ion hash of their new data, and the ``settle_id_map`` rows of the apply (with their
    ``down_converted`` mark)."""

    def __init__(self, ids: _IdMap, written: list[tuple[str, str, bytes | None]]) -> None:
        self._ids = ids
        self._written = written
        self._hashes = {dest: h for _, dest, h in written}
        self._down_converted: dict[str, bool] = {}

    def copy_of(self, rev: RevisionOp) -> str | None:
        known = self._ids.copy_of(rev.document_id)
        if known is None:
            return None
        self._down_converted[known[0]] = known[1]
        return known[0]

    def content(self, dest: str) -> Hashable | None:
        return self._hashes.get(dest)  # None: deleted, or not written by the statements

    def written(self, table: str) -> Iterator[str]:
        return (dest for t, dest, _ in self._written if t == table)

    def fingerprint(self, rev: RevisionOp) -> Hashable:
        # The hash verification computed, when the settler carried it.
        return rev.data_hash if rev.data_hash is not None else ion_hash(rev.data)

    def down_converted(self, dest: str) -> bool:
        return self._down_converted.get(dest, False)

    def record(self, rev: RevisionOp, dest: str) -> None:
        self._ids.record(rev.document_id, rev.table_name, dest, down_converted=False)

    def forget(self, rev: RevisionOp) -> None:
        self._ids.forget(rev.document_id)

    def diverged(self, rev: RevisionOp, why: str) -> Exception:
        return StatementError(f"revision {rev.document_id} v{rev.version}", why)


def _read_checkpoint(conn: sqlite3.Connection, ledger: str, strand_id: str) -> Checkpoint | None:
    row = conn.execute(
        "SELECT sequence_no, part, block_hash FROM settle_checkpoint "
        "WHERE ledger = ? AND strand_id = ?",
        (ledger, strand_id),
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(
        ledger=ledger, strand_id=strand_id, sequence_no=int(row[0]),
        block_hash=bytes(row[2]), part=None if row[1] is None else int(row[1]),
    )  # fmt: skip
