"""Ledger transactions: statements run against the committed state plus the transaction's
own changes; ``commit`` hands the transaction to the ledger, which validates and appends its block.

Changes when the transaction API or its bookkeeping (reads, scans, predicates seen, for the
optimistic check in ``ledger.commit``) does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from journal.ion_binary import copy_value
from ledger.blocks import CommittedBlock, epoch_ms
from ledger.changes import Ddl, Write, short
from ledger.errors import LimitExceeded, StatementError, TransactionClosed
from ledger.evaluate import EvalError
from ledger.execute import StatementRun
from ledger.nodes import Select
from ledger.parser import MAX_STATEMENT_CHARS, parse
from ledger.plan_cache import bound_insert
from ledger.storage import IndexState, TableState

if TYPE_CHECKING:
    from ledger.engine import EmbeddedLedger
    from ledger.redaction import Redaction


class Transaction:
    """One ledger transaction. ``execute`` runs a statement (nothing of a failing statement is
    applied); ``commit`` appends the block or raises ``OccConflict``; ``abort`` discards it."""

    def __init__(self, ledger: EmbeddedLedger, transaction_id: str) -> None:
        self._ledger = ledger
        self.id = transaction_id
        self._statements: list[tuple[str, int, bytes]] = []
        self._writes: dict[str, Write] = {}
        self._reads: dict[str, int] = {}
        self._scans: dict[str, int] = {}
        self._preds: dict[tuple[str, str, str], int] = {}
        self._ddl_seen: int | None = None
        self._tables: dict[str, TableState] = {}
        self._indexes: dict[str, IndexState] = {}
        self._ddl: list[Ddl] = []
        self._redactions: list[Redaction] = []  # EXEC redact_revision (ledger.redaction)
        self._bytes = 0
        self._closed = False
        self._last_start_ms = 0

    # -- public API

    def execute(
        self, statement: str, *params: Any, param_hashes: Sequence[bytes | None] = ()
    ) -> list[Any]:
        """Run one statement; returns its result values (simpleion values). DML returns one
        ``{documentId: ...}`` per document written, like QLDB.

        ``param_hashes``: the Ion hash of each parameter (None: unknown), when the caller has
        already computed it and proved it (the settler's verification hashed the revision data
        it replays: ``dot(data hash, metadata hash)`` equals the source's revision hash). A
        parameter stored as it is (``INSERT INTO T ?``) then is not hashed a second time, for
        its revision hash or for the statement digest; the stored hashes stay checkable from
        the stored Ion (``verify --chain``)."""
        if self._closed:
            raise TransactionClosed(f"transaction {self.id} is already committed or aborted")
        led = self._ledger
        if led.enforce_limits and len(statement) > MAX_STATEMENT_CHARS:
            raise LimitExceeded(
                f"statement {short(statement)!r}",
                f"is {len(statement)} characters, over QLDB's limit of {MAX_STATEMENT_CHARS}",
            )
        # An INSERT of literals binds them into its shape's prepared plan (``ledger.plan_cache``)
        # instead of rebuilding the statement's tree; anything else is parsed.
        bound = None if params else bound_insert(statement)
        parsed = None if bound is not None else parse(statement)
        if parsed is not None and parsed.parameters != len(params):
            raise StatementError(
                statement, f"takes {parsed.parameters} parameter(s), {len(params)} given"
            )
        now = led.clock()
        start_ms = max(epoch_ms(now), self._last_start_ms + 1)
        conn = led._connection()
        tip = led._tip(conn)
        run = StatementRun(
            self, statement, list(params), now=now, tip=tip,
            index=len(self._statements),
        )  # fmt: skip
        for p, h in zip(params, param_hashes, strict=False):
            if h is not None:
                run.hashed.put(p, h)
        try:
            if parsed is None:
                assert bound is not None
                result = run.insert_bound(bound)
            else:
                result = run.statement(parsed.statement)
        except EvalError as exc:
            raise StatementError(statement, str(exc)) from None
        run.apply()
        self._last_start_ms = start_ms
        self._statements.append((statement, start_ms, run.digest()))
        if parsed is not None and isinstance(parsed.statement, Select):
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

    def _table(self, conn: sqlite3.Connection, name: str, statement: str) -> TableState:
        for t in self._tables.values():
            if t.name == name and t.status == "ACTIVE":
                return t
        table_id = self._ledger._active_table_id(conn, name)
        if table_id is not None:
            own = self._tables.get(table_id)
            if own is None or own.status == "ACTIVE":
                return TableState(table_id, name, "ACTIVE")
        raise StatementError(statement, f"no active table named {name!r}")

    def _table_by_id(self, conn: sqlite3.Connection, table_id: str) -> TableState | None:
        own = self._tables.get(table_id)
        if own is not None:
            return own
        row = conn.execute(
            "SELECT name, status FROM ledger_tables WHERE table_id = ?", (table_id,)
        ).fetchone()
        return None if row is None else TableState(table_id, row[0], row[1])

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
