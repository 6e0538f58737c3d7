"""One deadline for every client call of an invocation.

A Lambda invocation has a hard end: past it the function is killed mid-request (ingest: the whole
batch fails instead of returning ``batchItemFailures``; settler: a cycle cut mid-write). The entry
point knows the end (``context.get_remaining_time_in_millis()``) and sets it once, with
``until(seconds)``; each client then bounds what it does by it:

- the OpenSearch client (``buffer.opensearch_client``): each request's timeout is at most what is
  left, and a retry is not started (nor slept for) past it;
- the QLDB destination (``destination.qldb``): pyqldb's retries stop at it, and a transaction is
  not started past it;
- the PostgreSQL destination (``destination.postgres``): each transaction's ``statement_timeout``
  and the connect timeout are at most what is left;
- the AWS reads of the settler Lambda (SSM, SQS, CloudWatch) use short botocore timeouts.

Past the deadline a client raises ``DeadlineReached``, a ``TransientError``: nothing was lost, the
next invocation carries on (ingest reports the records from there on as failures; the settler's
cycle ends, its group rolled back, and the next cycle repairs any marks from the checkpoint).

The deadline is kept in a ``contextvars.ContextVar``, so it needs no new parameter on the ports
and does not leak between invocations (``until`` restores the previous value). Without ``until``
there is no deadline and every client keeps its own timeouts (the CLI).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from runtime.errors import TransientError

_END: ContextVar[float | None] = ContextVar("qldb_settle_deadline", default=None)
Clock = Callable[[], float]
_clock: Clock = time.monotonic

# A request given less time than this would only be cut off: refuse it instead.
MIN_REQUEST_SECONDS = 0.05


class DeadlineReached(TransientError):
    """The invocation's deadline came before the work did: nothing was lost, the next invocation
    carries on from where this one stopped."""


@contextmanager
def until(seconds: float | None) -> Iterator[None]:
    """Bound every client call inside the block to end within ``seconds`` from now (None: no
    bound). Nested blocks keep the earlier of the two ends."""
    if seconds is None:
        yield
        return
    end = _clock() + max(0.0, seconds)
    outer = _END.get()
    token = _END.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _END.reset(token)


def remaining() -> float | None:
    """Seconds left before the deadline (never below 0), or None without one."""
    end = _END.get()
    return None if end is None else max(0.0, end - _clock())


def timeout(default: float) -> float:
    """A request's timeout: ``default``, or what is left of the deadline if that is less."""
    left = remaining()
    return default if left is None else min(default, left)


def check(what: str) -> None:
    """Raise ``DeadlineReached`` naming ``what`` when too little is left to start it."""
    left = remaining()
    if left is not None and left < MIN_REQUEST_SECONDS:
        raise DeadlineReached(f"the invocation's deadline came before {what}: stopped there")


def sleep_allowed(seconds: float) -> bool:
    """Whether a backoff of ``seconds`` still leaves time for the attempt after it."""
    left = remaining()
    return left is None or seconds + MIN_REQUEST_SECONDS < left


def seconds_before_end(
    context: Any, *, least_ms: int, most_ms: int | None = None, share: float = 0.0
) -> float | None:
    """A Lambda invocation's remaining time (``context.get_remaining_time_in_millis()``) less a
    margin, in seconds for ``until``; None without a context (no deadline). The margin is
    ``least_ms``, or ``share`` of the remaining time kept between ``least_ms`` and ``most_ms``."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    left = int(remaining())
    margin = least_ms if most_ms is None else max(least_ms, min(most_ms, int(left * share)))
    return max(0, left - margin) / 1000.0


def use_clock(clock: Clock) -> None:
    """Replace the monotonic clock (tests)."""
    global _clock  # noqa: PLW0603 - one clock for the process
    _clock = clock
