"""A local endpoint of the QLDB Session API, backed by the embedded ledger.

QLDB reached end of support and current SDKs dropped its API; this server speaks the API exactly as
botocore 1.40.60's ``qldb-session`` model defines it (JSON 1.0, ``X-Amz-Target:
QLDBSession.SendCommand``), so that any pyqldb program runs unchanged against an embedded ledger
file. What it implements (docs/qldb.md lists the limits):

- StartSession, StartTransaction (22-character base62 transaction ids), ExecuteStatement (Ion
  parameters in, Ion binary values out, paged by ``NextPageToken``), FetchPage, CommitTransaction,
  AbortTransaction, EndSession; ``TimingInformation`` and ``ConsumedIOs`` on every answer that has
  them.
- The commit digest is checked the way QLDB checks it: the Ion hash of the transaction id, dotted
  with the hash of every statement the server received (the statement's Ion hash dotted with the
  Ion hash of each parameter). A wrong digest is refused with ``BadRequestException: Digests don't
  match`` and nothing is committed.
- Engine errors become QLDB's: an OCC conflict at commit is ``OccConflictException`` (pyqldb
  retries it); a statement the engine refuses, or a transaction over QLDB's limits, is
  ``BadRequestException``; an unknown or expired session is ``InvalidSessionException``; a
  transaction older than 30 seconds has expired (``InvalidSessionException``, the session is
  discarded, as QLDB does).
- Signatures are not verified: any SigV4 credentials are accepted.

The HTTP side is ``ledger.qldb_http``; which ledger a name opens, ``ledger.ledger_catalog``.

A session's engine calls run on the HTTP thread that received the command, one command at a
time (the session's lock): an embedded ledger transaction may be used from one thread, then from
another (each thread reads through its own SQLite connection; the commit validates every read
optimistically on the committing thread's), so nothing is handed to a thread of the session's
own. Such a hand-off cost a thread wake-up per command, about a millisecond on a busy machine,
for every command the driver sends (issue 14).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from journal.hashes import dot
from journal.ion_binary import decode, encode
from ledger.hashing import ion_hash, statement_digest
from ledger.ledger_catalog import LedgerDirectory, SingleLedger, UnknownLedger

logger = logging.getLogger(__name__)

TARGET = "QLDBSession.SendCommand"
CONTENT_TYPE = "application/x-amz-json-1.0"
ERROR_NAMESPACE = "com.amazonaws.qldbsession"
COMMANDS = (
    "StartSession",
    "StartTransaction",
    "ExecuteStatement",
    "FetchPage",
    "CommitTransaction",
    "AbortTransaction",
    "EndSession",
)
# QLDB: a transaction may run 30 seconds before it is committed; a session lives 13-17 minutes.
TRANSACTION_TIMEOUT_SECONDS = 30.0
SESSION_LIFETIME_SECONDS = 15 * 60.0
PAGE_VALUES = 200
PAGE_BYTES = 1 << 20
_LEDGER_NAME = re.compile(r"(?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]+$")
_T = TypeVar("_T")


class LedgerTransaction(Protocol):
    id: str  # the Session API's TransactionId (QLDB's metadata.txId of what it writes)

    def execute(self, statement: str, *params: Any) -> list[Any]: ...

    def commit(self) -> Any: ...

    def abort(self) -> None: ...


class Ledger(Protocol):
    """What the server needs of a ledger: ``EmbeddedLedger`` is one."""

    def begin(self) -> LedgerTransaction: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorMapping:
    """Which engine exceptions become which QLDB errors. The defaults are the embedded ledger's."""

    occ_conflict: tuple[type[BaseException], ...]
    bad_request: tuple[type[BaseException], ...]

    @classmethod
    def embedded(cls) -> ErrorMapping:
        from ledger import LimitExceeded, OccConflict, StatementError

        return cls(occ_conflict=(OccConflict,), bad_request=(StatementError, LimitExceeded))


class SessionApiError(Exception):
    """A QLDB Session API error answer: its ``__type`` code, message and HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        self.code = code
        self.message = message
        self.status = status
        super().__init__(f"{code}: {message}")

    def body(self) -> dict[str, str]:
        return {"__type": f"{ERROR_NAMESPACE}#{self.code}", "Message": self.message}


def _bad_request(message: str) -> SessionApiError:
    return SessionApiError("BadRequestException", message)


def _invalid_session(message: str) -> SessionApiError:
    return SessionApiError("InvalidSessionException", message)


def string_hash(text: str) -> bytes:
    """The Ion hash of a string (a transaction id starts the commit digest)."""
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyText

    value = IonPyText(text)
    value.ion_type = IonType.STRING
    return ion_hash(value)


def statement_hash(statement: str, params: Sequence[Any]) -> bytes:
    """QLDB's statement hash: the statement's Ion hash dotted with each parameter's Ion hash."""
    return statement_digest(statement, params)


def _new_token(nbytes: int = 36) -> str:
    return base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


@dataclass(slots=True)
class _Transaction:
    id: str
    engine: LedgerTransaction
    started: float
    digest: bytes
    pages: dict[str, list[bytes]] = field(default_factory=dict)
    read_ios: int = 0
    write_ios: int = 0


@dataclass(slots=True)
class _Session:
    id: str
    token: str
    ledger_name: str
    ledger: Ledger
    started: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    transaction: _Transaction | None = None
    ended: bool = False

    def run(self, fn: Callable[[], _T]) -> _T:
        """One engine call of this session (the caller holds ``lock``)."""
        return fn()


class LedgerResolver(Protocol):
    """Which ledger a session's ``LedgerName`` opens (``ledger.ledger_catalog``); raises
    ``UnknownLedger`` for none."""

    def __call__(self, name: str) -> Ledger: ...


class QldbSessionService:
    """The Session API's state machine, independent of HTTP. ``ledgers`` resolves a session's
    ledger name (``SingleLedger``, ``LedgerDirectory``); ``clock`` is monotonic, in seconds."""

    def __init__(
        self,
        ledgers: LedgerResolver,
        *,
        errors: ErrorMapping | None = None,
        clock: Callable[[], float] = time.monotonic,
        transaction_timeout: float = TRANSACTION_TIMEOUT_SECONDS,
        session_lifetime: float = SESSION_LIFETIME_SECONDS,
        page_values: int = PAGE_VALUES,
        page_bytes: int = PAGE_BYTES,
    ) -> None:
        self._ledgers = ledgers
        self._errors = errors or ErrorMapping.embedded()
        self._clock = clock
        self._transaction_timeout = transaction_timeout
        self._session_lifetime = session_lifetime
        self._page_values = page_values
        self._page_bytes = page_bytes
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self.counters: dict[str, int] = dict.fromkeys(COMMANDS, 0)
        self.counters.update(commits=0, occ_conflicts=0, digest_mismatches=0)

    # --- dispatch -------------------------------------------------------------------------------

    def send_command(self, request: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        """Run one ``SendCommand`` request; raise ``SessionApiError`` for an error answer."""
        if not isinstance(request, Mapping):
            raise SessionApiError("SerializationException", "The request body is not a JSON object")
        commands = [name for name in COMMANDS if name in request]
        if len(commands) != 1:
            raise _bad_request(
                "Exactly one command is required per request, got "
                + (", ".join(commands) if commands else "none")
            )
        name = commands[0]
        body = request[name]
        if not isinstance(body, Mapping):
            raise SessionApiError("SerializationException", f"{name} is not a JSON object")
        self.counters[name] += 1
        start = time.perf_counter()
        if name == "StartSession":
            result = self._start_session(body, request_id)
        else:
            session = self._session(request.get("SessionToken"))
            with session.lock:
                result = self._in_session(session, name, body)
        elapsed_ms = round((time.perf_counter() - start) * 1000)
        result["TimingInformation"] = {"ProcessingTimeMilliseconds": elapsed_ms}
        return {name: result}

    def _in_session(self, session: _Session, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if session.ended:
            raise _invalid_session("No such session")
        self._expire_transaction(session)
        if name == "StartTransaction":
            return self._start_transaction(session)
        if name == "ExecuteStatement":
            return self._execute_statement(session, body)
        if name == "FetchPage":
            return self._fetch_page(session, body)
        if name == "CommitTransaction":
            return self._commit(session, body)
        if name == "AbortTransaction":
            return self._abort(session)
        return self._end_session(session)

    # --- sessions -------------------------------------------------------------------------------

    def _start_session(self, body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
        name = body.get("LedgerName")
        if not isinstance(name, str) or not 1 <= len(name) <= 32 or not _LEDGER_NAME.match(name):
            raise _bad_request(f"LedgerName is not a valid ledger name: {name!r}")
        try:
            ledger = self._ledgers(name)
        except UnknownLedger as exc:
            raise _bad_request(str(exc)) from None
        self._reap()
        session = _Session(
            id=request_id,
            token=_new_token(),
            ledger_name=name,
            ledger=ledger,
            started=self._clock(),
        )
        with self._lock:
            self._sessions[session.token] = session
        logger.debug("session %s started on ledger %s", session.id, name)
        return {"SessionToken": session.token}

    def _session(self, token: Any) -> _Session:
        if not isinstance(token, str) or not token:
            raise _bad_request("SessionToken is required for every command but StartSession")
        with self._lock:
            session = self._sessions.get(token)
        if session is None:
            raise _invalid_session("No such session")
        if self._clock() - session.started > self._session_lifetime:
            self._discard(session)
            raise _invalid_session(f"Session {session.id} has expired")
        return session

    def _end_session(self, session: _Session) -> dict[str, Any]:
        self._discard(session)
        return {}

    def _discard(self, session: _Session) -> None:
        with self._lock:
            self._sessions.pop(session.token, None)
        if session.ended:
            return
        session.ended = True
        tx = session.transaction
        session.transaction = None
        if tx is not None:
            self._abort_engine(session, tx)

    def _reap(self) -> None:
        """Discard sessions past their lifetime (QLDB forgets them too)."""
        now = self._clock()
        with self._lock:
            old = [s for s in self._sessions.values() if now - s.started > self._session_lifetime]
        for s in old:
            if s.lock.acquire(blocking=False):
                try:
                    self._discard(s)
                finally:
                    s.lock.release()

    def close(self) -> None:
        """Abort every open transaction and end every session."""
        with self._lock:
            sessions = list(self._sessions.values())
        for s in sessions:
            with s.lock:
                self._discard(s)

    # --- transactions ---------------------------------------------------------------------------

    def _expire_transaction(self, session: _Session) -> None:
        tx = session.transaction
        if tx is not None and self._clock() - tx.started > self._transaction_timeout:
            self._discard(session)
            raise _invalid_session(f"Transaction {tx.id} has expired")

    def _start_transaction(self, session: _Session) -> dict[str, Any]:
        if session.transaction is not None:
            raise _bad_request("Transaction already open")
        engine = session.run(session.ledger.begin)
        tx_id = engine.id  # the id its documents' metadata.txId and TXID() give, as in QLDB
        session.transaction = _Transaction(
            id=tx_id, engine=engine, started=self._clock(), digest=string_hash(tx_id)
        )
        return {"TransactionId": tx_id}

    def _open(self, session: _Session, body: Mapping[str, Any]) -> _Transaction:
        tx = session.transaction
        if tx is None:
            raise _bad_request("No open transaction")
        tx_id = body.get("TransactionId")
        if tx_id != tx.id:
            raise _bad_request(f"Transaction {tx_id} is not the open transaction of this session")
        return tx

    def _execute_statement(self, session: _Session, body: Mapping[str, Any]) -> dict[str, Any]:
        tx = self._open(session, body)
        statement = body.get("Statement")
        if not isinstance(statement, str) or not statement:
            raise _bad_request("Statement is required")
        raw = body.get("Parameters") or []
        if not isinstance(raw, list):
            raise _bad_request("Parameters is not a list")
        params = [_from_value_holder(h, i) for i, h in enumerate(raw)]
        # The server's digest covers what it received, in order, executed or not (QLDB's rule:
        # commit iff the server processed exactly the statements the client sent).
        tx.digest = dot(tx.digest, statement_hash(statement, params))
        try:
            values = session.run(lambda: tx.engine.execute(statement, *params))
        except self._errors.bad_request as exc:
            raise _bad_request(str(exc)) from exc
        except self._errors.occ_conflict as exc:
            self._close_transaction(session, tx)
            self.counters["occ_conflicts"] += 1
            raise _occ(tx.id, exc) from exc
        encoded = [encode(v) for v in values]
        writes = _written_documents(statement, values)
        reads = 0 if writes else len(values)
        tx.read_ios += reads
        tx.write_ios += writes
        return {
            "FirstPage": self._page(tx, encoded),
            "ConsumedIOs": {"ReadIOs": reads, "WriteIOs": writes},
        }

    def _page(self, tx: _Transaction, encoded: list[bytes]) -> dict[str, Any]:
        count, size = 0, 0
        while count < len(encoded) and count < self._page_values:
            size += len(encoded[count])
            if count and size > self._page_bytes:
                break
            count += 1
        page: dict[str, Any] = {
            "Values": [{"IonBinary": base64.b64encode(b).decode("ascii")} for b in encoded[:count]]
        }
        if count < len(encoded):
            token = _new_token(18)
            tx.pages[token] = encoded[count:]
            page["NextPageToken"] = token
        return page

    def _fetch_page(self, session: _Session, body: Mapping[str, Any]) -> dict[str, Any]:
        tx = self._open(session, body)
        token = body.get("NextPageToken")
        rest = tx.pages.pop(token, None) if isinstance(token, str) else None
        if rest is None:
            raise _bad_request(f"NextPageToken {token!r} is not a page of this transaction")
        return {"Page": self._page(tx, rest), "ConsumedIOs": {"ReadIOs": 0, "WriteIOs": 0}}

    def _commit(self, session: _Session, body: Mapping[str, Any]) -> dict[str, Any]:
        tx = self._open(session, body)
        digest = _blob(body.get("CommitDigest"), "CommitDigest")
        if digest != tx.digest:
            self._close_transaction(session, tx)
            self.counters["digest_mismatches"] += 1
            raise _bad_request("Digests don't match")
        session.transaction = None
        try:
            session.run(tx.engine.commit)
        except self._errors.occ_conflict as exc:
            self._abort_engine(session, tx)
            self.counters["occ_conflicts"] += 1
            raise _occ(tx.id, exc) from exc
        except self._errors.bad_request as exc:
            self._abort_engine(session, tx)
            raise _bad_request(str(exc)) from exc
        self.counters["commits"] += 1
        return {
            "TransactionId": tx.id,
            "CommitDigest": base64.b64encode(tx.digest).decode("ascii"),
            "ConsumedIOs": {"ReadIOs": tx.read_ios, "WriteIOs": tx.write_ios},
        }

    def _abort(self, session: _Session) -> dict[str, Any]:
        # QLDB answers an abort with no open transaction with success: the driver aborts after
        # every failure, including one whose transaction is already gone.
        tx = session.transaction
        if tx is not None:
            self._close_transaction(session, tx)
        return {}

    def _close_transaction(self, session: _Session, tx: _Transaction) -> None:
        session.transaction = None
        self._abort_engine(session, tx)

    def _abort_engine(self, session: _Session, tx: _Transaction) -> None:
        try:
            session.run(tx.engine.abort)
        except Exception:
            logger.warning("aborting transaction %s failed", tx.id, exc_info=True)


def _occ(tx_id: str, exc: BaseException) -> SessionApiError:
    return SessionApiError(
        "OccConflictException",
        f"Transaction {tx_id} has been rejected because of an OCC conflict: {exc}",
    )


def _blob(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise _bad_request(f"{name} is required")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad_request(f"{name} is not base64") from None


def _from_value_holder(holder: Any, index: int) -> Any:
    if not isinstance(holder, Mapping):
        raise _bad_request(f"Parameters[{index}] is not a ValueHolder")
    try:
        if "IonBinary" in holder:
            return decode(_blob(holder["IonBinary"], f"Parameters[{index}].IonBinary"))
        if "IonText" in holder and isinstance(holder["IonText"], str):
            from amazon.ion import simpleion

            return simpleion.loads(holder["IonText"])
    except SessionApiError:
        raise
    except Exception as exc:
        raise _bad_request(f"Parameters[{index}] is not a single Ion value: {exc}") from None
    raise _bad_request(f"Parameters[{index}] has neither IonBinary nor IonText")


def _written_documents(statement: str, values: Sequence[Any]) -> int:
    head = statement.lstrip()[:6].upper()
    if head in ("INSERT", "UPDATE", "DELETE") or head.startswith("FROM"):
        return sum(1 for v in values if isinstance(v, Mapping) and "documentId" in v)
    return 0


__all__ = [
    "CONTENT_TYPE",
    "TARGET",
    "ErrorMapping",
    "LedgerDirectory",
    "QldbSessionService",
    "SessionApiError",
    "SingleLedger",
]
