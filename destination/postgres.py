"""``PostgresDestination``: the ``Destination`` port over PostgreSQL (psycopg 3), QLDB's successor.

PostgreSQL does not run PartiQL, so every block is replayed from its revisions (the
REVISION_DETAILS the settler verified): a ``statements``-mode block contributes its DDL (run as
PostgreSQL DDL) and its revisions (``BlockReplay.revisions``); its DML is parsed and checked
against the tables, never executed. A read-only block moves the checkpoint only.

The schema (``--pg-schema``, default ``qldb``; docs/postgresql.md is the reference users read):

- one table per QLDB table, same name (a quoted identifier, never interpolated): ``id`` (the
  source document id, primary key), ``version``, ``data jsonb`` (QLDB's JSON down-conversion,
  ``journal.ion_json``), ``ion bytea`` (the exact Ion binary: types, decimal scale and timestamp
  precision kept), ``committed_at``, ``block_sequence``, ``txn_id``;
- ``qldb_history``: every revision ever replayed, deletions included, with its hash and its
  ``metadata`` Ion, append-only (a trigger refuses UPDATE, DELETE and TRUNCATE);
- ``qldb_blocks``: per replayed block its address, ``blockHash``, ``previousBlockHash``,
  ``entriesHash``, ``entriesHashList``, transaction id and commit time, also append-only;
- ``qldb_tables`` (name, active: ``DROP TABLE`` keeps the rows and marks the table inactive as
  QLDB does, ``UNDROP TABLE`` reverses it), ``qldb_table_ids`` (source table ids, for UNDROP),
  ``qldb_indexes`` (``CREATE INDEX ON T (f)`` becomes an index on ``(data #>> '{f}')``) and
  ``qldb_checkpoint``.

``verify_chain`` checks the replica from PostgreSQL alone (``destination.postgres_chain``); the
schema's SQL and names are ``destination.postgres_schema``: this module is how blocks are written.
It stays one module: the connection and its deadline, the DDL a block's statements become and the
batched revision writes all serve one ``apply`` over one group's state (``_Group``), and change
together, with the schema.

One ``apply`` is one PostgreSQL transaction (READ COMMITTED). Its first statement takes a
transaction-scoped advisory lock keyed by (ledger, strand), then the checkpoint row is read and
compared with ``expected``: a row lock that also covers the first block, when there is no
checkpoint row to lock yet; SERIALIZABLE would add retries for conflicts that cannot happen
here, since only settlers of that strand write these rows and the lock serializes them.
Writes are batched per group: one lookup of the existing copies per table, then pipelined
``executemany`` upserts and deletes, and ``COPY`` into the history and block tables, so a
backlog does not cost a round trip per revision. A lost connection raises ``TransientError``
(nothing committed, or a commit whose answer was lost: the next cycle's compare-and-set sees it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from destination import port
from destination.port import ApplyReport, BlockReplay, Checkpoint, Limits, RevisionOp, StatementOp
from destination.postgres_chain import ChainReport, verify_chain
from destination.postgres_schema import (
    INTERNAL_TABLES,
    MAX_IDENTIFIER,
    SCHEMA,
    TABLE,
    ident,
    index_name,
)
from destination.statement_replay import index_named, learn_table_ids
from journal.errors import ReplayError
from journal.ion_binary import encode
from journal.ion_json import json_text
from runtime import deadline
from runtime.errors import CheckpointMismatch, ConfigError, TransientError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Group:
    """What one ``apply`` accumulates before its batched writes."""

    tables: dict[str, bool]  # name -> active, as the group's statements leave them
    created: list[str] = field(default_factory=list)
    # (table, id) -> the final row, or None for a deletion, in the order first touched
    current: dict[tuple[str, str], tuple[Any, ...] | None] = field(default_factory=dict)
    history: list[tuple[Any, ...]] = field(default_factory=list)
    blocks: list[tuple[Any, ...]] = field(default_factory=list)
    existing: dict[str, set[str]] = field(default_factory=dict)
    table_ids: set[tuple[str, str, str]] = field(default_factory=set)


class PostgresDestination:
    """The replica in PostgreSQL. ``url`` is a libpq URL (``postgresql://USER@HOST:PORT/DB``;
    ``postgres://`` too, with any libpq parameter; the password from the URL, ``PGPASSWORD`` or
    ``~/.pgpass``, as libpq reads them)."""

    limits = Limits()

    def __init__(
        self,
        url: str,
        *,
        schema: str = "qldb",
        password: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if not schema or len(schema.encode()) > MAX_IDENTIFIER or schema.startswith("pg_"):
            raise ConfigError(
                f"--pg-schema {schema!r}: not a usable PostgreSQL schema name (1 to "
                f"{MAX_IDENTIFIER} bytes, not starting with pg_, which PostgreSQL reserves)"
            )
        self.url = url
        self.schema = schema
        self._password = password
        self._connect_timeout = connect_timeout
        self._conn: Any = None

    # --- connection ------------------------------------------------------------------------

    def _connection(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            extra: dict[str, Any] = {} if self._password is None else {"password": self._password}
            deadline.check(f"connecting to PostgreSQL at {_redacted(self.url)}")
            timeout = max(1, int(deadline.timeout(self._connect_timeout)))
            conn = psycopg.connect(self.url, connect_timeout=timeout, **extra)
        except psycopg.OperationalError as exc:
            if "authentication failed" in str(exc) or "no password supplied" in str(exc):
                # Not transient: running again would fail the same way.
                raise ConfigError(f"PostgreSQL at {_redacted(self.url)}: {exc}".strip()) from exc
            raise TransientError(f"PostgreSQL at {_redacted(self.url)}: {exc}".strip()) from exc
        except psycopg.ProgrammingError as exc:  # a malformed URL
            raise ConfigError(f"destination URL {_redacted(self.url)}: {exc}") from exc
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('qldb-settle schema'))")
                conn.execute(self._sql(SCHEMA))
        except psycopg.OperationalError as exc:
            conn.close()
            raise TransientError(f"PostgreSQL at {_redacted(self.url)}: {exc}") from exc
        self._conn = conn
        return conn

    def _bounded(self, conn: Any) -> None:
        """First thing in a transaction of the settle path: no statement of it may run past the
        invocation's deadline (``SET LOCAL statement_timeout``; PostgreSQL cancels it, and the
        transaction rolls back). Nothing without a deadline."""
        left = deadline.remaining()
        if left is None:
            return
        deadline.check(f"a transaction at PostgreSQL {_redacted(self.url)}")
        conn.execute(f"SET LOCAL statement_timeout = {max(1, int(left * 1000))}")

    def _sql(self, template: str, **names: str) -> Any:
        from psycopg import sql

        return sql.SQL(template).format(
            s=ident(self.schema), **{k: sql.Identifier(self.schema, v) for k, v in names.items()}
        )

    def _table(self, name: str) -> Any:
        from psycopg import sql

        return sql.Identifier(self.schema, name)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # a connection already gone
                log.info("closing the PostgreSQL connection: %s", exc)
            self._conn = None

    def _lost(self, exc: Exception) -> TransientError:
        self.close()
        message = f"PostgreSQL at {_redacted(self.url)}: {exc}".strip()
        if type(exc).__name__ == "QueryCanceled" and deadline.remaining() is not None:
            return deadline.DeadlineReached(f"{message} (cut at the invocation's deadline)")
        return TransientError(message)

    # --- the port --------------------------------------------------------------------------

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        import psycopg

        conn = self._connection()
        try:
            with conn.transaction():
                self._bounded(conn)
                return self._read_checkpoint(conn, ledger, strand_id)
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from exc

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        import psycopg

        if not blocks:
            return ApplyReport()
        conn = self._connection()
        first = blocks[0]
        try:
            with conn.transaction():
                self._bounded(conn)
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))",
                    (f"{first.ledger}/{first.address.strand_id}",),
                )
                stored = self._read_checkpoint(conn, first.ledger, first.address.strand_id)
                if stored != expected:
                    raise CheckpointMismatch(
                        f"checkpoint of {first.ledger}/{first.address.strand_id} is "
                        f"{port.describe(stored)}, not the expected "
                        f"{port.describe(expected)}: nothing applied"
                    )
                report = ApplyReport()
                group = _Group(tables=self._load_tables(conn))
                self._load_existing(conn, blocks, group)
                current_block = first.block_id
                try:
                    for block in blocks:
                        current_block = block.block_id
                        self._apply_block(conn, block, group, report)
                    self._flush(conn, group)
                    self._write_checkpoint(conn, blocks[-1].checkpoint())
                except psycopg.OperationalError:
                    raise
                except psycopg.Error as exc:
                    raise ReplayError(current_block, f"PostgreSQL refused it: {exc}") from exc
            return report
        except psycopg.OperationalError as exc:
            raise self._lost(exc) from exc

    # --- reading ---------------------------------------------------------------------------

    def _read_checkpoint(self, conn: Any, ledger: str, strand_id: str) -> Checkpoint | None:
        row = conn.execute(
            self._sql(
                "SELECT sequence_no, part, block_hash FROM {s}.qldb_checkpoint "
                "WHERE ledger = %s AND strand_id = %s"
            ),
            (ledger, strand_id),
        ).fetchone()
        if row is None:
            return None
        return Checkpoint(
            ledger=ledger,
            strand_id=strand_id,
            sequence_no=int(row[0]),
            part=None if row[1] is None else int(row[1]),
            block_hash=bytes(row[2]),
        )

    def _load_tables(self, conn: Any) -> dict[str, bool]:
        rows = conn.execute(self._sql("SELECT name, active FROM {s}.qldb_tables")).fetchall()
        return {str(n): bool(a) for n, a in rows}

    def _load_existing(self, conn: Any, blocks: Sequence[BlockReplay], group: _Group) -> None:
        """One query per table: which of the group's documents already have a copy."""
        wanted: dict[str, set[str]] = {}
        for block in blocks:
            for op in _revisions_of(block):
                wanted.setdefault(op.table_name, set()).add(op.document_id)
        for table, ids in wanted.items():
            if table not in group.tables:
                group.existing[table] = set()
                continue
            rows = conn.execute(
                self._sql("SELECT id FROM {t} WHERE id = ANY(%s)", t=table), (sorted(ids),)
            ).fetchall()
            group.existing[table] = {str(r[0]) for r in rows}

    # --- applying --------------------------------------------------------------------------

    def _apply_block(
        self, conn: Any, block: BlockReplay, group: _Group, report: ApplyReport
    ) -> None:
        seq = block.address.sequence_no
        self._learn_table_ids(block, group)
        for op in block.ops:
            if isinstance(op, StatementOp):
                self._statement(conn, block, op, group)
                report.statements += 1
            else:
                report.revisions += 1
                report.documents_written += self._revision(conn, block, op, group)
        if block.mode == "statements":
            for rev in block.revisions:
                report.documents_written += self._revision(conn, block, rev, group)
        if block.part is None or block.part == 0:
            group.blocks.append(
                (
                    block.ledger, block.address.strand_id, seq, block.block_hash,
                    block.previous_block_hash or None, block.entries_hash or None,
                    list(block.entries_hash_list), block.transaction_id or None,
                    block.committed_at,
                )
            )  # fmt: skip

    def _statement(self, conn: Any, block: BlockReplay, op: StatementOp, group: _Group) -> None:
        from ledger.errors import ParseError
        from ledger.nodes import (
            CreateIndex,
            CreateTable,
            Delete,
            DropIndex,
            DropTable,
            InsertMany,
            InsertValue,
            UndropTable,
            Update,
        )
        from ledger.parser import parse

        where = f"statement {op.index}"
        try:
            st = parse(op.text).statement
        except ParseError as exc:
            raise ReplayError(block.block_id, f"{where} is not PartiQL: {exc}") from exc
        seq = block.address.sequence_no
        if isinstance(st, CreateTable):
            if st.table in group.tables and not group.tables[st.table]:
                raise ReplayError(
                    block.block_id,
                    f"{where}: CREATE TABLE {st.table} while a dropped table of that name keeps "
                    "its rows in the replica: a new QLDB table with a dropped table's name is not "
                    "supported by the PostgreSQL destination",
                )
            self._create_table(conn, block, st.table, group, seq)
        elif isinstance(st, DropTable):
            self._require(block, where, st.table, group)
            group.tables[st.table] = False
            conn.execute(
                self._sql(
                    "UPDATE {s}.qldb_tables SET active = false, dropped_sequence = %s "
                    "WHERE name = %s"
                ),
                (seq, st.table),
            )
        elif isinstance(st, UndropTable):
            learnt = [
                n for lg, src, n in group.table_ids if (lg, src) == (block.ledger, st.table_id)
            ]
            row = (
                (learnt[0],)
                if learnt
                else conn.execute(
                    self._sql(
                        "SELECT name FROM {s}.qldb_table_ids "
                        "WHERE ledger = %s AND source_table_id = %s"
                    ),
                    (block.ledger, st.table_id),
                ).fetchone()
            )
            if row is None:
                raise ReplayError(
                    block.block_id,
                    f"{where}: UNDROP TABLE {st.table_id!r}: the source table id was never seen "
                    "with a table name, so the table it names in the replica is unknown",
                )
            name = str(row[0])
            group.tables[name] = True
            conn.execute(
                self._sql(
                    "UPDATE {s}.qldb_tables SET active = true, dropped_sequence = NULL "
                    "WHERE name = %s"
                ),
                (name,),
            )
        elif isinstance(st, CreateIndex):
            self._require(block, where, st.table, group)
            keys = [st.path.root, *(_step_name(s) for s in st.path.steps)]
            path = ".".join(keys)
            name = index_name(st.table, path)
            from psycopg import sql

            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} ((data #>> {p}))").format(
                    i=ident(name), t=self._table(st.table), p=sql.Literal(keys)
                )
            )
            conn.execute(
                self._sql(
                    "INSERT INTO {s}.qldb_indexes (table_name, path, index_name) "
                    "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                ),
                (st.table, path, name),
            )
        elif isinstance(st, DropIndex):
            self._drop_index(conn, block, where, st.table, st.index_id)
        elif isinstance(st, InsertValue | InsertMany):
            self._require(block, where, st.table, group)
        elif isinstance(st, Update | Delete):
            self._require(block, where, st.source.table, group)
        # anything else (a read the plan let through) changes nothing

    def _require(self, block: BlockReplay, where: str, table: str, group: _Group) -> None:
        if not group.tables.get(table):
            state = "is dropped" if table in group.tables else "does not exist"
            raise ReplayError(block.block_id, f"{where}: table {table} {state} in the replica")

    def _create_table(
        self, conn: Any, block: BlockReplay, name: str, group: _Group, seq: int
    ) -> None:
        if name in INTERNAL_TABLES:
            raise ReplayError(
                block.block_id, f"table {name}: the name of one of the replica's own tables"
            )
        if len(name.encode()) > MAX_IDENTIFIER:
            raise ReplayError(
                block.block_id,
                f"table {name}: longer than PostgreSQL's {MAX_IDENTIFIER}-byte identifiers",
            )
        from psycopg import sql

        conn.execute(sql.SQL(TABLE).format(t=self._table(name)))
        conn.execute(
            self._sql(
                "INSERT INTO {s}.qldb_tables (name, active, created_sequence) "
                "VALUES (%s, true, %s) "
                "ON CONFLICT (name) DO UPDATE SET active = true, dropped_sequence = NULL"
            ),
            (name, seq),
        )
        if name not in group.tables:
            group.created.append(name)
            group.existing.setdefault(name, set())
        group.tables[name] = True
        self._learn_table_ids(block, group)

    def _learn_table_ids(self, block: BlockReplay, group: _Group) -> None:
        """Which replica table each source table id of the block is (while it is active), so
        that ``UNDROP TABLE "id"`` can be translated later; written with the group. The replica
        names its tables as the source does, so the active table of a name is that name."""
        learn_table_ids(
            block.table_names,
            known=lambda src: False,  # a set: recording an id twice is recording it once
            active_id=lambda name: name if group.tables.get(name) else None,
            record=lambda src, name: group.table_ids.add((block.ledger, src, name)),
        )

    def _drop_index(
        self, conn: Any, block: BlockReplay, where: str, table: str, index_id: str
    ) -> None:
        """QLDB never streams index ids: the table's only index is the one a DROP INDEX names."""
        rows = conn.execute(
            self._sql("SELECT path, index_name FROM {s}.qldb_indexes WHERE table_name = %s"),
            (table,),
        ).fetchall()
        paths = {str(name): str(path) for path, name in rows}
        name = index_named(
            table,
            index_id,
            list(paths.items()),
            log=log,
            unknown=lambda n: ReplayError(
                block.block_id,
                f"{where}: DROP INDEX {index_id!r} ON {table}: the source index id is unknown to "
                f"the replica and the table has {n} indexes, so which one it names cannot be told",
            ),
        )
        path = paths[name]
        from psycopg import sql

        conn.execute(sql.SQL("DROP INDEX IF EXISTS {i}").format(i=self._table(name)))
        conn.execute(
            self._sql("DELETE FROM {s}.qldb_indexes WHERE table_name = %s AND path = %s"),
            (table, path),
        )

    def _revision(self, conn: Any, block: BlockReplay, op: RevisionOp, group: _Group) -> int:
        """Record the revision in the group; 1 when it changes a document of the replica. A
        revision of a table the replica does not have yet creates it."""
        table = op.table_name
        if table not in group.tables:
            self._create_table(conn, block, table, group, block.address.sequence_no)
        key = (table, op.document_id)
        seq = block.address.sequence_no
        had = (
            group.current[key] is not None
            if key in group.current
            else op.document_id in group.existing.get(table, set())
        )
        ion = None if op.data is None else encode(op.data)
        data = None if op.data is None else json_text(op.data)
        metadata = None if op.metadata is None else encode(op.metadata)
        group.history.append(
            (
                table, op.document_id, op.version, data, ion, metadata, op.revision_hash,
                block.ledger, block.address.strand_id, seq, block.transaction_id or None,
                block.committed_at, op.data is None and not op.redacted,
            )
        )  # fmt: skip
        if op.data is None:
            group.current[key] = None
            return 1 if had else 0
        group.current[key] = (
            op.document_id, op.version, data, ion, block.committed_at, seq,
            block.transaction_id or None,
        )  # fmt: skip
        return 1

    def _flush(self, conn: Any, group: _Group) -> None:
        """The group's writes, batched: upserts and deletes per table (pipelined), then the
        history and the blocks by COPY."""
        upserts: dict[str, list[tuple[Any, ...]]] = {}
        deletes: dict[str, list[str]] = {}
        for (table, doc_id), row in group.current.items():
            if row is None:
                deletes.setdefault(table, []).append(doc_id)
            else:
                upserts.setdefault(table, []).append(row)
        with conn.cursor() as cur:
            if group.table_ids:
                cur.executemany(
                    self._sql(
                        "INSERT INTO {s}.qldb_table_ids (ledger, source_table_id, name) "
                        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
                    ),
                    sorted(group.table_ids),
                )
            for table, ids in deletes.items():
                cur.execute(self._sql("DELETE FROM {t} WHERE id = ANY(%s)", t=table), (ids,))
            for table, rows in upserts.items():
                cur.executemany(
                    self._sql(
                        "INSERT INTO {t} (id, version, data, ion, committed_at, block_sequence, "
                        "txn_id) VALUES (%s, %s, %s::jsonb, %s, %s, %s, %s) "
                        "ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, "
                        "data = EXCLUDED.data, ion = EXCLUDED.ion, "
                        "committed_at = EXCLUDED.committed_at, "
                        "block_sequence = EXCLUDED.block_sequence, txn_id = EXCLUDED.txn_id",
                        t=table,
                    ),
                    rows,
                )
            if group.history:
                with cur.copy(
                    self._sql(
                        "COPY {s}.qldb_history (table_name, document_id, version, data, ion, "
                        "metadata, revision_hash, ledger, strand_id, block_sequence, txn_id, "
                        "committed_at, deleted) FROM STDIN"
                    )
                ) as copy:
                    for h in group.history:
                        copy.write_row(h)
            if group.blocks:
                with cur.copy(
                    self._sql(
                        "COPY {s}.qldb_blocks (ledger, strand_id, sequence_no, block_hash, "
                        "previous_block_hash, entries_hash, entries_hash_list, txn_id, "
                        "committed_at) FROM STDIN"
                    )
                ) as copy:
                    for b in group.blocks:
                        copy.write_row(b)

    def _write_checkpoint(self, conn: Any, cp: Checkpoint) -> None:
        conn.execute(
            self._sql(
                "INSERT INTO {s}.qldb_checkpoint (ledger, strand_id, sequence_no, part, "
                "block_hash) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (ledger, strand_id) DO "
                "UPDATE SET sequence_no = EXCLUDED.sequence_no, part = EXCLUDED.part, "
                "block_hash = EXCLUDED.block_hash"
            ),
            (cp.ledger, cp.strand_id, cp.sequence_no, cp.part, cp.block_hash),
        )

    # --- reading the replica ---------------------------------------------------------------

    def tables(self) -> list[tuple[str, bool]]:
        conn = self._connection()
        with conn.transaction():
            rows = conn.execute(
                self._sql("SELECT name, active FROM {s}.qldb_tables ORDER BY name")
            ).fetchall()
        return [(str(n), bool(a)) for n, a in rows]

    def documents(self) -> Iterator[tuple[str, str, Any]]:
        """``(table, id, data)`` of every current document of the active tables, sorted by table
        then id; ``data`` is the Ion value decoded from ``ion`` (exact)."""
        from journal.ion_binary import decode

        conn = self._connection()
        for name, active in self.tables():
            if not active:
                continue
            with conn.transaction():
                rows = conn.execute(
                    self._sql("SELECT id, ion FROM {t} ORDER BY id", t=name)
                ).fetchall()
            for doc_id, ion in rows:
                yield name, str(doc_id), decode(bytes(ion))

    def source_ids(self) -> dict[str, str]:
        return {}  # the replica's document ids are the source's

    def verify_chain(self) -> ChainReport:
        """Check the stored history and block chain from PostgreSQL alone
        (``destination.postgres_chain``)."""
        return verify_chain(self._connection(), self._sql)


def _revisions_of(block: BlockReplay) -> Iterator[RevisionOp]:
    for op in block.ops:
        if isinstance(op, RevisionOp):
            yield op
    if block.mode == "statements":
        yield from block.revisions


def _step_name(step: Any) -> str:
    name = getattr(step, "name", None)
    if not isinstance(name, str):
        raise ValueError(f"index path step {step!r} is not a field name")
    return name


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    auth, _, host = rest.rpartition("@")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"
