"""One throwaway PostgreSQL server per test process (``destination.postgres_local``), and a fresh
schema per test on it, so tests stay isolated without paying for a cluster or a database each.

Where no server binaries exist the tests skip, saying how to get them; under CI (``CI`` set) they
fail instead, since CI must run them (``make test`` installs Debian's postgresql as root).
"""

from __future__ import annotations

import atexit
import itertools
import os

import pytest

from destination.postgres_local import LocalPostgres
from runtime.errors import ConfigError

_servers: list[LocalPostgres] = []
_names = itertools.count()


def shared_server() -> LocalPostgres:
    if not _servers:
        try:
            server = LocalPostgres.start()
        except ConfigError as exc:
            if os.environ.get("CI"):
                pytest.fail(f"CI must run the PostgreSQL tests: {exc}")
            pytest.skip(f"no PostgreSQL server: {exc}")
        atexit.register(server.stop)
        _servers.append(server)
    return _servers[0]


def fresh_schema(prefix: str = "t") -> str:
    return f"{prefix}_{os.getpid()}_{next(_names)}"
