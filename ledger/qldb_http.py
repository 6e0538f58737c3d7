"""The HTTP server of ``serve-qldb``: the QLDB Session API and the ``qldb`` control plane on one
port.

A request with ``X-Amz-Target: QLDBSession.SendCommand`` goes to the session service
(``ledger.session_server``, JSON 1.0, what pyqldb sends); a request under ``/ledgers`` goes to
the control plane (``ledger.control_plane``, REST JSON, what boto3's ``qldb`` client sends), so
one URL serves as both ``AWS_ENDPOINT_URL_QLDB_SESSION`` and ``AWS_ENDPOINT_URL_QLDB``. Anything
else is ``UnknownOperationException``.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import string
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ledger.control_plane import ControlPlaneError, QldbControlPlane
from ledger.session_server import CONTENT_TYPE, TARGET, QldbSessionService, SessionApiError

logger = logging.getLogger(__name__)

_BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SessionServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _body(self, request_id: str) -> bytes | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            error = SessionApiError("BadRequestException", "Content-Length is missing or invalid")
            self._reply(400, error.body(), request_id)
            return None
        return self.rfile.read(length)

    def do_POST(self) -> None:
        request_id = _new_request_id()
        raw = self._body(request_id)
        if raw is None:
            return
        target = self.headers.get("X-Amz-Target", "")
        if not target and self._control(request_id, raw):
            return
        if target != TARGET:
            error = SessionApiError("UnknownOperationException", f"Unknown operation {target!r}")
            self._reply(400, error.body(), request_id)
            return
        try:
            request = json.loads(raw or b"{}")
            answer = self.server.service.send_command(request, request_id)
        except json.JSONDecodeError as exc:
            error = SessionApiError("SerializationException", f"The body is not JSON: {exc}")
            self._reply(400, error.body(), request_id)
        except SessionApiError as exc:
            logger.debug("%s: %s", request_id, exc)
            self._reply(exc.status, exc.body(), request_id)
        except Exception as exc:
            logger.exception("internal error on request %s", request_id)
            error = SessionApiError("InternalFailure", f"{type(exc).__name__}: {exc}", 500)
            self._reply(500, error.body(), request_id)
        else:
            self._reply(200, answer, request_id)

    def _control(self, request_id: str, raw: bytes) -> bool:
        """Answer a control plane request (False: the path is not the control plane's)."""
        control = self.server.control
        if control is None or not control.handles(self.path):
            return False
        try:
            body = json.loads(raw or b"{}")
            if not isinstance(body, Mapping):
                raise ControlPlaneError("SerializationException", "the body is not an object", 400)
            status, answer = control.handle(self.command, self.path, body)
        except json.JSONDecodeError as exc:
            error = ControlPlaneError("SerializationException", f"The body is not JSON: {exc}", 400)
            self._reply(400, error.body(), request_id, error.code)
        except ControlPlaneError as exc:
            self._reply(exc.status, exc.body(), request_id, exc.code)
        except Exception as exc:
            logger.exception("internal error on request %s", request_id)
            error = ControlPlaneError("InternalFailure", f"{type(exc).__name__}: {exc}", 500)
            self._reply(500, error.body(), request_id, error.code)
        else:
            self._reply(status, answer, request_id)
        return True

    def _other(self) -> None:
        request_id = _new_request_id()
        raw = self._body(request_id)
        if raw is None or self._control(request_id, raw):
            return
        error = SessionApiError("UnknownOperationException", "The QLDB Session API is POST /")
        self._reply(400, error.body(), request_id)

    do_GET = _other
    do_PATCH = _other
    do_DELETE = _other

    def _reply(
        self, status: int, body: Mapping[str, Any], request_id: str, error: str | None = None
    ) -> None:
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", request_id)
        if error is not None:
            self.send_header("x-amzn-ErrorType", error)
        self.end_headers()
        self.wfile.write(data)


def _new_request_id() -> str:
    return "".join(secrets.choice(_BASE62) for _ in range(22))


class SessionServer(ThreadingHTTPServer):
    """The HTTP server of the Session API (and of the control plane when ``control`` is given).
    ``url`` is where it listens."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        service: QldbSessionService,
        host: str = "127.0.0.1",
        port: int = 0,
        control: QldbControlPlane | None = None,
    ) -> None:
        self.service = service
        self.control = control
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        address = self.server_address
        raw = address[0]
        host = raw.decode() if isinstance(raw, bytes) else str(raw)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{address[1]}"

    def server_close(self) -> None:
        super().server_close()
        self.service.close()
