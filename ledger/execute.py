"""Statement execution: one statement run against the transaction's view of the ledger.

``StatementRun`` evaluates a parsed statement (SELECT over the user, committed and history views
and the information schema; INSERT, UPDATE, DELETE; DDL), reads documents through the
transaction's overlay, records what it read for the optimistic check, and stages its changes;
``apply`` hands them to the transaction only when the whole statement succeeded (QLDB's limits
checked there). How candidates are found is ``ledger.plan``'s; how rows are stored,
``ledger.storage``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from amazon.ion.core import IonType
from amazon.ion.simple_types import IonPyDict, IonPyText

from journal.hashes import dot
from journal.ion_binary import copy_value, encode
from ledger.blocks import epoch_ms, ion_struct, ion_time
from ledger.changes import (
    MAX_DOCUMENT_BYTES,
    MAX_DOCUMENTS_PER_TRANSACTION,
    MAX_TRANSACTION_BYTES,
    Ddl,
    Doc,
    Write,
    short,
)
from ledger.errors import LimitExceeded, StatementError
from ledger.evaluate import (
    Scope,
    evaluate,
    insert_into,
    is_null,
    kind,
    remove_path,
    set_path,
    target_steps,
    truth,
)
from ledger.hashing import ion_hash, text_hash
from ledger.nodes import (
    MISSING,
    CreateIndex,
    CreateTable,
    Delete,
    DropIndex,
    DropTable,
    Exec,
    Expr,
    Field,
    InsertIntoOp,
    InsertMany,
    InsertValue,
    Lit,
    Param,
    Path,
    RemoveOp,
    Select,
    SetOp,
    Source,
    UndropTable,
    Update,
    walk,
)
from ledger.plan import lookup_plan, metadata_id
from ledger.plan_cache import BoundInsert
from ledger.redaction import redact_revision
from ledger.select import join_rows, project, resolve_subqueries
from ledger.storage import IndexState, TableState, index_key

if TYPE_CHECKING:
    from ledger.transaction import Transaction


_NODE_FIELDS: dict[type, tuple[str, ...]] = {}


def _refers_to_a_document(node: Any) -> bool:
    """Whether a ``Path`` is anywhere in the tree (what ``walk`` would find, without a generator
    and a ``dataclasses.fields`` call per node: an INSERT's value is checked on every insert).
    Literals and parameters are leaves: a literal's Ion value is not a node."""
    stack = [node]
    pop, push, extend = stack.pop, stack.append, stack.extend
    fields = _NODE_FIELDS
    while stack:
        n = pop()
        cls = type(n)
        if cls is Lit or cls is Param:
            continue
        if cls is tuple:
            extend(n)
            continue
        if isinstance(n, Path):
            return True
        names = fields.get(cls)
        if names is None:
            is_node = dataclasses.is_dataclass(n) and not isinstance(n, type)
            names = fields[cls] = tuple(f.name for f in dataclasses.fields(n)) if is_node else ()
        for name in names:
            push(getattr(n, name))
    return False


def result_struct(**fields: str) -> Any:
    """A DML or DDL result struct (``{documentId: "..."}``) as simpleion values."""
    out = IonPyDict()
    out.ion_annotations = ()
    for k, v in fields.items():
        text = IonPyText(v)
        text.ion_type = IonType.STRING
        text.ion_annotations = ()
        out[k] = text
    return out


class KnownHashes:
    """Ion hashes of values by identity, each value held while it is known: an ``id()`` is
    unique only among objects alive at once, so a map by bare ``id()`` would hand a freed
    document's hash to the next object allocated at its address (an UPDATE staging several
    documents built one after the other did exactly that: the wrong data hash, now and then)."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Any, bytes]] = {}

    def get(self, value: Any) -> bytes | None:
        known = self._by_id.get(id(value))
        return known[1] if known is not None and known[0] is value else None

    def put(self, value: Any, digest: bytes) -> None:
        self._by_id[id(value)] = (value, digest)


class StatementRun:
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
        self.staged: dict[str, Write] = {}
        self.order: list[str] = []
        self.reads: dict[str, int] = {}
        self.scans: dict[str, int] = {}
        self.preds: dict[tuple[str, str, str], int] = {}
        self.tables: dict[str, TableState] = {}
        self.indexes: dict[str, IndexState] = {}
        self.ddl: list[Ddl] = []
        self.touched_tables = False
        self.index_fields: dict[str, tuple[str, ...]] = {}
        # The Ion hash of values already hashed: the parameters whose proved hash the caller
        # passed, and the documents staged as they are (``INSERT INTO T ?`` stages the parameter
        # itself, so the statement digest does not hash it again).
        self.hashed = KnownHashes()

    def digest(self) -> bytes:
        """The statement digest: its text's Ion hash dot-folded with each parameter's."""
        digest = text_hash(self.text)
        for p in self.params:
            h = self.hashed.get(p)
            digest = dot(digest, ion_hash(p) if h is None else h)
        return digest

    def fail(self, reason: str) -> StatementError:
        return StatementError(self.text, reason)

    def scope(
        self, names: tuple[str, ...], value: Any, by: str | None, doc_id: str | None
    ) -> Scope:
        return Scope(names, value, by, doc_id, self.params, self.now, txid=self.tx.id)

    # -- applying

    def apply(self) -> None:
        tx = self.tx
        led = tx._ledger
        if led.enforce_limits:
            docs = set(tx._writes) | set(self.staged)
            if len(docs) > MAX_DOCUMENTS_PER_TRANSACTION:
                raise LimitExceeded(
                    f"transaction {tx.id}",
                    f"statement {short(self.text)!r} would make it write {len(docs)} documents, "
                    f"over QLDB's limit of {MAX_DOCUMENTS_PER_TRANSACTION}",
                )
            size = tx._bytes + sum(len(w.data or b"") for w in self.staged.values())
            if size > MAX_TRANSACTION_BYTES:
                raise LimitExceeded(
                    f"transaction {tx.id}",
                    f"statement {short(self.text)!r} would make it write {size} bytes, over "
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

    def stage(self, doc_id: str, table: TableState, base: int | None, value: Any) -> None:
        """Stage the new content of a document (``value`` None: delete it)."""
        data = data_hash = None
        if value is not None:
            data = encode(value)
            if self.tx._ledger.enforce_limits and len(data) > MAX_DOCUMENT_BYTES:
                raise LimitExceeded(
                    f"document {doc_id}",
                    f"statement {short(self.text)!r} would make it {len(data)} bytes, over "
                    f"QLDB's limit of {MAX_DOCUMENT_BYTES} (128 KB)",
                )
            # Now: ``value`` may be the caller's, mutable object. A parameter whose proved hash
            # the caller passed (``Transaction.execute(param_hashes=...)``) is not hashed again.
            data_hash = self.hashed.get(value) or ion_hash(value)
            self.hashed.put(value, data_hash)
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
        self.staged[doc_id] = Write(
            table.table_id, table.name, base, data, data_hash, index_keys=keys
        )

    # -- reading documents

    def current(self, doc_id: str) -> Doc | None:
        """A document's current content as this statement sees it."""
        if doc_id in self.staged:
            w = self.staged[doc_id]
            return None if w.data is None else Doc(doc_id, w.base_version, w.value, False)
        w2 = self.tx._writes.get(doc_id)
        if w2 is not None:
            return None if w2.data is None else Doc(doc_id, w2.base_version, w2.value, False)
        row = self.conn.execute(
            "SELECT version, data FROM ledger_documents WHERE id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        return Doc(doc_id, row[0], self.tx._ledger._decoded(doc_id, row[0], row[1]), True)

    def documents(
        self, table: TableState, source: Source, where: Expr | None
    ) -> Iterator[tuple[Doc, Scope]]:
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
                yield Doc(doc_id, version, value, True), scope
        for doc_id, w in overlay.items():
            if w.data is None:
                continue
            scope = self.scope(names, w.value, source.by, doc_id)
            if where is None or truth(evaluate(where, scope)):
                yield Doc(doc_id, w.base_version, w.value, False), scope

    def _plan(self, table: TableState, source: Source, where: Expr | None) -> tuple[Any, ...]:
        return lookup_plan(
            source,
            where,
            lambda e: evaluate(e, self.scope((), MISSING, None, None)),
            lambda: self.tx._table_indexes(self.conn, table.table_id),
        )

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
        if isinstance(s, Exec):
            return redact_revision(self, s)
        raise self.fail(f"{type(s).__name__} is not supported")

    def _user_table(self, source: Source) -> TableState:
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
        if _refers_to_a_document(expr):
            for n in walk(expr):
                if isinstance(n, Path):
                    raise self.fail(
                        f"INSERT values cannot refer to {n.root!r}: there is no document"
                    )
        value = evaluate(expr, self.scope((), MISSING, None, None))
        return self.insert_documents(table, value, many=not isinstance(s, InsertValue))

    def insert_bound(self, bound: BoundInsert) -> list[Any]:
        """An INSERT bound to its prepared plan (``ledger.plan_cache``): its document value is
        the one ``insert`` would evaluate."""
        table = self.tx._table(self.conn, bound.table, self.text)
        return self.insert_documents(table, bound.value, many=bound.many)

    def insert_documents(self, table: TableState, value: Any, *, many: bool) -> list[Any]:
        """Stage the documents of an INSERT's value (``many``: each element of a list or bag
        is one)."""
        if not many:
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
            out.append(result_struct(documentId=doc_id))
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
                out.append(result_struct(documentId=doc.doc_id))
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
            out.append(result_struct(documentId=doc.doc_id))
        return out

    def delete(self, s: Delete) -> list[Any]:
        table = self._user_table(s.source)
        matched = list(self.documents(table, s.source, s.where))
        out = []
        for doc, _ in matched:
            self.stage(doc.doc_id, table, doc.version, None)
            out.append(result_struct(documentId=doc.doc_id))
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
            self.tables[table_id] = TableState(table_id, s.table, "ACTIVE")
            self.ddl.append(Ddl(self.index, "create_table", table_id))
            return [result_struct(tableId=table_id)]
        if isinstance(s, DropTable):
            t = tx._table(self.conn, s.table, self.text)
            self.tables[t.table_id] = TableState(t.table_id, t.name, "INACTIVE")
            self.ddl.append(Ddl(self.index, "drop_table", t.table_id))
            return [result_struct(tableId=t.table_id)]
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
            self.tables[s.table_id] = TableState(s.table_id, found.name, "ACTIVE")
            self.ddl.append(Ddl(self.index, "undrop_table", s.table_id))
            return [result_struct(tableId=s.table_id)]
        if isinstance(s, CreateIndex):
            t = tx._table(self.conn, s.table, self.text)
            if s.path.steps:
                raise self.fail("an index can only be on a top-level field, e.g. (GovId)")
            fld = s.path.root
            if fld in tx._table_indexes(self.conn, t.table_id):
                raise self.fail(f"table {s.table!r} already has an index on {fld!r}")
            index_id = led._new_id()
            self.indexes[index_id] = IndexState(index_id, t.table_id, fld, "ONLINE")
            self.ddl.append(Ddl(self.index, "create_index", t.table_id, index_id))
            return [result_struct(tableId=t.table_id, indexId=index_id)]
        if isinstance(s, DropIndex):
            t = tx._table(self.conn, s.table, self.text)
            purge = self._option(s.options, "purge")
            if kind(purge) != "bool" or not purge:
                raise self.fail("DROP INDEX needs WITH (purge = true)")
            current = tx._table_indexes(self.conn, t.table_id)
            fields = {i: f for f, i in current.items()}
            if s.index_id not in fields:
                raise self.fail(f"table {s.table!r} has no index with id {s.index_id!r}")
            self.indexes[s.index_id] = IndexState(s.index_id, t.table_id, fields[s.index_id],
                                                   "DELETED")  # fmt: skip
            self.ddl.append(Ddl(self.index, "drop_index", t.table_id, s.index_id))
            return [result_struct(tableId=t.table_id, indexId=s.index_id)]
        raise self.fail(f"{type(s).__name__} is not supported")

    # -- SELECT

    def select(self, s: Select) -> list[Any]:
        if s.nested:  # subqueries first, each run once (resolve_subqueries)
            s = resolve_subqueries(s, self.select)
        if not s.joins:
            return project(s, self.rows(s.source, s.where))
        return project(s, join_rows(s, self.rows))

    def rows(self, source: Source, where: Expr | None) -> list[Scope]:
        """The rows of one source matching ``where``, each as its evaluation scope."""
        if source.kind == "table":
            table = self.tx._table(self.conn, source.table, self.text)
            return [scope for _, scope in self.documents(table, source, where)]
        if source.kind in ("committed", "history"):
            return self._committed(source, where)
        if source.kind == "subquery":  # FROM (SELECT ...) AS x: its results, resolved first
            results = source.args[0]
            assert isinstance(results, Lit)
            scopes = [self.scope((source.name,), v, None, None) for v in results.value]
            return [sc for sc in scopes if where is None or truth(evaluate(where, sc))]
        return self._user_tables(source, where)

    def _committed(self, source: Source, where: Expr | None) -> list[Scope]:
        """Rows of ``_ql_committed_T`` (current revisions) or ``history(T)`` (all revisions):
        ``{blockAddress, hash, data, metadata}`` of committed revisions only."""
        table = self.tx._table(self.conn, source.table, self.text)
        default = f"_ql_committed_{source.table}" if source.kind == "committed" else "history"
        names = (source.alias,) if source.alias else (default,)
        doc_id = metadata_id(where, names, source.by)
        led = self.tx._ledger
        if source.kind == "committed":
            sql = (
                "SELECT r.id, r.version, d.data, r.hash, r.block_seq, b.tx_id, b.tx_ms, NULL "
                "FROM ledger_documents d JOIN ledger_revisions r ON r.id = d.id AND "
                "r.version = d.version JOIN ledger_blocks b ON b.seq = r.block_seq "
                "WHERE d.table_id = ?"
            )
        else:
            sql = (
                "SELECT r.id, r.version, r.data, r.hash, r.block_seq, b.tx_id, b.tx_ms, "
                "x.data_hash FROM ledger_revisions r JOIN ledger_blocks b ON b.seq = r.block_seq "
                "LEFT JOIN ledger_redactions x ON x.id = r.id AND x.version = r.version "
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
                args.append(epoch_ms(bounds[0]))
            if len(bounds) > 1 and kind(bounds[1]) == "timestamp":
                sql += " AND b.tx_ms <= ?"
                args.append(epoch_ms(bounds[1]))
            sql += " ORDER BY r.block_seq, r.id"
        else:
            sql += " ORDER BY r.id"
        out = []
        for rid, version, data, h, seq, tx_id, tx_ms, redacted in self.conn.execute(sql, args):
            row = ion_struct(
                blockAddress=ion_struct(strandId=led.strand_id, sequenceNo=seq), hash=bytes(h)
            )
            if data is not None:
                row["data"] = led._decoded(rid, version, data)
            elif redacted is not None:  # EXEC redact_revision kept only its data hash
                row["dataHash"] = bytes(redacted)
            row["metadata"] = ion_struct(
                id=rid, version=version, txTime=ion_time(tx_ms), txId=tx_id
            )
            scope = self.scope(names, row, source.by, rid)  # BY binds the document id
            if where is None or truth(evaluate(where, scope)):
                out.append(scope)
        return out

    def _user_tables(self, source: Source, where: Expr | None) -> list[Scope]:
        names = (source.alias,) if source.alias else ("user_tables",)
        tables: dict[str, TableState] = {
            tid: TableState(tid, name, status)
            for tid, name, status in self.conn.execute(
                "SELECT table_id, name, status FROM ledger_tables ORDER BY name, table_id"
            )
        }
        tables.update(self.tx._tables)
        out = []
        for t in tables.values():
            indexes = [
                ion_struct(expr=f"[{f}]", indexId=i, status="ONLINE")
                for f, i in sorted(self.tx._table_indexes(self.conn, t.table_id).items())
            ]
            row = ion_struct(name=t.name, tableId=t.table_id, status=t.status, indexes=indexes)
            scope = self.scope(names, row, None, None)
            if where is None or truth(evaluate(where, scope)):
                out.append(scope)
        return out
