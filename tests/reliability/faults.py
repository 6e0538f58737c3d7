"""Fault injectors of the campaign, each a real mechanism acting from outside the process it hurts:

- ``WriteLock``: another process (this one) takes the SQLite buffer's write lock at a chosen
  instant and holds it longer than the buffer's busy timeout, as a stuck writer would;
- ``ReadOnly``: the buffer's database and ``-wal`` become immutable
  (``chattr +i``) at a chosen instant, so every write of the running process is refused by the
  kernel from then on, as on a volume remounted read-only; cleared afterwards (and at exit);
- ``paused``: ``SIGSTOP``/``SIGCONT`` of a server process (osmem-server stopped, then resumed);
- ``QldbFaultProxy``: a loopback proxy in front of ``serve-qldb`` that answers a chosen
  ``SendCommand`` with an OCC conflict (aborting the transaction upstream, as QLDB does), with
  503, loses a commit's answer after forwarding it, or drops the request. The OpenSearch buffer's
  faults use ``buffer.opensearch_proxy.FaultProxy`` (429/503/drop by path) instead.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

# --- SQLite ---------------------------------------------------------------------------------------


class WriteLock:
    """Hold the write lock of a SQLite database for ``hold`` seconds from a background thread.
    ``BEGIN IMMEDIATE`` waits (up to a minute) for the writer of the moment to commit, so the lock
    is taken between two of the victim's transactions, never inside one."""

    def __init__(self, db: Path, hold: float) -> None:
        self.db = db
        self.hold = hold
        self.acquired_at: float | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="chaos-write-lock", daemon=True)

    def start(self) -> WriteLock:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.db, timeout=60.0, isolation_level=None)
        except sqlite3.Error as exc:
            self.error = str(exc)
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            self.acquired_at = time.monotonic()
            time.sleep(self.hold)
            conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            self.error = str(exc)
        finally:
            conn.close()

    def join(self) -> None:
        self._thread.join()


_immutable: set[Path] = set()
_immutable_lock = threading.Lock()


def _chattr(flag: str, paths: Sequence[Path]) -> bool:
    if not paths:
        return True
    try:
        done = subprocess.run(
            ["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False
        )
    except OSError:
        return False
    return done.returncode == 0


def _clear_all() -> None:
    with _immutable_lock:
        paths = sorted(_immutable)
        _immutable.clear()
    _chattr("-i", [p for p in paths if p.exists()])


atexit.register(_clear_all)


def readonly_supported(probe_dir: Path) -> bool:
    """Whether ``chattr +i`` works here (root with CAP_LINUX_IMMUTABLE on a filesystem with
    inode flags) and is enforced on a descriptor opened before it."""
    probe = probe_dir / ".chaos-immutable-probe"
    probe.write_bytes(b"x")
    try:
        with probe.open("ab", buffering=0) as f:
            if not _chattr("+i", [probe]):
                return False
            try:
                f.write(b"y")
            except OSError:
                return True
            return False
    finally:
        _chattr("-i", [probe])
        probe.unlink(missing_ok=True)


class ReadOnly:
    """Make a SQLite database and its write-ahead log immutable until ``clear``: a running
    process's next write fails (EPERM: SQLite's I/O error), a process opening it gets it
    read-only. The ``-shm`` index stays writable: SQLite maps it into memory, and a store into a
    mapping of an immutable file is a SIGBUS (a crash, which ``kill -9`` covers), not an error."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.paths: list[Path] = []

    def set(self) -> bool:
        """True once the database and the siblings it has are immutable. A sibling (``-wal``,
        ``-journal``) that SQLite removes between the look and ``chattr`` fails the call: what
        was set is cleared and the files are looked at again."""
        for _ in range(5):
            paths = [p for p in (self.db, *_siblings(self.db)) if p.exists()]
            with _immutable_lock:
                _immutable.update(paths)
            self.paths = paths
            if _chattr("+i", paths):
                return True
            _chattr("-i", [p for p in paths if p.exists()])
        return False

    def clear(self) -> None:
        _chattr("-i", self.paths)
        with _immutable_lock:
            _immutable.difference_update(self.paths)


def _siblings(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-journal")]


# --- processes ------------------------------------------------------------------------------------


@contextlib.contextmanager
def paused(pid: int) -> Iterator[None]:
    """``SIGSTOP`` the process for the duration of the block, ``SIGCONT`` it after."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


# --- the QLDB Session API -------------------------------------------------------------------------

COMMANDS = (
    "StartSession",
    "StartTransaction",
    "ExecuteStatement",
    "FetchPage",
    "CommitTransaction",
    "AbortTransaction",
    "EndSession",
)
ERROR_NAMESPACE = "com.amazonaws.qldbsession"


@dataclass(slots=True)
class Rule:
    """Act on the matching ``command`` requests after letting ``skip`` of them through, ``times``
    times: ``occ`` (commits only), ``503``, ``lose-answer`` or ``drop``."""

    action: str
    command: str
    skip: int = 0
    times: int = 1
    seen: int = 0
    fired: int = 0

    def take(self, command: str) -> bool:
        if command != self.command:
            return False
        self.seen += 1
        if self.seen <= self.skip or self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass(slots=True)
class QldbFaultProxy:
    """A loopback HTTP proxy for the QLDB Session API (JSON 1.0 ``SendCommand``). ``upstream``
    may be changed while it runs (a restarted ``serve-qldb`` listens on a new port)."""

    upstream: str
    rules: list[Rule] = field(default_factory=list)
    fired: list[tuple[str, str]] = field(default_factory=list)
    requests: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def arm(self, action: str, command: str, *, skip: int = 0, times: int = 1) -> Rule:
        if command not in COMMANDS:
            raise ValueError(f"unknown QLDB command {command!r}")
        rule = Rule(action=action, command=command, skip=skip, times=times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def disarm(self) -> None:
        with self._lock:
            self.rules.clear()

    def _decide(self, command: str) -> str:
        with self._lock:
            self.requests[command] = self.requests.get(command, 0) + 1
            for rule in self.rules:
                if rule.take(command):
                    self.fired.append((rule.action, command))
                    return rule.action
        return "forward"

    def start(self) -> QldbFaultProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "content-length")
                }
                try:
                    request = json.loads(body or b"{}")
                except ValueError:
                    request = {}
                command = next((c for c in COMMANDS if c in request), "?")
                action = proxy._decide(command)
                if action == "drop":
                    self._hang_up()
                    return
                if action == "503":
                    self._answer(503, _error("CapacityExceededException", "injected by chaos"))
                    return
                if action == "occ" and command == "CommitTransaction":
                    # QLDB rejects the commit and the transaction is over: abort it upstream.
                    abort = {"SessionToken": request.get("SessionToken"), "AbortTransaction": {}}
                    with contextlib.suppress(OSError, http.client.HTTPException):
                        self._forward(json.dumps(abort).encode(), headers)
                    tx = request["CommitTransaction"].get("TransactionId", "?")
                    message = f"Transaction {tx} has been rejected because of an OCC conflict"
                    self._answer(400, _error("OccConflictException", message))
                    return
                try:
                    status, data, answer_headers = self._forward(body, headers)
                except (OSError, http.client.HTTPException):
                    self._hang_up()  # the upstream is down: so is the endpoint
                    return
                if action == "lose-answer":
                    self._hang_up()
                    return
                self._answer(status, data, answer_headers)

            def _forward(
                self, body: bytes, headers: dict[str, str]
            ) -> tuple[int, bytes, list[tuple[str, str]]]:
                up = urlsplit(proxy.upstream)
                conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port, timeout=60)
                try:
                    conn.request("POST", self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    return answer.status, answer.read(), answer.getheaders()
                finally:
                    conn.close()

            def _answer(
                self, status: int, data: bytes, headers: list[tuple[str, str]] | None = None
            ) -> None:
                self.send_response(status)
                skip = ("content-length", "connection", "transfer-encoding", "date", "server")
                for k, v in headers or [("Content-Type", "application/x-amz-json-1.0")]:
                    if k.lower() not in skip:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="qldb-fault-proxy", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _error(code: str, message: str) -> bytes:
    return json.dumps({"__type": f"{ERROR_NAMESPACE}#{code}", "Message": message}).encode()
