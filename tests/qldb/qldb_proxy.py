"""A loopback HTTP proxy in front of ``serve-qldb`` that can lose the answer to a commit: it
forwards the ``CommitTransaction`` request (so the commit lands) and then closes the client's
connection without answering, as a network that fails between commit and answer does."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LossyProxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy = self.server
        upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request("POST", self.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        upstream.close()
        if b'"CommitTransaction"' in body and proxy.take_drop():
            # The commit reached the ledger; its answer never reaches the client.
            self.close_connection = True
            return
        self.send_response(answer.status)
        for k, v in answer.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class LossyProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self._drops = 0
        self._nth: int | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def drop_commit_answers(self, n: int) -> None:
        with self._lock:
            self._drops = n

    def drop_nth_commit_answer(self, n: int) -> None:
        """Lose the answer to the n-th commit from now (1: the next one), and only that one."""
        with self._lock:
            self._nth = n

    def take_drop(self) -> bool:
        with self._lock:
            if self._nth is not None:
                self._nth -= 1
                if self._nth > 0:
                    return False
                self._nth = None
            elif self._drops <= 0:
                return False
            else:
                self._drops -= 1
            self.dropped += 1
            return True

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
