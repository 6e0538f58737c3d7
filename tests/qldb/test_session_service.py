"""The Session API state machine in process (``QldbSessionService``) over a real embedded ledger
file, with an injected clock for QLDB's time limits (30 s per transaction, a session lifetime)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from journal.hashes import dot
from ledger.qldb_http import SessionServer
from ledger.session_server import (
    QldbSessionService,
    SessionApiError,
    SingleLedger,
    statement_hash,
    string_hash,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(tmp_path: Path, clock: Clock) -> Iterator[QldbSessionService]:
    from ledger import EmbeddedLedger

    led = EmbeddedLedger(tmp_path / "ledger.db", ledger_name="svc")
    svc = QldbSessionService(SingleLedger(led), clock=clock, session_lifetime=900.0)
    yield svc
    svc.close()
    led.close()


def send(svc: QldbSessionService, **command: Any) -> dict[str, Any]:
    (name,) = [k for k in command if k != "SessionToken"]
    answer: dict[str, Any] = svc.send_command(command, "request-id-0000000000")[name]
    return answer


def start(svc: QldbSessionService) -> str:
    token: str = send(svc, StartSession={"LedgerName": "svc"})["SessionToken"]
    return token


def begin(svc: QldbSessionService, token: str) -> str:
    tx_id: str = send(svc, SessionToken=token, StartTransaction={})["TransactionId"]
    return tx_id


def refused(code: str, svc: QldbSessionService, **command: Any) -> str:
    with pytest.raises(SessionApiError) as err:
        svc.send_command(command, "request-id-0000000000")
    assert err.value.code == code
    return err.value.message


def test_a_transaction_expires_after_30_seconds_and_takes_its_session(
    service: QldbSessionService, clock: Clock
) -> None:
    token = start(service)
    tx = begin(service, token)
    send(
        service,
        SessionToken=token,
        ExecuteStatement={"TransactionId": tx, "Statement": "CREATE TABLE A"},
    )
    clock.now += 30.5
    message = refused(
        "InvalidSessionException",
        service,
        SessionToken=token,
        ExecuteStatement={"TransactionId": tx, "Statement": "CREATE TABLE B"},
    )
    assert message == f"Transaction {tx} has expired"
    # QLDB discards the session with it.
    assert refused("InvalidSessionException", service, SessionToken=token, StartTransaction={}) == (
        "No such session"
    )


def test_a_session_expires_after_its_lifetime(service: QldbSessionService, clock: Clock) -> None:
    token = start(service)
    begin(service, token)
    send(service, SessionToken=token, AbortTransaction={})
    clock.now += 901
    message = refused("InvalidSessionException", service, SessionToken=token, StartTransaction={})
    assert message.startswith("Session ") and message.endswith(" has expired")


def test_transaction_rules(service: QldbSessionService) -> None:
    token = start(service)
    # Aborting with nothing open succeeds (the driver aborts after any failure).
    assert set(send(service, SessionToken=token, AbortTransaction={})) == {"TimingInformation"}
    assert (
        refused(
            "BadRequestException",
            service,
            SessionToken=token,
            ExecuteStatement={"TransactionId": "A" * 22, "Statement": "SELECT * FROM x"},
        )
        == "No open transaction"
    )
    tx = begin(service, token)
    assert refused("BadRequestException", service, SessionToken=token, StartTransaction={}) == (
        "Transaction already open"
    )
    assert "not the open transaction" in refused(
        "BadRequestException",
        service,
        SessionToken=token,
        ExecuteStatement={"TransactionId": "B" * 22, "Statement": "CREATE TABLE X"},
    )
    assert "Exactly one command" in refused(
        "BadRequestException", service, SessionToken=token, StartTransaction={}, EndSession={}
    )
    # The digest covers exactly what the server received: a commit with it lands.
    send(
        service,
        SessionToken=token,
        ExecuteStatement={"TransactionId": tx, "Statement": "CREATE TABLE X"},
    )
    digest = dot(string_hash(tx), statement_hash("CREATE TABLE X", []))
    done = send(
        service,
        SessionToken=token,
        CommitTransaction={"TransactionId": tx, "CommitDigest": base64.b64encode(digest).decode()},
    )
    assert base64.b64decode(done["CommitDigest"]) == digest
    assert service.counters["commits"] == 1


def test_the_commit_digest_matches_pyqldb(service: QldbSessionService) -> None:
    from amazon.ion import simpleion
    from pyqldb.util.qldb_hash import QldbHash

    params = [{"a": 1, "when": simpleion.loads("2024-01-02T03:04:05.678Z")}, "x"]
    theirs = QldbHash.to_qldb_hash("INSERT INTO T ?")
    for p in params:
        theirs = theirs.dot(QldbHash.to_qldb_hash(simpleion.loads(simpleion.dumps(p))))
    ours = statement_hash("INSERT INTO T ?", [simpleion.loads(simpleion.dumps(p)) for p in params])
    assert ours == theirs.get_qldb_hash()
    assert (
        string_hash("2EOkysIJqfFACzE3TLlbY8")
        == QldbHash.to_qldb_hash("2EOkysIJqfFACzE3TLlbY8").get_qldb_hash()
    )


def test_http_edges(service: QldbSessionService) -> None:
    server = SessionServer(service)
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:

        def post(target: str, body: bytes) -> tuple[int, dict[str, Any], str]:
            req = urllib.request.Request(
                server.url + "/",
                data=body,
                headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.0"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read()), r.headers["x-amzn-RequestId"]
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read()), e.headers["x-amzn-RequestId"]

        status, body, rid = post(
            "QLDBSession.SendCommand", b'{"StartSession": {"LedgerName": "svc"}}'
        )
        assert status == 200 and "SessionToken" in body["StartSession"] and len(rid) == 22
        status, body, _ = post("QLDBSession.Other", b"{}")
        assert (status, body["__type"]) == (
            400,
            "com.amazonaws.qldbsession#UnknownOperationException",
        )
        status, body, _ = post("QLDBSession.SendCommand", b"not json")
        assert (status, body["__type"]) == (400, "com.amazonaws.qldbsession#SerializationException")
        status, body, _ = post(
            "QLDBSession.SendCommand", b'{"StartSession": {"LedgerName": "-bad-"}}'
        )
        assert (status, body["__type"]) == (400, "com.amazonaws.qldbsession#BadRequestException")
    finally:
        server.shutdown()
        server.server_close()


def test_connections_have_tcp_nodelay_and_loopback_is_the_default(
    service: QldbSessionService,
) -> None:
    import socket
    import threading

    seen: list[int] = []

    class Watching(SessionServer):
        def finish_request(self, request: Any, client_address: Any) -> None:
            super().finish_request(request, client_address)
            seen.append(request.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    server = Watching(service)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        req = urllib.request.Request(
            server.url + "/",
            data=b'{"StartSession": {"LedgerName": "svc"}}',
            headers={"X-Amz-Target": "QLDBSession.SendCommand", "Connection": "close"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert seen and all(v != 0 for v in seen)


def _on_a_new_thread(call: Any) -> Any:
    import threading

    out: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # re-raised on the test's thread
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]
    return out[0]


def test_one_transaction_served_by_several_threads_commits_and_its_reads_are_checked(
    service: QldbSessionService,
) -> None:
    # Issue 14: engine calls run on the HTTP thread that got the command (no hand-off to a
    # thread of the session's own), so a driver's commands for one transaction arrive on
    # different threads, each reading through its own SQLite connection.
    token = start(service)
    setup = begin(service, token)
    texts = ["CREATE TABLE T", "INSERT INTO T {'k': 1}"]
    digest = string_hash(setup)
    for text in texts:
        send(
            service,
            SessionToken=token,
            ExecuteStatement={"TransactionId": setup, "Statement": text},
        )
        digest = dot(digest, statement_hash(text, []))
    commit = {"TransactionId": setup, "CommitDigest": base64.b64encode(digest).decode()}
    send(service, SessionToken=token, CommitTransaction=commit)

    def transaction(token: str, texts: list[str]) -> tuple[str, bytes]:
        tx = _on_a_new_thread(lambda: begin(service, token))
        digest = string_hash(tx)
        for text in texts:
            command = {"TransactionId": tx, "Statement": text}
            _on_a_new_thread(partial(send, service, SessionToken=token, ExecuteStatement=command))
            digest = dot(digest, statement_hash(text, []))
        return tx, digest

    reader, other = start(service), start(service)
    read_tx, read_digest = transaction(reader, ["UPDATE T AS t SET t.k = 2 WHERE t.k = 1"])
    write_tx, write_digest = transaction(other, ["UPDATE T AS t SET t.k = 3 WHERE t.k = 1"])
    done = {"TransactionId": write_tx, "CommitDigest": base64.b64encode(write_digest).decode()}
    _on_a_new_thread(lambda: send(service, SessionToken=other, CommitTransaction=done))
    # The reader's read was changed after it read: its commit, from yet another thread, fails.
    late = {"TransactionId": read_tx, "CommitDigest": base64.b64encode(read_digest).decode()}
    _on_a_new_thread(
        lambda: refused(
            "OccConflictException", service, SessionToken=reader, CommitTransaction=late
        )
    )
    assert service.counters["occ_conflicts"] == 1 and service.counters["commits"] == 2
