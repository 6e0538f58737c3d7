"""``QldbDestination``: the ``Destination`` port over an Amazon QLDB ledger, through pyqldb.

One ``apply`` is one ``QldbDriver.execute_lambda`` transaction: it reads the checkpoint document,
compares it with the expected one (compare-and-set), runs the blocks' operations and writes the
new checkpoint. pyqldb retries the whole transaction on an OCC conflict and on a lost answer; the
compare-and-set inside it makes a retry of a commit that did land a no-op, never a second
application: each ``apply`` stamps the checkpoint with an id of its own, so a retry that finds the
checkpoint already moved by this very ``apply`` returns its report, and any other moved checkpoint
is a ``CheckpointMismatch``.

Where things live in the ledger:

- The checkpoint: one document per (ledger, strand) in the internal table
  ``qldb_settle_checkpoint`` (its layout: ``destination.qldb_checkpoint``).
- The source-to-destination document id map: the source document id is kept in a field of the
  destination document (``SOURCE_ID_FIELD``), indexed, not in a table of its own. QLDB limits a
  transaction to 40 documents; a map table would cost a second document for every inserted one
  (halving what a transaction can replay), while a field costs none. The field is internal:
  ``documents`` strips it, and a later revision finds its copy by it. A block replayed as
  statements gets the field on the documents its statements wrote, matched to the block's
  revisions by content, in the same transaction.
- Revisions are replayed with their data passed as Ion parameters (never as text): ``INSERT INTO
  T ?``; a replacement is ``UPDATE T AS t BY pid SET t."f" = ? ... WHERE pid = ?`` for the fields
  that changed and ``REMOVE`` for the fields that went away (QLDB has no whole-document
  replacement), so the destination document keeps its id; a deletion is ``DELETE FROM T AS t BY
  pid WHERE pid = ?``.

What replaying by statements means apart from QLDB (learning source table ids, matching a block's
revisions to the documents its statements wrote) is ``destination.statement_replay``, shared with
the embedded destination, as is the PartiQL text (``destination.partiql``), and the checkpoint
document's layout is ``destination.qldb_checkpoint``. What stays here is one module because it
changes for one reason, how QLDB is driven through pyqldb: the driver and the mapping of its
errors, the tables and source-id indexes, and the statements that replay a block.

QLDB's limits (40 documents and 4 MB per transaction) are in ``limits``; the settler splits blocks
under them. botocore 1.40.61 and later no longer have the ``qldb-session`` model: the constructor
says so plainly (``ConfigError``) instead of failing deep inside boto3 (docs/qldb.md).

Time: inside an invocation's deadline (``runtime.deadline``) no transaction is started, and no
pyqldb retry is slept for, past it (``DeadlineReached``); botocore's own timeouts are short
(``CONNECT_TIMEOUT_SECONDS``, ``READ_TIMEOUT_SECONDS``: one QLDB command, not a whole
transaction), and pyqldb turns botocore's retries off, retrying whole transactions itself.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from amazon.ion import simpleion

from destination import port
from destination.partiql import created_table, dml_table, is_ddl, parse_statement, quote
from destination.port import ApplyReport, BlockReplay, Checkpoint, Limits, RevisionOp, StatementOp
from destination.qldb_checkpoint import CHECKPOINT_TABLE, is_null, read_checkpoint, write_checkpoint
from destination.statement_replay import (
    index_named,
    learn_table_ids,
    map_statement_writes,
    undrop_target,
)
from journal.canonical import fingerprint
from journal.errors import ReplayError, SettleError
from runtime import deadline
from runtime.errors import CheckpointMismatch, ConfigError, TransientError

logger = logging.getLogger(__name__)

SOURCE_ID_FIELD = "qldb_settle_source_id"
INTERNAL_TABLES = frozenset({CHECKPOINT_TABLE})
QLDB_LIMITS = Limits(documents=40, bytes=4 * 1024 * 1024)
REQUIRED_BOTOCORE = "1.40.60"
# Credentials for a local endpoint when none are configured: serve-qldb accepts any.
LOCAL_CREDENTIALS = ("qldb-settle-local", "qldb-settle-local")
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 20
# pyqldb's own backoff: full jitter over base * 2**attempt milliseconds, at most 5 s.
BACKOFF_BASE_MS = 10
BACKOFF_CAP_MS = 5000


def _backoff_ms(attempt: int, error: Any, transaction_id: Any) -> float:
    """pyqldb's ``custom_backoff``: its default backoff, refused past the invocation's deadline
    (the error is raised out of ``execute_lambda``, ending the retries)."""
    delay = random.uniform(0, min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2**attempt))
    if not deadline.sleep_allowed(delay / 1000.0):
        raise deadline.DeadlineReached(
            f"QLDB transaction {transaction_id} failed ({error}) and the invocation's deadline "
            "leaves no time to retry it"
        )
    return delay


def check_botocore(session: Any = None) -> None:
    """Raise ``ConfigError`` unless pyqldb imports and botocore has the ``qldb-session`` model.

    ``session`` is a ``botocore.session.Session`` (default: a new one)."""
    try:
        import botocore
        import botocore.session
        import pyqldb  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"the qldb: destination needs pyqldb and botocore=={REQUIRED_BOTOCORE} "
            f"(pip install 'qldb-settle[settler]'): {exc}"
        ) from None
    session = session or botocore.session.get_session()
    if "qldb-session" not in session.get_available_services():
        raise ConfigError(
            f"botocore {botocore.__version__} has no 'qldb-session' model: QLDB reached end of "
            f"support and botocore 1.40.61 and later dropped its API. The qldb: destination "
            f"needs botocore=={REQUIRED_BOTOCORE} and boto3==1.40.60 (see docs/qldb.md)."
        )


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _configured_credentials() -> bool:
    """Whether credentials are configured without asking the instance metadata service."""
    return bool(os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"))


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


@dataclass(frozen=True, slots=True, kw_only=True)
class QldbDocument:
    """A current document of the replica (internal tables and fields left out)."""

    table: str
    id: str
    source_id: str | None
    data: Any


@dataclass(slots=True)
class _Attempt:
    """What one run of the transaction lambda did (pyqldb may run it several times)."""

    report: ApplyReport = field(default_factory=ApplyReport)
    failing: tuple[str, str] | None = None  # (block id, what was running)
    already_applied: bool = False
    created: list[str] = field(default_factory=list)  # tables created (with their index)
    # Source table id -> replica table id, kept in the checkpoint document (no extra document).
    table_ids: dict[str, str] = field(default_factory=dict)
    user_tables: list[Any] | None = None  # information_schema.user_tables, read when needed


class QldbDestination:
    """The ``Destination`` port over a QLDB ledger, through pyqldb (see the module docstring).

    ``endpoint`` None is the AWS endpoint of ``region`` (default ``AWS_REGION``); a loopback
    endpoint (``qldb-settle serve-qldb``) gets placeholder credentials when none are configured in
    the environment (serve-qldb accepts any).
    """

    limits = QLDB_LIMITS

    def __init__(
        self,
        ledger_name: str,
        endpoint: str | None = None,
        *,
        region: str | None = None,
        retry_limit: int = 4,
        read_ahead: int = 0,
    ) -> None:
        check_botocore()
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, UnknownServiceError
        from pyqldb.config.retry_config import RetryConfig
        from pyqldb.driver.qldb_driver import QldbDriver

        self.ledger_name = ledger_name
        self.endpoint = endpoint
        region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or ("us-east-1" if endpoint else None)
        )
        if region is None:
            raise ConfigError(
                "the qldb: destination needs AWS_REGION (or --qldb-endpoint for a local endpoint)"
            )
        self.region = region
        keys: dict[str, str] = {}
        if endpoint and _is_loopback(endpoint) and not _configured_credentials():
            keys = {
                "aws_access_key_id": LOCAL_CREDENTIALS[0],
                "aws_secret_access_key": LOCAL_CREDENTIALS[1],
            }
        try:
            self._driver = QldbDriver(
                ledger_name,
                retry_config=RetryConfig(retry_limit=retry_limit, custom_backoff=_backoff_ms),
                config=Config(
                    connect_timeout=CONNECT_TIMEOUT_SECONDS, read_timeout=READ_TIMEOUT_SECONDS
                ),
                read_ahead=read_ahead,
                endpoint_url=endpoint,
                region_name=region,
                **keys,
            )
        except UnknownServiceError as exc:
            raise ConfigError(f"botocore cannot build a qldb-session client: {exc}") from None
        except (BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot set up the QLDB driver: {exc}") from None
        self._tables: dict[str, bool] | None = None  # table name -> has the source-id index

    # --- the port --------------------------------------------------------------------------------

    def checkpoint(self, ledger: str, strand_id: str) -> Checkpoint | None:
        if CHECKPOINT_TABLE not in self._load_tables():
            self._tables = None  # perhaps created by another process since: look again
            if CHECKPOINT_TABLE not in self._load_tables():
                return None  # nothing was ever applied (reading creates nothing)

        def read(executor: Any) -> Checkpoint | None:
            found = read_checkpoint(executor, ledger, strand_id)
            return found.checkpoint if found else None

        result: Checkpoint | None = self._run(read, "reading the checkpoint")
        return result

    def apply(self, blocks: Sequence[BlockReplay], expected: Checkpoint | None) -> ApplyReport:
        key = port.strand_of(blocks)
        last = blocks[-1]
        self._ensure_internal()
        self._ensure_tables(blocks)
        new = last.checkpoint()
        apply_id = secrets.token_hex(12)
        attempts: list[_Attempt] = []

        def transaction(executor: Any) -> _Attempt:
            attempt = _Attempt()
            attempts.append(attempt)
            found = read_checkpoint(executor, *key)
            stored = found.checkpoint if found else None
            stored_apply = found.apply_id if found else None
            attempt.table_ids = dict(found.table_ids) if found else {}
            if stored != expected:
                if stored == new and stored_apply == apply_id:
                    # This apply's own commit landed and its answer was lost: nothing to redo.
                    attempt.already_applied = True
                    return attempt
                raise CheckpointMismatch(
                    f"checkpoint of {key[0]}/{key[1]} is {port.describe(stored)}, "
                    f"not the expected {port.describe(expected)}"
                )
            for block in blocks:
                self._apply_block(executor, block, attempt)
            attempt.failing = (last.block_id, "writing the checkpoint")
            write_checkpoint(executor, new, apply_id, attempt.table_ids, exists=found is not None)
            attempt.failing = None
            return attempt

        done: _Attempt = self._run(
            transaction, "applying blocks", attempts=attempts, block=blocks[0].block_id
        )
        # The run that committed is the last one that replayed the operations.
        ran = [a for a in attempts if not a.already_applied]
        committed = ran[-1] if ran else _Attempt()
        if self._tables is not None:
            self._tables.update(dict.fromkeys(committed.created, True))
        if done.already_applied:
            committed.report.details.append(
                "the commit's answer was lost; the retry found it applied"
            )
        return committed.report

    def close(self) -> None:
        """End the driver's pooled sessions. An endpoint that is gone cannot end them; the
        server expires them on its own, and nothing the settler did depends on it, so that is
        logged, not raised (a settle that already stopped on a transient error keeps exit 3)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._driver.close()
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not end the QLDB sessions of %s: %s", self.ledger_name, exc)

    # --- reading the replica ---------------------------------------------------------------------

    def tables(self) -> list[str]:
        """The active user tables of the replica, internal ones left out."""
        return sorted(t for t in self._load_tables() if t not in INTERNAL_TABLES)

    def documents(self) -> Iterator[tuple[str, str, Any]]:
        """``(table, destination id, data)`` of the replica's current documents, like
        ``EmbeddedLedger.documents``, sorted by table then id, without the internal tables and
        the internal source-id field."""
        for doc in self.copies():
            yield doc.table, doc.id, doc.data

    def copies(self) -> Iterator[QldbDocument]:
        """The replica's current documents with the source id each is the copy of."""
        for table in self.tables():

            def read(executor: Any, table: str = table) -> list[Any]:
                q = f"SELECT pid AS id, t AS doc FROM {quote(table)} AS t BY pid"
                return list(executor.execute_statement(q))

            rows: list[Any] = self._run(read, f"reading table {table}")
            for row in sorted(rows, key=lambda r: str(r["id"])):
                doc = row["doc"]
                source = doc.get(SOURCE_ID_FIELD) if isinstance(doc, Mapping) else None
                source = None if is_null(source) else source
                yield QldbDocument(
                    table=table,
                    id=str(row["id"]),
                    source_id=None if source is None else str(source),
                    data=strip_source_id(doc),
                )

    def execute(self, statement: str, *params: Any) -> list[Any]:
        """Run one statement in a transaction of its own and return its results."""
        rows: list[Any] = self._run(
            lambda ex: list(ex.execute_statement(statement, *params)), "running a statement"
        )
        return rows

    # --- internals -------------------------------------------------------------------------------

    def _run(
        self,
        fn: Any,
        what: str,
        *,
        attempts: list[_Attempt] | None = None,
        block: str | None = None,
    ) -> Any:
        """``execute_lambda`` with pyqldb's and botocore's errors turned into the project's:
        QLDB refusing a statement is a ``ReplayError`` of the block it belongs to (``block``, or
        the one the failing attempt was replaying), any other failure a ``TransientError``."""
        from botocore.exceptions import BotoCoreError, ClientError
        from pyqldb.errors import IllegalStateError

        def bounded(executor: Any) -> Any:
            deadline.check(f"QLDB ledger {self.ledger_name}: {what}")
            return fn(executor)

        deadline.check(f"QLDB ledger {self.ledger_name}: {what}")
        try:
            return self._driver.execute_lambda(bounded)
        except ClientError as exc:
            self._tables = None  # a lost answer may or may not have created tables
            error = exc.response.get("Error", {})
            code, message = error.get("Code", ""), error.get("Message", str(exc))
            failing = attempts[-1].failing if attempts else None
            if code == "BadRequestException" and failing is not None:
                raise ReplayError(failing[0], f"{failing[1]}: QLDB refused it: {message}") from None
            if code in ("BadRequestException", "LimitExceededException"):
                if block is not None:
                    raise ReplayError(block, f"{what}: QLDB refused it: {message}") from None
                raise SettleError(f"QLDB ledger {self.ledger_name}: {what}: {message}") from None
            raise TransientError(
                f"QLDB ledger {self.ledger_name} at {self._where()}: {what}: {code}: {message}"
            ) from None
        except (BotoCoreError, IllegalStateError) as exc:
            self._tables = None
            raise TransientError(
                f"QLDB ledger {self.ledger_name} at {self._where()}: {what}: {exc}"
            ) from None
        except BaseException:
            self._tables = None
            raise

    def _where(self) -> str:
        return self.endpoint or f"the AWS endpoint of {self.region}"

    def _load_tables(self) -> dict[str, bool]:
        if self._tables is None:
            self._tables = self._run(_list_tables, "listing tables")
        return self._tables

    def _ensure_internal(self) -> None:
        if CHECKPOINT_TABLE not in self._load_tables():
            self._setup([])

    def _ensure_tables(self, blocks: Sequence[BlockReplay]) -> None:
        """Give every table the blocks write by revision the source-id index; create a table
        the replica never saw created (it was created before the replica's first block)."""
        created_here: set[str] = set()
        needed: list[str] = []
        for block in blocks:
            for op in block.ops:
                if isinstance(op, StatementOp):
                    name = created_table(op.text)
                    if name is not None:
                        created_here.add(name)
                elif op.table_name not in created_here and op.table_name not in needed:
                    needed.append(op.table_name)
            for rev in block.revisions:
                if rev.table_name not in created_here and rev.table_name not in needed:
                    needed.append(rev.table_name)
        tables = self._load_tables()
        if any(not tables.get(t, False) for t in needed):
            self._setup(needed, block=blocks[0].block_id)

    def _setup(self, needed: list[str], block: str | None = None) -> None:
        """Create the internal table, and the ``needed`` tables and their source-id index where
        missing. Idempotent: it looks inside its own transaction, so a retry (or a rerun after a
        lost answer) creates nothing twice."""

        def create(executor: Any) -> dict[str, bool]:
            tables = _list_tables(executor)
            if CHECKPOINT_TABLE not in tables:
                executor.execute_statement(f"CREATE TABLE {CHECKPOINT_TABLE}")
                executor.execute_statement(f"CREATE INDEX ON {CHECKPOINT_TABLE} (strandId)")
                tables[CHECKPOINT_TABLE] = False
            for name in needed:
                if name not in tables:
                    logger.warning("table %s is not in the replica: creating it", name)
                    executor.execute_statement(f"CREATE TABLE {quote(name)}")
                if not tables.get(name, False):
                    executor.execute_statement(
                        f"CREATE INDEX ON {quote(name)} ({quote(SOURCE_ID_FIELD)})"
                    )
                    tables[name] = True
            return tables

        self._tables = None
        self._tables = self._run(create, "creating tables and indexes", block=block)

    def _apply_block(self, executor: Any, block: BlockReplay, attempt: _Attempt) -> None:
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


# --- statements ---------------------------------------------------------------------------------


def _list_tables(executor: Any) -> dict[str, bool]:
    """Active user tables: name -> whether it has the source-id index."""
    rows = _rows(
        executor,
        "SELECT name, indexes FROM information_schema.user_tables WHERE status = 'ACTIVE'",
    )
    return {str(r["name"]): _has_source_index(r.get("indexes")) for r in rows}


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


def _user_tables(executor: Any, attempt: _Attempt) -> list[Any]:
    if attempt.user_tables is None:
        attempt.user_tables = _rows(
            executor, "SELECT name, tableId, status, indexes FROM information_schema.user_tables"
        )
    return attempt.user_tables


def _learn_table_ids(executor: Any, block: BlockReplay, attempt: _Attempt) -> None:
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


def _translate(executor: Any, block: BlockReplay, attempt: _Attempt, text: str) -> str:
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


def _has_source_index(indexes: Any) -> bool:
    if not isinstance(indexes, list):
        return False
    for index in indexes:
        expr = str(index.get("expr", "")) if isinstance(index, Mapping) else ""
        if SOURCE_ID_FIELD in expr:
            return True
    return False
