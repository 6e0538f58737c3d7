"""A small HTTP proxy (stdlib only, loopback) to put in front of osmem-server: it logs every
request, can add a fixed delay to each (an AWS-like network round trip) and injects faults.

Shipped in the package beside the osmem launcher (``buffer.opensearch_local``), like a testing
module: the OpenSearch tests, the reliability scenarios and ``make bench`` (requests per block and
per event, blocks/s at 5 ms a request) use it. The Lambdas never import it.

osmem-server cannot answer 429/503 or drop a connection on demand, so tests point the buffer at
this proxy and arm faults: each fault matches requests (method and a path substring), lets the
first ``skip`` matching requests through, then acts on the next ``times`` ones:

- an HTTP status (``"429"``, ``"503"``, ``"403"``...): answer it without forwarding (the server
  never sees the request);
- ``"drop"``: close the connection without forwarding (the request is lost);
- ``"lose-answer"``: forward the request, then close the connection without answering (the server
  applied it, the client does not know);
- ``"bulk-items-429"``: answer a bulk request 200 with every item refused 429
  (``es_rejected_execution_exception``, a full write queue), without forwarding it;
- ``"forward-first"``: forward only the first ``keep`` actions of a bulk request, then close the
  connection without answering (the server applied those, never saw the rest: a client that
  died part way through its writes, or a bulk request cut off mid-way).

A fault may also ask for the body to match (``when``, a predicate on the request body) and run a
hook once it acted (``then``, for ``forward-first``: called once the server applied the part and
before the connection is closed; the reliability campaign kills the settler there, between the
marks of one settle group).

``log`` lists every request with what happened to it, so a test can show its faults were hit
(and a benchmark can count requests by endpoint). ``delay_seconds`` (0 unless set, changeable
while running) is slept before each request is forwarded or answered.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

Action = str  # an HTTP status such as "429", or "drop", or "lose-answer"
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host", "upgrade"}


@dataclass(slots=True)
class Fault:
    action: Action
    path: str = ""
    method: str | None = None
    skip: int = 0
    times: int = 1
    seen: int = 0
    fired: int = 0
    keep: int = 0  # "forward-first": how many bulk actions are forwarded
    when: Callable[[bytes], bool] | None = None
    then: Callable[[], None] | None = None

    def take(self, method: str, path: str, body: bytes = b"") -> bool:
        if self.path not in path or (self.method is not None and method != self.method):
            return False
        if self.when is not None and not self.when(body):
            return False
        self.seen += 1
        if self.seen <= self.skip or self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass(slots=True)
class Entry:
    method: str
    path: str
    outcome: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    upstream_seconds: float = 0.0  # how long the server took to answer it (0: not forwarded)


@dataclass(slots=True)
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[Entry] = field(default_factory=list)
    delay_seconds: float = 0.0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def arm(
        self,
        action: Action,
        *,
        path: str = "",
        method: str | None = None,
        skip: int = 0,
        times: int = 1,
        keep: int = 0,
        when: Callable[[bytes], bool] | None = None,
        then: Callable[[], None] | None = None,
    ) -> Fault:
        fault = Fault(
            action=action,
            path=path,
            method=method,
            skip=skip,
            times=times,
            keep=keep,
            when=when,
            then=then,
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def disarm(self) -> None:
        with self._lock:
            self.faults.clear()

    def outcomes(self, outcome: str) -> list[Entry]:
        with self._lock:
            return [e for e in self.log if e.outcome == outcome]

    def kinds(self, since: int = 0) -> Counter[str]:
        """``METHOD _endpoint`` of every request logged after the first ``since`` (``doc`` for
        a request on a document or an index, without an ``_endpoint``)."""
        out: Counter[str] = Counter()
        with self._lock:
            entries = self.log[since:]
        for entry in entries:
            parts = [p for p in entry.path.split("?")[0].split("/") if p]
            out[f"{entry.method} {next((p for p in parts if p.startswith('_')), 'doc')}"] += 1
        return out

    def _decide(self, method: str, path: str, body: bytes = b"") -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.take(method, path, body):
                    return fault
        return None

    def _record(
        self,
        method: str,
        path: str,
        outcome: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        upstream_seconds: float = 0.0,
    ) -> None:
        entry = Entry(method, path, outcome, dict(headers or {}), body or b"", upstream_seconds)
        with self._lock:
            self.log.append(entry)

    def start(self) -> FaultProxy:
        upstream = urlsplit(self.upstream)
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall per answer
            _conn: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:
                pass

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if proxy.delay_seconds > 0:
                    time.sleep(proxy.delay_seconds)
                fault = proxy._decide(self.command, self.path, body or b"")
                action = fault.action if fault is not None else "forward"
                seen = dict(self.headers.items())
                if action == "forward-first":
                    assert fault is not None
                    part = first_actions(body or b"", fault.keep)
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP and k.lower() != "content-length"
                    }
                    status = self._forward(part, headers)[0]
                    proxy._record(self.command, self.path, f"forward-first:{status}", seen, part)
                    if fault.then is not None:
                        fault.then()
                    self._hang_up()
                    return
                if action.isdigit():
                    proxy._record(self.command, self.path, action, seen, body)
                    payload = (
                        b'{"error":{"type":"injected_fault","reason":"fault proxy"},"status":'
                        + action.encode()
                        + b"}"
                    )
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "bulk-items-429":
                    proxy._record(self.command, self.path, action, seen, body)
                    payload = _refused_items(body or b"")
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if action == "drop":
                    proxy._record(self.command, self.path, "drop", seen, body)
                    self._hang_up()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                started = time.perf_counter()
                status, reason, answer_headers, data = self._forward(body, headers)
                took = time.perf_counter() - started
                if action == "lose-answer":
                    proxy._record(
                        self.command,
                        self.path,
                        f"lose-answer:{status}",
                        seen,
                        body,
                        upstream_seconds=took,
                    )
                    self._hang_up()
                    return
                proxy._record(
                    self.command, self.path, f"forward:{status}", seen, body, upstream_seconds=took
                )
                self.send_response(status, reason)
                for k, v in answer_headers:
                    if k.lower() not in _HOP and k.lower() != "content-length":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(
                self, body: bytes | None, headers: dict[str, str]
            ) -> tuple[int, str, list[tuple[str, str]], bytes]:
                for attempt in range(2):
                    if self._conn is None:
                        self._conn = http.client.HTTPConnection(
                            upstream.hostname or "127.0.0.1", upstream.port, timeout=60
                        )
                    try:
                        self._conn.request(self.command, self.path, body=body, headers=headers)
                        answer = self._conn.getresponse()
                        data = answer.read()
                        return answer.status, answer.reason, answer.getheaders(), data
                    except (http.client.HTTPException, OSError):
                        self._conn.close()
                        self._conn = None
                        if attempt:
                            raise
                raise AssertionError("unreachable")

            def _hang_up(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="fault-proxy", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _refused_items(body: bytes) -> bytes:
    """A bulk answer refusing every action of ``body`` with 429, as a node whose write queue is
    full does (nothing applied)."""
    items = []
    lines = iter(line for line in body.decode().splitlines() if line.strip())
    for line in lines:
        action = json.loads(line)
        ((op, meta),) = action.items()
        if op != "delete":
            next(lines)  # its source
        items.append(
            {
                op: {
                    "_index": meta.get("_index"),
                    "_id": meta.get("_id"),
                    "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "injected"},
                }
            }
        )
    return json.dumps({"took": 1, "errors": True, "items": items}).encode()


def bulk_actions(body: bytes) -> list[tuple[dict[str, object], bytes]]:
    """The actions of a bulk body: each action's metadata and its lines (with its source, but
    for ``delete``), in order."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    out: list[tuple[dict[str, object], bytes]] = []
    i = 0
    while i < len(lines):
        meta = json.loads(lines[i])
        ((op, _),) = meta.items()
        n = 1 if op == "delete" else 2
        out.append((meta, b"\n".join(lines[i : i + n]) + b"\n"))
        i += n
    return out


def first_actions(body: bytes, keep: int) -> bytes:
    """The bulk body of the first ``keep`` actions of ``body``."""
    return b"".join(part for _, part in bulk_actions(body)[:keep])
