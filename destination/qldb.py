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

The statements that replay one block inside the transaction are ``destination.qldb_replay``.
What replaying by statements means apart from QLDB (learning source table ids, matching a block's
revisions to the documents its statements wrote) is ``destination.statement_replay``, shared with
the embedded destination, as is the PartiQL text (``destination.partiql``), and the checkpoint
document's layout is ``destination.qldb_checkpoint``. What stays here changes with how QLDB is
driven through pyqldb: the driver, its retries and the mapping of its errors, the transaction's
compare-and-set, the tables and source-id indexes.

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from destination import port
from destination.partiql import created_table, quote
from destination.port import ApplyReport, BlockReplay, Checkpoint, Limits, StatementOp
from destination.qldb_checkpoint import CHECKPOINT_TABLE, is_null, read_checkpoint, write_checkpoint
from destination.qldb_replay import (
    SOURCE_ID_FIELD,
    Attempt,
    apply_block,
    list_tables,
    strip_source_id,
)
from journal.errors import ReplayError, SettleError
from runtime import deadline
from runtime.errors import CheckpointMismatch, ConfigError, TransientError

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True, slots=True, kw_only=True)
class QldbDocument:
    """A current document of the replica (internal tables and fields left out)."""

    table: str
    id: str
    source_id: str | None
    data: Any


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
        attempts: list[Attempt] = []

        def transaction(executor: Any) -> Attempt:
            attempt = Attempt()
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
                apply_block(executor, block, attempt)
            attempt.failing = (last.block_id, "writing the checkpoint")
            write_checkpoint(executor, new, apply_id, attempt.table_ids, exists=found is not None)
            attempt.failing = None
            return attempt

        done: Attempt = self._run(
            transaction, "applying blocks", attempts=attempts, block=blocks[0].block_id
        )
        # The run that committed is the last one that replayed the operations.
        ran = [a for a in attempts if not a.already_applied]
        committed = ran[-1] if ran else Attempt()
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
        attempts: list[Attempt] | None = None,
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
            self._tables = self._run(list_tables, "listing tables")
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
            tables = list_tables(executor)
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
