"""The statements that replay one block inside a QLDB transaction (``destination.qldb``'s
``apply`` runs them through pyqldb's executor, one ``apply_block`` per block).

A revision is replayed with its data passed as Ion parameters (never as text): ``INSERT INTO T ?``
with the source document id in ``SOURCE_ID_FIELD``; a replacement sets the top-level fields that
changed and removes those that went away (QLDB has no whole-document replacement), so the copy
keeps its id; a deletion deletes the copy found by its source id. A block replayed as statements
runs them with source table and index ids translated to the replica's (``UNDROP TABLE``, ``DROP
INDEX``), then matches its revisions to the documents they wrote (``destination.statement_replay``)
and stamps each copy with its source id, in the same transaction.

Kept apart from ``destination.qldb`` because it changes with what replaying a block means in
QLDB's PartiQL, not with how the driver is built, retried and its errors mapped.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amazon.ion import simpleion

from destination.partiql import created_table, dml_table, is_ddl, parse_statement, quote
from destination.port import ApplyReport, BlockReplay, RevisionOp, StatementOp
from destination.statement_replay import (
    index_named,
    learn_table_ids,
    map_statement_writes,
    undrop_target,
)
from journal.canonical import fingerprint
from journal.errors import ReplayError

logger = logging.getLogger(__name__)

# The field of a replica document that holds its source document's id (indexed on every table).
SOURCE_ID_FIELD = "qldb_settle_source_id"


def _ion_copy(value: Any) -> Any:
    # A round trip, not copy.deepcopy: amazon.ion 0.9.3 loses a timestamp's precision on deepcopy.
    return simpleion.loads(simpleion.dumps(value))


def strip_source_id(data: Any) -> Any:
    """The document without its internal source-id field."""
    if isinstance(data, Mapping) and SOURCE_ID_FIELD in data:
        copy = _ion_copy(data)
        del copy[SOURCE_ID_FIELD]
        return copy
    return data


@dataclass(slots=True)
class Attempt:
    """What one run of the transaction lambda did (pyqldb may run it several times)."""

    report: ApplyReport = field(default_factory=ApplyReport)
    failing: tuple[str, str] | None = None  # (block id, what was running)
    already_applied: bool = False
    created: list[str] = field(default_factory=list)  # tables created (with their index)
    # Source table id -> replica table id, kept in the checkpoint document (no extra document).
    table_ids: dict[str, str] = field(default_factory=dict)
    user_tables: list[Any] | None = None  # information_schema.user_tables, read when needed


def apply_block(executor: Any, block: BlockReplay, attempt: Attempt) -> None:
    """Run one block's operations in the transaction of ``executor``, recording in ``attempt``
    what it did and, while each runs, what is running (for the error that names it)."""
    report = attempt.report
    written: list[tuple[str, str]] = []  # (table, destination id) of statement writes
    _learn_table_ids(executor, block, attempt)
    for op in block.ops:
        if isinstance(op, StatementOp):
            attempt.failing = (block.block_id, f"statement {op.index} {op.text[:200]!r}")
            text = _translate(executor, block, attempt, op.text)
            rows = list(executor.execute_statement(text))
            report.statements += 1
            if is_ddl(text):
                attempt.user_tables = None
            created = created_table(op.text)
            if created is not None:
                executor.execute_statement(
                    f"CREATE INDEX ON {quote(created)} ({quote(SOURCE_ID_FIELD)})"
                )
                attempt.created.append(created)
            table = dml_table(op.text)
            for row in rows:
                if isinstance(row, Mapping) and "documentId" in row and table is not None:
                    written.append((table, str(row["documentId"])))
        else:
            attempt.failing = (
                block.block_id,
                f"revision {op.document_id} version {op.version} of {op.table_name}",
            )
            report.documents_written += _replay_revision(executor, op)
            report.revisions += 1
    if block.mode == "statements":
        attempt.failing = (block.block_id, "mapping the documents its statements wrote")
        map_statement_writes(block, _StatementWrites(executor, block, written))
        report.documents_written += len({pid for _, pid in written})
    _learn_table_ids(executor, block, attempt)
    attempt.failing = None


def list_tables(executor: Any) -> dict[str, bool]:
    """Active user tables: name -> whether it has the source-id index."""
    rows = _rows(
        executor,
        "SELECT name, indexes FROM information_schema.user_tables WHERE status = 'ACTIVE'",
    )
    return {str(r["name"]): has_source_index(r.get("indexes")) for r in rows}


def _rows(executor: Any, statement: str, *params: Any) -> list[Any]:
    return list(executor.execute_statement(statement, *params))


def _find_copy(executor: Any, table: str, source_id: str) -> tuple[str, Any] | None:
    rows = _rows(
        executor,
        f"SELECT pid AS id, t AS doc FROM {quote(table)} AS t BY pid "
        f"WHERE t.{quote(SOURCE_ID_FIELD)} = ?",
        source_id,
    )
    if not rows:
        return None
    return str(rows[0]["id"]), rows[0]["doc"]


def _replay_revision(executor: Any, op: RevisionOp) -> int:
    """Make the copy of ``op``'s source document equal its revision; the documents written."""
    table = quote(op.table_name)
    found = _find_copy(executor, op.table_name, op.document_id)
    if op.data is None:
        if found is None:
            return 0
        executor.execute_statement(f"DELETE FROM {table} AS t BY pid WHERE pid = ?", found[0])
        return 1
    if not isinstance(op.data, Mapping):
        raise ReplayError(op.document_id, f"revision data is not a struct ({type(op.data)})")
    if found is None:
        doc = _ion_copy(op.data)
        # Every part an Ion value: pyqldb hashes an Ion parameter as it is, without converting.
        doc[SOURCE_ID_FIELD] = _ion_copy(op.document_id)
        executor.execute_statement(f"INSERT INTO {table} ?", doc)
        return 1
    pid, current = found
    sets, removes = _difference(current, op.data)
    if not sets and not removes:
        return 0
    if sets:
        assignments = ", ".join(f"t.{quote(name)} = ?" for name, _ in sets)
        executor.execute_statement(
            f"UPDATE {table} AS t BY pid SET {assignments} WHERE pid = ?",
            *(value for _, value in sets),
            pid,
        )
    for name in removes:
        executor.execute_statement(
            f"UPDATE {table} AS t BY pid REMOVE t.{quote(name)} WHERE pid = ?", pid
        )
    return 1


def _difference(current: Any, new: Mapping[str, Any]) -> tuple[list[tuple[str, Any]], list[str]]:
    """The top-level fields to set and to remove to turn ``current`` into ``new`` (the internal
    source-id field is kept)."""
    old = current if isinstance(current, Mapping) else {}
    sets = [
        (str(k), v)
        for k, v in new.items()
        if k != SOURCE_ID_FIELD and (k not in old or fingerprint(old[k]) != fingerprint(v))
    ]
    removes = [str(k) for k in old if k != SOURCE_ID_FIELD and k not in new]
    return sets, removes


def _user_tables(executor: Any, attempt: Attempt) -> list[Any]:
    if attempt.user_tables is None:
        attempt.user_tables = _rows(
            executor, "SELECT name, tableId, status, indexes FROM information_schema.user_tables"
        )
    return attempt.user_tables


def _learn_table_ids(executor: Any, block: BlockReplay, attempt: Attempt) -> None:
    """Record which replica table each source table id of the block is (while it is active), so
    that ``UNDROP TABLE "id"`` can be translated later."""

    def active_id(name: str) -> str | None:
        return next(
            (
                str(t["tableId"])
                for t in _user_tables(executor, attempt)
                if str(t["name"]) == name and str(t["status"]) == "ACTIVE"
            ),
            None,
        )

    learn_table_ids(
        block.table_names,
        known=attempt.table_ids.__contains__,
        active_id=active_id,
        record=attempt.table_ids.__setitem__,
    )


def _translate(executor: Any, block: BlockReplay, attempt: Attempt, text: str) -> str:
    """A statement naming source table or index ids, with the replica's ids (DESIGN.md rule 7)."""
    from ledger.nodes import DropIndex, UndropTable

    st = parse_statement(text)
    if isinstance(st, UndropTable):
        dest = undrop_target(
            st.table_id,
            learnt=attempt.table_ids.get(st.table_id),
            replica_has=lambda i: any(
                str(t["tableId"]) == i for t in _user_tables(executor, attempt)
            ),
            unknown=lambda: ReplayError(
                block.block_id,
                f"UNDROP TABLE {quote(st.table_id)}: the source table id was never seen with "
                "a table name, so the table it names in the replica is unknown",
            ),
        )
        return f"UNDROP TABLE {quote(dest)}"
    if isinstance(st, DropIndex):
        table = next(
            (
                t
                for t in _user_tables(executor, attempt)
                if str(t["name"]) == st.table and str(t["status"]) == "ACTIVE"
            ),
            None,
        )
        ids = [
            (str(i["indexId"]), str(i["expr"]))
            for i in (table["indexes"] if table is not None else [])
            if SOURCE_ID_FIELD not in str(i["expr"])
        ]
        dest = index_named(
            st.table,
            st.index_id,
            ids,
            log=logger,
            unknown=lambda n: ReplayError(
                block.block_id,
                f"DROP INDEX {quote(st.index_id)} ON {st.table}: the source index id is unknown "
                f"to the replica and the table has {n} indexes, so which one it names "
                "cannot be told",
            ),
        )
        options = " WITH (purge = true)" if st.options else ""
        return f"DROP INDEX {quote(dest)} ON {quote(st.table)}{options}"
    return text


class _StatementWrites:
    """``statement_replay.StatementWrites`` over one QLDB transaction: the documents its
    statements wrote (read back by id), and the copies found by their source-id field. QLDB keeps
    no down-converted mark."""

    def __init__(
        self, executor: Any, block: BlockReplay, written: Sequence[tuple[str, str]]
    ) -> None:
        self._executor = executor
        self._block = block
        self._written = written
        self._docs: dict[str, Any] = {}  # destination id -> document (None: gone), as read
        self._table_of: dict[str, str] = {}
        for table, pid in written:
            self._table_of.setdefault(pid, table)

    def copy_of(self, rev: RevisionOp) -> str | None:
        found = _find_copy(self._executor, rev.table_name, rev.document_id)
        if found is None:
            return None
        self._docs[found[0]] = found[1]
        return found[0]

    def content(self, dest: str) -> Hashable | None:
        if dest not in self._docs:
            table = quote(self._table_of[dest])
            rows = _rows(
                self._executor, f"SELECT VALUE t FROM {table} AS t BY pid WHERE pid = ?", dest
            )
            self._docs[dest] = rows[0] if rows else None
        doc = self._docs[dest]
        return None if doc is None else fingerprint(strip_source_id(doc))

    def written(self, table: str) -> Iterator[str]:
        return (pid for t, pid in self._written if t == table)

    def fingerprint(self, rev: RevisionOp) -> Hashable:
        return fingerprint(rev.data)

    def down_converted(self, dest: str) -> bool:
        return False

    def record(self, rev: RevisionOp, dest: str) -> None:
        self._executor.execute_statement(
            f"UPDATE {quote(rev.table_name)} AS t BY pid SET t.{quote(SOURCE_ID_FIELD)} = ? "
            "WHERE pid = ?",
            rev.document_id,
            dest,
        )

    def forget(self, rev: RevisionOp) -> None:
        pass  # the source id is a field of the copy: it went with it

    def diverged(self, rev: RevisionOp, why: str) -> Exception:
        return ReplayError(
            self._block.block_id, f"revision {rev.document_id} v{rev.version}: {why}"
        )


def has_source_index(indexes: Any) -> bool:
    if not isinstance(indexes, list):
        return False
    for index in indexes:
        expr = str(index.get("expr", "")) if isinstance(index, Mapping) else ""
        if SOURCE_ID_FIELD in expr:
            return True
    return False
