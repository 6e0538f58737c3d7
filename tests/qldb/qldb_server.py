"""``serve-qldb`` as a real subprocess for tests: start one, stop one, and one shared per test
process (serving a folder of ledgers, so every test gets a fresh ledger by name). The contract
suite (tests/contract) uses the shared one too."""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Served:
    url: str
    root: Path
    process: subprocess.Popen[str]

    def ledger_file(self, name: str) -> Path:
        return self.root / f"{name}.db"


def start_serve_qldb(ledger: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``qldb-settle serve-qldb`` and return it with the URL it printed."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "qldb_settle.cli", "serve-qldb", "--ledger", ledger, *extra],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        url = lines.get(timeout=60).strip()
    except queue.Empty:
        proc.kill()
        raise RuntimeError("serve-qldb printed no URL within 60 seconds") from None
    if not url.startswith("http://"):
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"serve-qldb did not start: {url!r} {err}")
    return proc, url


def stop(proc: subprocess.Popen[str]) -> str:
    """Stop the server (SIGTERM, as an operator would) and return its stderr."""
    if proc.poll() is not None:
        return proc.stderr.read() if proc.stderr else ""
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


class _Shared:
    served: Served | None = None
    lock = threading.Lock()


def shared_served() -> Served:
    """The test process's ``serve-qldb`` over a temporary folder of ledgers, started on first
    use and stopped when the process exits (or by ``stop_shared``)."""
    with _Shared.lock:
        served = _Shared.served
        if served is None or served.process.poll() is not None:
            root = Path(tempfile.mkdtemp(prefix="qldb-ledgers-"))
            proc, url = start_serve_qldb(f"embedded:{root}{os.sep}")
            served = _Shared.served = Served(url=url, root=root, process=proc)
            atexit.register(stop_shared)
        return served


def stop_shared() -> None:
    """Stop the shared server and remove its folder of ledgers."""
    with _Shared.lock:
        served, _Shared.served = _Shared.served, None
    if served is not None:
        stop(served.process)
        shutil.rmtree(served.root, ignore_errors=True)


def fresh_ledger_name(prefix: str = "t") -> str:
    """A new ledger of the shared folder (QLDB ledger names: letters, digits, hyphens)."""
    return f"{prefix[:10]}-{uuid.uuid4().hex[:21]}"  # at most 32 characters
