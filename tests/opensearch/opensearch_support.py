"""Shared names of the OpenSearch buffer's tests (a module of its own: test folders are not
packages here, and ``conftest`` is not importable by name)."""

from __future__ import annotations

from collections.abc import Callable

from buffer.opensearch import OpenSearchBuffer
from buffer.opensearch_client import RetryPolicy

# Fast retries: a test that injects faults should not sleep through real backoff.
QUICK = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)

# The ``open_buffer`` fixture: ``open_buffer(url=None, **options) -> OpenSearchBuffer``.
OpenBuffer = Callable[..., OpenSearchBuffer]
