"""A slow OpenSearch inside an invocation's deadline (``runtime.deadline``): a fault proxy in
front of osmem-server holds every answer for seconds; each request's timeout is what is left of
the deadline, so the put ends with ``DeadlineReached`` near it instead of running into the
Lambda's hard timeout, and a re-run with time enough stores everything (nothing was lost)."""

from __future__ import annotations

import time
from datetime import timedelta

from opensearch_support import OpenBuffer

from buffer.opensearch_proxy import FaultProxy
from runtime import deadline

# The shared synthetic records (tests/conftest.py), imported by name for typing.
from synth import Synth  # isort: skip

HOLD_SECONDS = 6.0
DEADLINE_SECONDS = 0.8


def test_a_slow_domain_ends_the_put_at_the_deadline_and_a_rerun_completes_it(
    open_buffer: OpenBuffer, proxy: FaultProxy, synth: Synth, prefix: str
) -> None:
    records = synth.incomings(synth.chain(10), delay=timedelta(seconds=2))
    buf = open_buffer(proxy.url)  # indices created at full speed
    proxy.delay_seconds = HOLD_SECONDS
    started = time.monotonic()
    try:
        with deadline.until(DEADLINE_SECONDS):
            buf.put(records)
    except deadline.DeadlineReached as exc:
        reached = exc
    else:
        raise AssertionError("the put outlived a deadline shorter than one answer")
    elapsed = time.monotonic() - started
    # Bounded by the deadline, not by the 30 s timeout times 8 attempts, nor by one answer.
    assert elapsed < HOLD_SECONDS - 2, elapsed
    assert "deadline" in str(reached) and proxy.url.split("//")[1].split(":")[0] in str(reached)

    proxy.delay_seconds = 0.0
    buf.put(records)  # the same records again: whatever the first put wrote is kept
    assert buf.dump()["counts"]["blocks"]["pending"] == 10
