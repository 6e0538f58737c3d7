"""Fixtures of the OpenSearch buffer's tests: a real osmem-server over loopback HTTP (started once
per session on a free port), buffers with their own index prefix on it, and a fault-injecting
proxy to put in front of it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from buffer.opensearch import OpenSearchBuffer
from buffer.opensearch_local import LocalOpenSearch, shared_server

# Helpers of this folder (on sys.path: test folders are not packages).
from buffer.opensearch_proxy import FaultProxy

from opensearch_support import QUICK, OpenBuffer  # isort: skip


@pytest.fixture(scope="session")
def osmem() -> LocalOpenSearch:
    """The session's osmem-server (the contract suite's buffers live on the same one)."""
    return shared_server()


@pytest.fixture
def prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def open_buffer(osmem: LocalOpenSearch, prefix: str) -> Iterator[OpenBuffer]:
    """``open_buffer(url=None, **options)``: an ``OpenSearchBuffer`` on this test's prefix, at
    ``url`` (default: the server itself), closed after the test."""
    opened: list[OpenSearchBuffer] = []

    def open_(url: str | None = None, **options: Any) -> OpenSearchBuffer:
        options.setdefault("index_prefix", prefix)
        options.setdefault("auth", "none")
        options.setdefault("retry", QUICK)
        buf = OpenSearchBuffer.from_url(url or osmem.url, **options)
        opened.append(buf)
        return buf

    yield open_
    for buf in opened:
        buf.close()


@pytest.fixture
def proxy(osmem: LocalOpenSearch) -> Iterator[FaultProxy]:
    p = FaultProxy(upstream=osmem.url).start()
    yield p
    p.close()
