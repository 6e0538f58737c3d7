"""Fixtures of the QLDB tests: ``serve-qldb`` as a real subprocess (one per session, serving a
folder of ledgers so that every test gets a fresh ledger by name), pyqldb drivers and
``QldbDestination`` instances pointed at it."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import Any

import pytest

from .qldb_server import (
    REPO_ROOT,
    Served,
    fresh_ledger_name,
    shared_served,
    start_serve_qldb,
    stop,
    stop_shared,
)

# The QLDB set (pyqldb, botocore 1.40.60, ionhash) is not in every environment: the ingest one
# (amazon.ion 0.15) has none of it, and none of these tests belongs there.
if importlib.util.find_spec("pyqldb") is None or importlib.util.find_spec("ionhash") is None:
    collect_ignore_glob = ["test_*.py"]

# Any credentials: serve-qldb does not check signatures. Never a real account's.
ACCESS_KEY, SECRET_KEY, REGION = "AKIDEXAMPLELOCAL", "local-secret-not-checked", "us-east-1"

__all__ = ["REPO_ROOT", "Served", "make_client", "make_driver", "start_serve_qldb", "stop"]


@pytest.fixture(scope="session")
def served() -> Iterator[Served]:
    yield shared_served()
    stop_shared()


@pytest.fixture
def ledger_name() -> str:
    """A fresh ledger of the served folder."""
    return fresh_ledger_name()


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
