"""The embedded ledger: QLDB's PartiQL subset over SQLite, with its own hash-chained journal.

``EmbeddedLedger(path)`` opens (or creates) a ledger file. ``begin()`` starts a ``Transaction``;
``execute`` runs statements against the latest committed state plus the transaction's own
changes; ``commit`` validates optimistically (like QLDB: a transaction whose reads were changed by
a transaction that committed after the read fails with ``OccConflict``) and appends one block to
the journal: revisions hashed with the Ion hash, ``entriesHash`` the Merkle root of the entries,
``blockHash = dot(entriesHash, previousBlockHash)``. ``CommittedBlock.stream_records`` gives the
BLOCK_SUMMARY and REVISION_DETAILS records QLDB would stream for the block. Every committed
transaction appends a block, read-only ones included; DDL adds a system revision (a
``revisionSummaries`` entry without ``documentId``); the first block's ``previousBlockHash`` is
``SHA-256("qldb-settle genesis <strandId>")``.

Storage: one SQLite file (WAL) holding the current documents (Ion binary), every revision, the
tables and indexes, index entries and the blocks. Several threads and processes may use one file:
each thread has its own connection, a commit takes SQLite's write lock (``BEGIN IMMEDIATE``) and
validates against the blocks committed since each read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import sqlite3
import string
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path as FsPath
from typing import Any

from amazon.ion.core import IonType, Timestamp, TimestampPrecision
from amazon.ion.simple_types import IonPyDict, IonPyText

from journal.hashes import HASH_SIZE, dot, merkle_root
from journal.ion_binary import copy_value, decode, encode
from ledger.classify import walk
from ledger.errors import (
    LimitExceeded,
    OccConflict,
    ParseError,
    StatementError,
    TransactionClosed,
)
from ledger.evaluate import (
    EvalError,
    Scope,
    evaluate,
    insert_into,
    is_null,
    kind,
    remove_path,
    set_path,
    target_steps,
    text_of,
    truth,
)
from ledger.hashing import ion_hash, text_hash
from ledger.nodes import (
    MISSING,
    Call,
    Compare,
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Expr,
    Field,
    InsertIntoOp,
    InsertMany,
    InsertValue,
    Lit,
    Path,
    RemoveOp,
    Select,
    SetOp,
    Source,
    UndropTable,
    Update,
)
from ledger.nodes import And as AndExpr
from ledger.parser import MAX_STATEMENT_CHARS, parse

log = logging.getLogger(__name__)

MAX_DOCUMENTS_PER_TRANSACTION = 40
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_DOCUMENT_BYTES = 128 * 1024

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
_ID_LEN = 22
_CACHE_SIZE = 20_000

_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS ledger_blocks (
    seq INTEGER PRIMARY KEY, tx_id TEXT NOT NULL, tx_ms INTEGER NOT NULL, ts_ms INTEGER NOT NULL,
    block_hash BLOB NOT NULL, ddl INTEGER NOT NULL, summary TEXT NOT NULL);
"""


# --- small helpers -------------------------------------------------------------------------------


def _system_clock() -> datetime:
    return datetime.now(UTC)


def _ms(value: datetime) -> int:
    v = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = v - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@lru_cache(maxsize=1024)
def ion_time(ms: int) -> Timestamp:
    """An Ion timestamp, UTC, millisecond precision (as QLDB writes them)."""
    v = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return Timestamp(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC,
        precision=TimestampPrecision.SECOND, fractional_precision=3,
    )  # fmt: skip


def _base62(raw: bytes) -> str:
    n = int.from_bytes(raw, "big")
    out = []
    for _ in range(_ID_LEN):
        n, r = divmod(n, 62)
        out.append(_BASE62[r])
    return "".join(out)


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


def _short(text: str, limit: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _struct(**fields: Any) -> dict[str, Any]:
    return dict(fields)


def _result(**fields: str) -> Any:
    """A DML or DDL result struct (``{documentId: "..."}``) as simpleion values."""
    out = IonPyDict()
    out.ion_annotations = ()
    for k, v in fields.items():
        text = IonPyText(v)
        text.ion_type = IonType.STRING
        text.ion_annotations = ()
        out[k] = text
    return out


# --- the journal's blocks ------------------------------------------------------------------------


def _transaction_info(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``transactionInfo`` struct of a block from its stored record."""
    info: dict[str, Any] = {
        "statements": [
            {"statement": text, "startTime": ion_time(ms), "statementDigest": bytes.fromhex(d)}
            for text, ms, d in record["statements"]
        ]
    }
    if record["documents"]:
        info["documents"] = {
            doc_id: {"tableName": name, "tableId": table_id, "statements": list(statements)}
            for doc_id, name, table_id, statements in record["documents"]
        }
    return info


def _payload(
    record: Mapping[str, Any], strand_id: str, info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The BLOCK_SUMMARY payload (RECORDS.md field order) of a block from its stored record."""
    payload: dict[str, Any] = {
        "blockAddress": {"strandId": strand_id, "sequenceNo": int(record["seq"])},
        "transactionId": record["tx"],
        "blockTimestamp": ion_time(int(record["ts"])),
        "blockHash": bytes.fromhex(record["hash"]),
        "entriesHash": bytes.fromhex(record["entries_hash"]),
        "previousBlockHash": bytes.fromhex(record["prev"]),
        "entriesHashList": [bytes.fromhex(h) for h in record["entries"]],
        "transactionInfo": info if info is not None else _transaction_info(record),
    }
    if record["summaries"]:
        payload["revisionSummaries"] = [
            {"hash": bytes.fromhex(h)} if d is None else {"hash": bytes.fromhex(h), "documentId": d}
            for h, d in record["summaries"]
        ]
    return payload


@dataclass(frozen=True, slots=True, kw_only=True)
class Revision:
    """A user document revision committed in a block (``raw`` None: a deletion)."""

    table_name: str
    table_id: str
    document_id: str
    version: int
    raw: bytes | None
    hash: bytes
    tx_time_ms: int
    tx_id: str

    @property
    def data(self) -> Any:
        """The document after the revision (simpleion values), None for a deletion."""
        return None if self.raw is None else decode(self.raw)

    def metadata(self) -> dict[str, Any]:
        return _struct(
            id=self.document_id, version=self.version, txTime=ion_time(self.tx_time_ms),
            txId=self.tx_id,
        )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class CommittedBlock:
    """One block of the ledger's journal: its BLOCK_SUMMARY payload and its user revisions."""

    strand_id: str
    sequence_no: int
    transaction_id: str
    timestamp_ms: int
    block_hash: bytes
    entries_hash: bytes
    previous_block_hash: bytes
    payload: Any
    revisions: tuple[Revision, ...]

    @property
    def block_timestamp(self) -> Timestamp:
        return ion_time(self.timestamp_ms)

    @property
    def statements(self) -> list[str]:
        return [str(s["statement"]) for s in self.payload["transactionInfo"]["statements"]]

    def stream_records(self, stream_arn: str) -> list[Any]:
        """The records QLDB streams for this block: one BLOCK_SUMMARY, then one
        REVISION_DETAILS per user revision (RECORDS.md)."""
        address = _struct(strandId=self.strand_id, sequenceNo=self.sequence_no)
        out: list[Any] = [
            _struct(qldbStreamArn=stream_arn, recordType="BLOCK_SUMMARY", payload=self.payload)
        ]
        for r in self.revisions:
            revision = _struct(blockAddress=address, hash=r.hash)
            if r.data is not None:
                revision["data"] = r.data
            revision["metadata"] = r.metadata()
            out.append(
                _struct(
                    qldbStreamArn=stream_arn,
                    recordType="REVISION_DETAILS",
                    payload=_struct(
                        tableInfo=_struct(tableName=r.table_name, tableId=r.table_id),
                        revision=revision,
                    ),
                )
            )
        return out


# --- transactions --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Write:
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
class _UnitCache:
    """Committed tables, indexes and tip read inside one ``atomic()`` unit. The unit holds
    SQLite's write lock, so only its own commits change them: a commit moves the tip, one with
    DDL empties the tables and indexes, and so does a commit that fails."""

    tip: int | None = None
    tables: dict[str, str | None] = field(default_factory=dict)  # active name -> id
    indexes: dict[str, dict[str, str]] = field(default_factory=dict)  # table id -> field -> index


@dataclass(slots=True)
class _TableState:
    table_id: str
    name: str
    status: str  # ACTIVE | INACTIVE


@dataclass(slots=True)
class _IndexState:
    index_id: str
    table_id: str
    field: str
    status: str  # ONLINE | DELETED


@dataclass(slots=True)
class _Ddl:
    statement: int
    kind: str
    table_id: str
    index_id: str | None = None


@dataclass(slots=True)
class _Doc:
    doc_id: str
    version: int | None
    value: Any
    committed: bool


class Transaction:
    """One ledger transaction. ``execute`` runs a statement (nothing of a failing statement is
    applied); ``commit`` appends the block or raises ``OccConflict``; ``abort`` discards it."""

    def __init__(self, ledger: EmbeddedLedger, transaction_id: str) -> None:
        self._ledger = ledger
        self.id = transaction_id
        self._statements: list[tuple[str, int, bytes]] = []
        self._writes: dict[str, _Write] = {}
        self._reads: dict[str, int] = {}
        self._scans: dict[str, int] = {}
        self._preds: dict[tuple[str, str, str], int] = {}
        self._ddl_seen: int | None = None
        self._tables: dict[str, _TableState] = {}
        self._indexes: dict[str, _IndexState] = {}
        self._ddl: list[_Ddl] = []
        self._bytes = 0
        self._closed = False
        self._last_start_ms = 0

    # -- public API

    def execute(self, statement: str, *params: Any) -> list[Any]:
        """Run one statement; returns its result values (simpleion values). DML returns one
        ``{documentId: ...}`` per document written, like QLDB."""
        if self._closed:
            raise TransactionClosed(f"transaction {self.id} is already committed or aborted")
        led = self._ledger
        if led.enforce_limits and len(statement) > MAX_STATEMENT_CHARS:
            raise LimitExceeded(
                f"statement {_short(statement)!r}",
                f"is {len(statement)} characters, over QLDB's limit of {MAX_STATEMENT_CHARS}",
            )
        parsed = parse(statement)
        if parsed.parameters != len(params):
            raise StatementError(
                statement, f"takes {parsed.parameters} parameter(s), {len(params)} given"
            )
        now = led.clock()
        start_ms = max(_ms(now), self._last_start_ms + 1)
        conn = led._connection()
        tip = led._tip(conn)
        run = _Run(
            self, statement, list(params), now=now, tip=tip,
            index=len(self._statements),
        )  # fmt: skip
        try:
            result = run.statement(parsed.statement)
        except EvalError as exc:
            raise StatementError(statement, str(exc)) from None
        run.apply()
        self._last_start_ms = start_ms
        self._statements.append((statement, start_ms, run.digest()))
        if isinstance(parsed.statement, Select):
            return [copy_value(v) for v in result]  # copies: callers may change them
        return result

    def commit(self) -> CommittedBlock:
        """Validate and append this transaction's block; raises ``OccConflict`` when something
        it read was changed by a transaction committed after the read."""
        if self._closed:
            raise TransactionClosed(f"transaction {self.id} is already committed or aborted")
        self._closed = True
        return self._ledger._commit(self)

    def abort(self) -> None:
        self._closed = True

    def written(self) -> list[tuple[str, str, Any]]:
        """``(table name, document id, data or None)`` of each document this transaction wrote,
        in the order first written."""
        return [(w.table_name, doc_id, w.value) for doc_id, w in self._writes.items()]

    def written_hashes(self) -> list[tuple[str, str, bytes | None]]:
        """``(table name, document id, Ion hash of its new data or None)`` of each document this
        transaction wrote, in the order first written (compare content without decoding it)."""
        return [(w.table_name, doc_id, w.data_hash) for doc_id, w in self._writes.items()]

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_statements(self) -> bool:
        """Whether a statement ran (a transaction without any commits an empty block)."""
        return bool(self._statements)

    def created_tables(self) -> set[str]:
        """Names of the tables this transaction created (and did not drop again)."""
        return {t.name for t in self._tables.values() if t.status == "ACTIVE"}

    # -- table and index views (committed state merged with this transaction's DDL)

    def _table(self, conn: sqlite3.Connection, name: str, statement: str) -> _TableState:
        for t in self._tables.values():
            if t.name == name and t.status == "ACTIVE":
                return t
        table_id = self._ledger._active_table_id(conn, name)
        if table_id is not None:
            own = self._tables.get(table_id)
            if own is None or own.status == "ACTIVE":
                return _TableState(table_id, name, "ACTIVE")
        raise StatementError(statement, f"no active table named {name!r}")

    def _table_by_id(self, conn: sqlite3.Connection, table_id: str) -> _TableState | None:
        own = self._tables.get(table_id)
        if own is not None:
            return own
        row = conn.execute(
            "SELECT name, status FROM ledger_tables WHERE table_id = ?", (table_id,)
        ).fetchone()
        return None if row is None else _TableState(table_id, row[0], row[1])

    def _table_indexes(self, conn: sqlite3.Connection, table_id: str) -> dict[str, str]:
        """field -> index id of the table's online indexes."""
        out = self._ledger._online_indexes(conn, table_id)
        for ix in self._indexes.values():
            if ix.table_id != table_id:
                continue
            if ix.status == "ONLINE":
                out[ix.field] = ix.index_id
            elif out.get(ix.field) == ix.index_id:
                del out[ix.field]
        return out


class _Run:
    """One statement's execution: reads through the transaction, stages its changes, and applies
    them to the transaction only when the whole statement succeeded."""

    def __init__(
        self, tx: Transaction, text: str, params: list[Any], *, now: datetime, tip: int, index: int
    ) -> None:
        self.tx = tx
        self.text = text
        self.params = params
        self.now = now
        self.tip = tip
        self.index = index
        self.conn = tx._ledger._connection()
        self.staged: dict[str, _Write] = {}
        self.order: list[str] = []
        self.reads: dict[str, int] = {}
        self.scans: dict[str, int] = {}
        self.preds: dict[tuple[str, str, str], int] = {}
        self.tables: dict[str, _TableState] = {}
        self.indexes: dict[str, _IndexState] = {}
        self.ddl: list[_Ddl] = []
        self.touched_tables = False
        self.index_fields: dict[str, tuple[str, ...]] = {}
        # id -> Ion hash of the documents staged as they are (``INSERT INTO T ?`` stages the
        # parameter itself): the statement digest then does not hash that parameter again.
        self.hashed: dict[int, bytes] = {}

    def digest(self) -> bytes:
        """The statement digest: its text's Ion hash dot-folded with each parameter's."""
        digest = text_hash(self.text)
        for p in self.params:
            h = self.hashed.get(id(p))
            digest = dot(digest, ion_hash(p) if h is None else h)
        return digest

    def fail(self, reason: str) -> StatementError:
        return StatementError(self.text, reason)

    def scope(
        self, names: tuple[str, ...], value: Any, by: str | None, doc_id: str | None
    ) -> Scope:
        return Scope(names, value, by, doc_id, self.params, self.now)

    # -- applying

    def apply(self) -> None:
        tx = self.tx
        led = tx._ledger
        if led.enforce_limits:
            docs = set(tx._writes) | set(self.staged)
            if len(docs) > MAX_DOCUMENTS_PER_TRANSACTION:
                raise LimitExceeded(
                    f"transaction {tx.id}",
                    f"statement {_short(self.text)!r} would make it write {len(docs)} documents, "
                    f"over QLDB's limit of {MAX_DOCUMENTS_PER_TRANSACTION}",
                )
            size = tx._bytes + sum(len(w.data or b"") for w in self.staged.values())
            if size > MAX_TRANSACTION_BYTES:
                raise LimitExceeded(
                    f"transaction {tx.id}",
                    f"statement {_short(self.text)!r} would make it write {size} bytes, over "
                    f"QLDB's limit of {MAX_TRANSACTION_BYTES} (4 MB)",
                )
        for doc_id in self.order:
            w = self.staged[doc_id]
            old = tx._writes.get(doc_id)
            if old is not None:
                w.statements = [*old.statements, self.index]
                if old.base_version is None and w.data is None:
                    del tx._writes[doc_id]  # inserted and deleted in one transaction
                    continue
                w.base_version = old.base_version
            else:
                w.statements = [self.index]
            tx._writes[doc_id] = w
            tx._bytes += len(w.data or b"")
        for doc_id, seen in self.reads.items():
            tx._reads.setdefault(doc_id, seen)
        for table_id, seen in self.scans.items():
            tx._scans.setdefault(table_id, seen)
        for pred, seen in self.preds.items():
            tx._preds.setdefault(pred, seen)
        if self.touched_tables and tx._ddl_seen is None:
            tx._ddl_seen = self.tip
        tx._tables.update(self.tables)
        tx._indexes.update(self.indexes)
        tx._ddl.extend(self.ddl)

    def stage(self, doc_id: str, table: _TableState, base: int | None, value: Any) -> None:
        """Stage the new content of a document (``value`` None: delete it)."""
        data = data_hash = None
        if value is not None:
            data = encode(value)
            if self.tx._ledger.enforce_limits and len(data) > MAX_DOCUMENT_BYTES:
                raise LimitExceeded(
                    f"document {doc_id}",
                    f"statement {_short(self.text)!r} would make it {len(data)} bytes, over "
                    f"QLDB's limit of {MAX_DOCUMENT_BYTES} (128 KB)",
                )
            data_hash = ion_hash(value)  # now: ``value`` may be the caller's, mutable object
            self.hashed[id(value)] = data_hash
        keys: dict[str, str | None] = {}
        if value is not None:
            indexes = self.index_fields.get(table.table_id)
            if indexes is None:
                indexes = self.index_fields[table.table_id] = tuple(
                    self.tx._table_indexes(self.conn, table.table_id)
                )
            for fld in indexes:
                keys[fld] = index_key(value[fld]) if fld in value else None
        if doc_id not in self.staged:
            self.order.append(doc_id)
        self.staged[doc_id] = _Write(
            table.table_id, table.name, base, data, data_hash, index_keys=keys
        )

    # -- reading documents

    def current(self, doc_id: str) -> _Doc | None:
        """A document's current content as this statement sees it."""
        if doc_id in self.staged:
            w = self.staged[doc_id]
            return None if w.data is None else _Doc(doc_id, w.base_version, w.value, False)
        w2 = self.tx._writes.get(doc_id)
        if w2 is not None:
            return None if w2.data is None else _Doc(doc_id, w2.base_version, w2.value, False)
        row = self.conn.execute(
            "SELECT version, data FROM ledger_documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return _Doc(doc_id, row[0], self.tx._ledger._decoded(doc_id, row[0], row[1]), True)

    def documents(
        self, table: _TableState, source: Source, where: Expr | None
    ) -> Iterator[tuple[_Doc, Scope]]:
        """The documents of a user table that match ``where``, with their evaluation scope."""
        led = self.tx._ledger
        names = (source.alias,) if source.alias else (source.table,)
        plan = self._plan(table, source, where)
        overlay = {
            k: w for k, w in self.tx._writes.items() if w.table_id == table.table_id
        }  # fmt: skip
        overlay.update({k: w for k, w in self.staged.items() if w.table_id == table.table_id})
        rows: list[tuple[str, int, bytes]]
        if plan[0] == "id":
            doc_id = plan[1]
            self.reads.setdefault(doc_id, self.tip)
            rows = self.conn.execute(
                "SELECT id, version, data FROM ledger_documents WHERE id = ? AND table_id = ?",
                (doc_id, table.table_id),
            ).fetchall()
            overlay = {k: w for k, w in overlay.items() if k == doc_id}
        elif plan[0] == "index":
            _, fld, index_id, key = plan
            self.preds.setdefault((table.table_id, fld, key), self.tip)
            rows = self.conn.execute(
                "SELECT d.id, d.version, d.data FROM ledger_index_entries e "
                "JOIN ledger_documents d ON d.id = e.id WHERE e.index_id = ? AND e.key = ?",
                (index_id, key),
            ).fetchall()
        else:
            self.scans.setdefault(table.table_id, self.tip)
            rows = self.conn.execute(
                "SELECT id, version, data FROM ledger_documents WHERE table_id = ? ORDER BY id",
                (table.table_id,),
            ).fetchall()
        for doc_id, version, data in rows:
            if doc_id in overlay:
                continue
            if plan[0] != "scan":
                self.reads.setdefault(doc_id, self.tip)
            value = led._decoded(doc_id, version, data)
            scope = self.scope(names, value, source.by, doc_id)
            if where is None or truth(evaluate(where, scope)):
                yield _Doc(doc_id, version, value, True), scope
        for doc_id, w in overlay.items():
            if w.data is None:
                continue
            scope = self.scope(names, w.value, source.by, doc_id)
            if where is None or truth(evaluate(where, scope)):
                yield _Doc(doc_id, w.base_version, w.value, False), scope

    def _plan(self, table: _TableState, source: Source, where: Expr | None) -> tuple[Any, ...]:
        """How to find candidates: by document id (``BY`` variable = constant), by an index
        (indexed field = constant), or by scanning the table."""
        if where is None:
            return ("scan",)
        names = (source.alias,) if source.alias else (source.table,)
        indexes: dict[str, str] | None = None
        for conjunct in _conjuncts(where):
            if not isinstance(conjunct, Compare) or conjunct.op != "=":
                continue
            for left, right in ((conjunct.left, conjunct.right), (conjunct.right, conjunct.left)):
                if not isinstance(left, Path) or not _constant(right):
                    continue
                value = evaluate(right, self.scope((), MISSING, None, None))
                if source.by and left.root == source.by and not left.steps:
                    if kind(value) == "string":
                        return ("id", text_of(value))
                    continue
                fld = _top_field(left, names, source.by)
                if fld is None:
                    continue
                if indexes is None:
                    indexes = self.tx._table_indexes(self.conn, table.table_id)
                key = index_key(value)
                if fld in indexes and key is not None:
                    return ("index", fld, indexes[fld], key)
        return ("scan",)

    # -- statements

    def statement(self, s: Any) -> list[Any]:
        if isinstance(s, Select):
            return self.select(s)
        if isinstance(s, InsertValue | InsertMany):
            return self.insert(s)
        if isinstance(s, Update):
            return self.update(s)
        if isinstance(s, Delete):
            return self.delete(s)
        if isinstance(s, CreateTable | DropTable | UndropTable | CreateIndex | DropIndex):
            return self.ddl_statement(s)
        raise self.fail(f"{type(s).__name__} is not supported")

    def _user_table(self, source: Source) -> _TableState:
        if source.kind != "table":
            what = {
                "committed": f"the committed view _ql_committed_{source.table}",
                "history": f"history({source.table})",
                "user_tables": "information_schema.user_tables",
            }[source.kind]
            raise self.fail(f"DML is supported only on the user view, not on {what}")
        return self.tx._table(self.conn, source.table, self.text)

    def insert(self, s: InsertValue | InsertMany) -> list[Any]:
        table = self.tx._table(self.conn, s.table, self.text)
        expr = s.value if isinstance(s, InsertValue) else s.values
        for n in walk(expr):
            if isinstance(n, Path):
                raise self.fail(f"INSERT values cannot refer to {n.root!r}: there is no document")
        value = evaluate(expr, self.scope((), MISSING, None, None))
        if isinstance(s, InsertValue):
            docs = [value]
        elif kind(value) == "list" and not is_null(value):
            docs = list(value)
        else:
            docs = [value]
        out = []
        for d in docs:
            if kind(d) != "struct" or is_null(d):
                raise self.fail(f"a document must be a struct, not {kind(d)}")
            doc_id = self.tx._ledger._new_id()
            self.stage(doc_id, table, None, d)
            out.append(_result(documentId=doc_id))
        return out

    def update(self, s: Update) -> list[Any]:
        table = self._user_table(s.source)
        matched = list(self.documents(table, s.source, s.where))
        out = []
        for doc, scope in matched:
            if any(
                isinstance(op, RemoveOp) and op.path.root in scope.names and not op.path.steps
                for op in s.ops
            ):
                # REMOVE of the document itself deletes it (like DELETE).
                self.stage(doc.doc_id, table, doc.version, None)
                out.append(_result(documentId=doc.doc_id))
                continue
            new = copy_value(doc.value)  # a private, mutable copy
            for op in s.ops:
                if isinstance(op, SetOp):
                    for path, expr in op.assignments:
                        steps = target_steps(path, scope)
                        value = evaluate(expr, scope)
                        if value is MISSING:
                            remove_path(new, steps, scope)
                        else:
                            set_path(new, steps, value, scope)
                elif isinstance(op, RemoveOp):
                    remove_path(new, target_steps(op.path, scope), scope)
                elif isinstance(op, InsertIntoOp):
                    steps = (
                        op.path.steps
                        if op.path.root in scope.names
                        else (Field(op.path.root), *op.path.steps)
                    )
                    value = evaluate(op.value, scope)
                    at = evaluate(op.at, scope) if op.at is not None else MISSING
                    insert_into(new, steps, value, at, scope)
            self.stage(doc.doc_id, table, doc.version, new)
            out.append(_result(documentId=doc.doc_id))
        return out

    def delete(self, s: Delete) -> list[Any]:
        table = self._user_table(s.source)
        matched = list(self.documents(table, s.source, s.where))
        out = []
        for doc, _ in matched:
            self.stage(doc.doc_id, table, doc.version, None)
            out.append(_result(documentId=doc.doc_id))
        return out

    # -- DDL

    def _option(self, options: tuple[tuple[str, Expr], ...], name: str) -> Any:
        for k, v in options:
            if k.lower() == name:
                return evaluate(v, self.scope((), MISSING, None, None))
        return MISSING

    def ddl_statement(self, s: Any) -> list[Any]:
        tx = self.tx
        led = tx._ledger
        self.touched_tables = True
        if isinstance(s, CreateTable):
            for k, _ in s.options:
                if k.lower() != "aws_tags":
                    raise self.fail(f"CREATE TABLE option {k!r} is not supported (aws_tags is)")
            try:
                existing = tx._table(self.conn, s.table, self.text)
            except StatementError:
                existing = None
            if existing is not None or any(
                t.name == s.table and t.status == "ACTIVE" for t in self.tables.values()
            ):
                raise self.fail(f"a table named {s.table!r} already exists")
            table_id = led._new_id()
            self.tables[table_id] = _TableState(table_id, s.table, "ACTIVE")
            self.ddl.append(_Ddl(self.index, "create_table", table_id))
            return [_result(tableId=table_id)]
        if isinstance(s, DropTable):
            t = tx._table(self.conn, s.table, self.text)
            self.tables[t.table_id] = _TableState(t.table_id, t.name, "INACTIVE")
            self.ddl.append(_Ddl(self.index, "drop_table", t.table_id))
            return [_result(tableId=t.table_id)]
        if isinstance(s, UndropTable):
            found = tx._table_by_id(self.conn, s.table_id)
            if found is None:
                raise self.fail(f"no table with id {s.table_id!r}")
            if found.status == "ACTIVE":
                raise self.fail(f"table {found.name!r} ({s.table_id}) is not dropped")
            try:
                tx._table(self.conn, found.name, self.text)
            except StatementError:
                pass
            else:
                raise self.fail(f"an active table named {found.name!r} already exists")
            self.tables[s.table_id] = _TableState(s.table_id, found.name, "ACTIVE")
            self.ddl.append(_Ddl(self.index, "undrop_table", s.table_id))
            return [_result(tableId=s.table_id)]
        if isinstance(s, CreateIndex):
            t = tx._table(self.conn, s.table, self.text)
            if s.path.steps:
                raise self.fail("an index can only be on a top-level field, e.g. (GovId)")
            fld = s.path.root
            if fld in tx._table_indexes(self.conn, t.table_id):
                raise self.fail(f"table {s.table!r} already has an index on {fld!r}")
            index_id = led._new_id()
            self.indexes[index_id] = _IndexState(index_id, t.table_id, fld, "ONLINE")
            self.ddl.append(_Ddl(self.index, "create_index", t.table_id, index_id))
            return [_result(tableId=t.table_id, indexId=index_id)]
        if isinstance(s, DropIndex):
            t = tx._table(self.conn, s.table, self.text)
            purge = self._option(s.options, "purge")
            if kind(purge) != "bool" or not purge:
                raise self.fail("DROP INDEX needs WITH (purge = true)")
            current = tx._table_indexes(self.conn, t.table_id)
            fields = {i: f for f, i in current.items()}
            if s.index_id not in fields:
                raise self.fail(f"table {s.table!r} has no index with id {s.index_id!r}")
            self.indexes[s.index_id] = _IndexState(s.index_id, t.table_id, fields[s.index_id],
                                                   "DELETED")  # fmt: skip
            self.ddl.append(_Ddl(self.index, "drop_index", t.table_id, s.index_id))
            return [_result(tableId=t.table_id, indexId=s.index_id)]
        raise self.fail(f"{type(s).__name__} is not supported")

    # -- SELECT

    def select(self, s: Select) -> list[Any]:
        source = s.source
        rows: list[Scope]
        if source.kind == "table":
            table = self.tx._table(self.conn, source.table, self.text)
            rows = [scope for _, scope in self.documents(table, source, s.where)]
        elif source.kind in ("committed", "history"):
            rows = self._committed(source, s.where)
        else:
            rows = self._user_tables(source, s.where)
        out = []
        for scope in rows:
            if s.value is not None:
                v = evaluate(s.value, scope)
                if v is not MISSING:
                    out.append(v)
            elif s.items is None:
                out.append(scope.value)
            else:
                item: dict[str, Any] = {}
                for i, it in enumerate(s.items):
                    v = evaluate(it.expr, scope)
                    if v is MISSING:
                        continue
                    item[it.alias or _item_name(it.expr, scope, i)] = v
                out.append(item)
        return out

    def _committed(self, source: Source, where: Expr | None) -> list[Scope]:
        """Rows of ``_ql_committed_T`` (current revisions) or ``history(T)`` (all revisions):
        ``{blockAddress, hash, data, metadata}`` of committed revisions only."""
        table = self.tx._table(self.conn, source.table, self.text)
        default = f"_ql_committed_{source.table}" if source.kind == "committed" else "history"
        names = (source.alias,) if source.alias else (default,)
        doc_id = _metadata_id(where, names)
        led = self.tx._ledger
        if source.kind == "committed":
            sql = (
                "SELECT r.id, r.version, d.data, r.hash, r.block_seq, b.tx_id, b.tx_ms "
                "FROM ledger_documents d JOIN ledger_revisions r ON r.id = d.id AND "
                "r.version = d.version JOIN ledger_blocks b ON b.seq = r.block_seq "
                "WHERE d.table_id = ?"
            )
        else:
            sql = (
                "SELECT r.id, r.version, r.data, r.hash, r.block_seq, b.tx_id, b.tx_ms "
                "FROM ledger_revisions r JOIN ledger_blocks b ON b.seq = r.block_seq "
                "WHERE r.table_id = ?"
            )
        args: list[Any] = [table.table_id]
        if doc_id is not None:
            sql += " AND r.id = ?"
            args.append(doc_id)
            self.reads.setdefault(doc_id, self.tip)
        else:
            self.scans.setdefault(table.table_id, self.tip)
        if source.kind == "history":
            bounds = [evaluate(a, self.scope((), MISSING, None, None)) for a in source.args]
            if len(bounds) > 0 and kind(bounds[0]) == "timestamp":
                sql += " AND b.tx_ms >= ?"
                args.append(_ms(bounds[0]))
            if len(bounds) > 1 and kind(bounds[1]) == "timestamp":
                sql += " AND b.tx_ms <= ?"
                args.append(_ms(bounds[1]))
            sql += " ORDER BY r.block_seq, r.id"
        else:
            sql += " ORDER BY r.id"
        out = []
        for rid, version, data, h, seq, tx_id, tx_ms in self.conn.execute(sql, args):
            row = _struct(
                blockAddress=_struct(strandId=led.strand_id, sequenceNo=seq), hash=bytes(h)
            )
            if data is not None:
                row["data"] = led._decoded(rid, version, data)
            row["metadata"] = _struct(id=rid, version=version, txTime=ion_time(tx_ms), txId=tx_id)
            scope = self.scope(names, row, None, rid)
            if where is None or truth(evaluate(where, scope)):
                out.append(scope)
        return out

    def _user_tables(self, source: Source, where: Expr | None) -> list[Scope]:
        names = (source.alias,) if source.alias else ("user_tables",)
        tables: dict[str, _TableState] = {
            tid: _TableState(tid, name, status)
            for tid, name, status in self.conn.execute(
                "SELECT table_id, name, status FROM ledger_tables ORDER BY name, table_id"
            )
        }
        tables.update(self.tx._tables)
        out = []
        for t in tables.values():
            indexes = [
                _struct(expr=f"[{f}]", indexId=i, status="ONLINE")
                for f, i in sorted(self.tx._table_indexes(self.conn, t.table_id).items())
            ]
            row = _struct(name=t.name, tableId=t.table_id, status=t.status, indexes=indexes)
            scope = self.scope(names, row, None, None)
            if where is None or truth(evaluate(where, scope)):
                out.append(scope)
        return out


def _conjuncts(e: Expr) -> Iterator[Expr]:
    if isinstance(e, AndExpr):
        yield from _conjuncts(e.left)
        yield from _conjuncts(e.right)
    else:
        yield e


def _constant(e: Expr) -> bool:
    """True when ``e`` reads no document and calls no function (its value is known up front)."""
    return not any(isinstance(n, Path | Call) for n in walk(e))


def _top_field(path: Path, names: tuple[str, ...], by: str | None) -> str | None:
    if path.root in names:
        if len(path.steps) == 1 and isinstance(path.steps[0], Field):
            return path.steps[0].name
        return None
    if path.steps or path.root == by:
        return None
    return path.root


def _metadata_id(where: Expr | None, names: tuple[str, ...]) -> str | None:
    """The document id a committed-view query asks for (``x.metadata.id = 'id'``), if any."""
    if where is None:
        return None
    for c in _conjuncts(where):
        if not isinstance(c, Compare) or c.op != "=":
            continue
        for left, right in ((c.left, c.right), (c.right, c.left)):
            if (
                isinstance(left, Path)
                and isinstance(right, Lit)
                and isinstance(right.value, str)
                and left.root in names
                and [getattr(s, "name", None) for s in left.steps] == ["metadata", "id"]
            ):
                return right.value
    return None


def _item_name(e: Expr, scope: Scope, i: int) -> str:
    if isinstance(e, Path):
        if e.steps and isinstance(e.steps[-1], Field):
            return e.steps[-1].name
        if not e.steps:
            return e.root
    return f"_{i + 1}"


# --- the ledger ----------------------------------------------------------------------------------


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
            conn.executescript(_SCHEMA)
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
        cache: _UnitCache | None = getattr(self._local, "cache", None)
        if cache is not None and cache.tip is not None:
            return cache.tip
        row = conn.execute("SELECT max(seq) FROM ledger_blocks").fetchone()
        tip = -1 if row[0] is None else int(row[0])
        if cache is not None:
            cache.tip = tip
        return tip

    def _active_table_id(self, conn: sqlite3.Connection, name: str) -> str | None:
        """The id of the committed active table named ``name`` (None: there is none)."""
        cache: _UnitCache | None = getattr(self._local, "cache", None)
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
        cache: _UnitCache | None = getattr(self._local, "cache", None)
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
        payload = _payload(record, self.strand_id)
        tx_id = str(record["tx"])
        tables = {doc_id: name for doc_id, name, _, _ in record["documents"]}
        rows = {
            rid: (version, data, h, table_id)
            for rid, version, data, h, table_id in conn.execute(
                "SELECT id, version, data, hash, table_id FROM ledger_revisions "
                "WHERE block_seq = ?",
                (seq,),
            )
        }
        revisions = []
        for _, rid in record["summaries"]:
            if rid is None:
                continue
            version, data, h, table_id = rows[rid]
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
        self._local.cache = _UnitCache()
        try:
            yield conn
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

    def _commit(self, tx: Transaction) -> CommittedBlock:
        conn = self._connection()
        unit = self._in_unit()
        with self._lock:
            if unit:
                conn.execute("SAVEPOINT ledger_commit")
            else:
                conn.execute("BEGIN IMMEDIATE")
            cache: _UnitCache | None = getattr(self._local, "cache", None)
            try:
                block = self._commit_in(conn, tx)
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
        for w, r in zip(tx._writes.values(), block.revisions, strict=True):
            if w.decoded is not None:
                self._cache[(r.document_id, r.version)] = w.decoded
        return block

    def _validate(self, conn: sqlite3.Connection, tx: Transaction, tip: int) -> None:
        marks = [*tx._reads.values(), *tx._scans.values(), *tx._preds.values()]
        if tx._ddl_seen is not None:
            marks.append(tx._ddl_seen)
        if not marks:
            return
        low = min(marks)
        if low >= tip:
            return
        if tx._statements:
            row = conn.execute(
                "SELECT min(seq) FROM ledger_blocks WHERE seq > ? AND ddl = 1", (low,)
            ).fetchone()
            if row[0] is not None:
                raise OccConflict(tx.id, f"block {row[0]} changed tables or indexes meanwhile")
        preds_by_table: dict[str, list[tuple[str, str, int]]] = {}
        for (table_id, fld, key), seen in tx._preds.items():
            preds_by_table.setdefault(table_id, []).append((fld, key, seen))
        for rid, version, table_id, seq, data in conn.execute(
            "SELECT id, version, table_id, block_seq, data FROM ledger_revisions "
            "WHERE block_seq > ?",
            (low,),
        ).fetchall():
            read_at = tx._reads.get(rid)
            if read_at is not None and seq > read_at:
                raise OccConflict(tx.id, f"document {rid} was changed by block {seq}")
            scanned_at = tx._scans.get(table_id)
            if scanned_at is not None and seq > scanned_at:
                raise OccConflict(
                    tx.id, f"a table it scanned was changed by block {seq} (document {rid})"
                )
            for fld, key, seen in preds_by_table.get(table_id, ()):
                if seq <= seen:
                    continue
                values = [data]
                if version > 0:
                    prev = conn.execute(
                        "SELECT data FROM ledger_revisions WHERE id = ? AND version = ?",
                        (rid, version - 1),
                    ).fetchone()
                    if prev is not None:
                        values.append(prev[0])
                for raw in values:
                    if raw is None:
                        continue
                    doc = decode(raw)
                    if kind(doc) == "struct" and fld in doc and index_key(doc[fld]) == key:
                        raise OccConflict(
                            tx.id, f"document {rid} with {fld} it read was changed by block {seq}"
                        )

    def _commit_in(self, conn: sqlite3.Connection, tx: Transaction) -> CommittedBlock:
        tip = self._tip(conn)
        self._validate(conn, tx, tip)
        for doc_id, w in tx._writes.items():
            if w.base_version is None:
                continue
            row = conn.execute(
                "SELECT version FROM ledger_documents WHERE id = ?", (doc_id,)
            ).fetchone()
            if row is None or row[0] != w.base_version:
                raise OccConflict(tx.id, f"document {doc_id} was changed meanwhile")
        seq = tip + 1
        previous = conn.execute(
            "SELECT block_hash, ts_ms FROM ledger_blocks WHERE seq = ?", (tip,)
        ).fetchone()
        if previous is None:
            prev_hash = hashlib.sha256(f"qldb-settle genesis {self.strand_id}".encode()).digest()
            prev_ms = 0
        else:
            prev_hash, prev_ms = bytes(previous[0]), int(previous[1])
        last_start = max((ms for _, ms, _ in tx._statements), default=0)
        tx_ms = max(_ms(self.clock()), last_start + 1, prev_ms)
        block_ms = tx_ms + 1

        # user revisions
        revisions: list[Revision] = []
        table_names: dict[str, str] = {}
        for doc_id, w in tx._writes.items():
            version = 0 if w.base_version is None else w.base_version + 1
            meta = _struct(id=doc_id, version=version, txTime=ion_time(tx_ms), txId=tx.id)
            meta_hash = ion_hash(meta)
            h = meta_hash if w.data_hash is None else dot(w.data_hash, meta_hash)
            revisions.append(
                Revision(
                    table_name=w.table_name,
                    table_id=w.table_id,
                    document_id=doc_id,
                    version=version,
                    raw=w.data,
                    hash=h,
                    tx_time_ms=tx_ms,
                    tx_id=tx.id,
                )
            )
            table_names[w.table_id] = w.table_name
        # system revisions: one per DDL statement (the information schema entry it changed)
        system: list[bytes] = []
        for d in tx._ddl:
            t = tx._tables.get(d.table_id) or tx._table_by_id(conn, d.table_id)
            entry = _struct(
                kind=d.kind, tableId=d.table_id, tableName=t.name if t else "",
                indexId=d.index_id or "", txId=tx.id, statement=d.statement,
            )  # fmt: skip
            system.append(ion_hash(entry))

        record: dict[str, Any] = {
            "seq": seq, "tx": tx.id, "ts": block_ms, "tx_ms": tx_ms, "prev": prev_hash.hex(),
            "statements": [[text, ms, digest.hex()] for text, ms, digest in tx._statements],
            "documents": [
                [r.document_id, r.table_name, r.table_id, tx._writes[r.document_id].statements]
                for r in revisions
            ],
            "summaries": [[r.hash.hex(), r.document_id] for r in revisions]
            + [[h.hex(), None] for h in system],
        }  # fmt: skip
        info = _transaction_info(record)
        entries = [ion_hash(info), *(r.hash for r in revisions), *system]
        entries_hash = merkle_root(entries)
        block_hash = dot(entries_hash, prev_hash)
        assert len(block_hash) == HASH_SIZE
        record["entries"] = [h.hex() for h in entries]
        record["hash"] = block_hash.hex()
        record["entries_hash"] = entries_hash.hex()
        payload = _payload(record, self.strand_id, info)

        # DDL
        cache: _UnitCache | None = getattr(self._local, "cache", None)
        if tx._ddl and cache is not None:
            cache.tables.clear()
            cache.indexes.clear()
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
                    conn.execute(
                        "DELETE FROM ledger_index_entries WHERE index_id = ?", (ix.index_id,)
                    )
        # documents
        indexes_of: dict[str, dict[str, str]] = {}
        for r in revisions:
            w = tx._writes[r.document_id]
            try:
                conn.execute(
                    "INSERT INTO ledger_revisions (id, version, table_id, block_seq, hash, data) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (r.document_id, r.version, r.table_id, seq, r.hash, w.data),
                )
            except sqlite3.IntegrityError:
                raise OccConflict(
                    tx.id, f"document {r.document_id} version {r.version} exists already"
                ) from None
            if w.base_version is not None:
                conn.execute("DELETE FROM ledger_index_entries WHERE id = ?", (r.document_id,))
            if w.data is None:
                conn.execute("DELETE FROM ledger_documents WHERE id = ?", (r.document_id,))
                continue
            conn.execute(
                "INSERT INTO ledger_documents (id, table_id, version, block_seq, data) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET version = "
                "excluded.version, block_seq = excluded.block_seq, data = excluded.data",
                (r.document_id, r.table_id, r.version, seq, w.data),
            )
            idx = indexes_of.get(r.table_id)
            if idx is None:
                idx = indexes_of[r.table_id] = self._online_indexes(conn, r.table_id)
            for fld, index_id in idx.items():
                key = w.index_keys.get(fld)
                if key is not None:
                    conn.execute(
                        "INSERT OR IGNORE INTO ledger_index_entries (index_id, key, id) "
                        "VALUES (?, ?, ?)",
                        (index_id, key, r.document_id),
                    )
        for d in tx._ddl:
            if d.kind == "create_index":
                assert d.index_id is not None
                ix = tx._indexes[d.index_id]
                if ix.status != "ONLINE":
                    continue
                for doc_id, version, data in conn.execute(
                    "SELECT id, version, data FROM ledger_documents WHERE table_id = ?",
                    (ix.table_id,),
                ).fetchall():
                    self._index_document(
                        conn, {ix.field: ix.index_id}, doc_id, self._decoded(doc_id, version, data)
                    )
        conn.execute(
            "INSERT INTO ledger_blocks (seq, tx_id, tx_ms, ts_ms, block_hash, ddl, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                seq,
                tx.id,
                tx_ms,
                block_ms,
                block_hash,
                1 if tx._ddl else 0,
                json.dumps(record, separators=(",", ":")),
            ),
        )
        conn.execute(
            "UPDATE ledger_meta SET value = ? WHERE key = 'id_counter' AND CAST(value AS INTEGER) "
            "< ?",
            (str(self._counter), self._counter),
        )
        return CommittedBlock(
            strand_id=self.strand_id, sequence_no=seq, transaction_id=tx.id,
            timestamp_ms=block_ms, block_hash=block_hash, entries_hash=entries_hash,
            previous_block_hash=prev_hash, payload=payload, revisions=tuple(revisions),
        )  # fmt: skip

    def _index_document(
        self, conn: sqlite3.Connection, indexes: Mapping[str, str], doc_id: str, value: Any
    ) -> None:
        for fld, index_id in indexes.items():
            if kind(value) != "struct" or fld not in value:
                continue
            key = index_key(value[fld])
            if key is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO ledger_index_entries (index_id, key, id) "
                    "VALUES (?, ?, ?)",
                    (index_id, key, doc_id),
                )


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
