"""A local OpenSearch-compatible server for tests and local runs: osmem-server (PyPI
``osmem-server``, an in-memory OpenSearch API written in Go, no JVM) started as a subprocess on a
free loopback port.

Shipped in the package, like a testing module, so the contract suite, the adapter's tests and the
demo's test start the server the same way. osmem-server is a development dependency only; the
Lambdas never import this module.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runtime.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from buffer.opensearch import OpenSearchBuffer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LocalOpenSearch:
    """A running osmem-server; ``url`` is ``http://127.0.0.1:PORT``."""

    url: str
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, *, startup_timeout: float = 30.0) -> LocalOpenSearch:
        """Start osmem-server on ``127.0.0.1:0`` (the kernel picks a free port), read the address
        it reports, and wait until it answers ``GET /``."""
        try:
            from osmem_server import resolve_binary
        except ImportError:
            raise ConfigError(
                "osmem-server is not installed (it is in requirements/dev.txt)"
            ) from None
        args = [
            resolve_binary(),
            "--addr", "127.0.0.1:0",
            "--no-ja",
            "--parent-pid", str(os.getpid()),
        ]  # fmt: skip
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        ready: dict[str, str] = {}

        def read() -> None:
            assert process.stdout is not None
            with process.stdout:
                for line in process.stdout:
                    if ready:
                        continue  # keep draining, so the server never blocks on a full pipe

                    try:
                        message = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(message, dict) and "url" in message:
                        ready["url"] = str(message["url"])

        threading.Thread(target=read, name="osmem-stdout", daemon=True).start()
        deadline = time.monotonic() + startup_timeout
        while not ready and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
        if not ready:
            process.kill()
            process.wait()
            raise TransientError(f"osmem-server did not report its address in {startup_timeout} s")
        server = cls(url=ready["url"], process=process)
        server.wait_until_ready(deadline)
        log.info("osmem-server %d listening on %s", process.pid, server.url)
        return server

    def wait_until_ready(self, deadline: float) -> None:
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TransientError(f"osmem-server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.05)
        self.close()
        raise TransientError(f"osmem-server at {self.url} did not answer in time ({last})")

    def close(self) -> None:
        if self.process.poll() is not None:
            return
        if self.process.stdin is not None:
            self.process.stdin.close()  # osmem-server exits when its stdin closes
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


_shared: LocalOpenSearch | None = None
_lock = threading.Lock()


def shared_server() -> LocalOpenSearch:
    """One osmem-server per process, started on first use and stopped at exit (tests give each
    buffer its own index prefix on it)."""
    global _shared  # noqa: PLW0603
    with _lock:
        if _shared is None or _shared.process.poll() is not None:
            _shared = LocalOpenSearch.start()
            atexit.register(_shared.close)
        return _shared


def local_buffer(key: str | os.PathLike[str], **options: Any) -> OpenSearchBuffer:
    """An ``OpenSearchBuffer`` on the shared local server whose index prefix is derived from
    ``key`` (a directory, for the contract suite): the same key opens the same buffer, another key
    an independent one."""
    from buffer.opensearch import OpenSearchBuffer

    digest = hashlib.sha256(os.fsencode(os.path.abspath(key))).hexdigest()[:16]
    return OpenSearchBuffer.from_url(
        shared_server().url, index_prefix=f"qs-{digest}", auth="none", **options
    )
