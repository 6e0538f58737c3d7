"""Fixtures of the QLDB tests: ``serve-qldb`` as a real subprocess (one per session, serving a
folder of ledgers so that every test gets a fresh ledger by name), pyqldb drivers and
``QldbDestination`` instances pointed at it."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Any credentials: serve-qldb does not check signatures. Never a real account's.
ACCESS_KEY, SECRET_KEY, REGION = "AKIDEXAMPLELOCAL", "local-secret-not-checked", "us-east-1"


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
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err or ""


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("qldb-ledgers")
    proc, url = start_serve_qldb(f"embedded:{root}{os.sep}")
    yield Served(url=url, root=root, process=proc)
    stop(proc)


@pytest.fixture
def ledger_name() -> str:
    """A fresh ledger of the served folder (QLDB ledger names: letters, digits, hyphens)."""
    return "t-" + uuid.uuid4().hex[:24]


def make_driver(url: str, name: str, **kwargs: Any) -> Any:
    from pyqldb.driver.qldb_driver import QldbDriver

    return QldbDriver(
        name,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        **kwargs,
    )


def make_client(url: str) -> Any:
    """A plain botocore ``qldb-session`` client (no driver), for protocol-level checks."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "qldb-session",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"max_attempts": 0}),
    )
