"""The invocation's deadline (``runtime.deadline``) on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime import deadline
from runtime.errors import TransientError


@pytest.fixture
def clock() -> Iterator[list[float]]:
    now = [1000.0]
    deadline.use_clock(lambda: now[0])
    yield now
    deadline.use_clock(__import__("time").monotonic)


def test_no_deadline_leaves_every_client_its_own_timeouts(clock: list[float]) -> None:
    assert deadline.remaining() is None
    assert deadline.timeout(30.0) == 30.0
    assert deadline.sleep_allowed(1e9)
    deadline.check("anything")  # no bound: never raises


def test_the_deadline_bounds_timeouts_backoffs_and_new_requests(clock: list[float]) -> None:
    with deadline.until(10.0):
        assert deadline.remaining() == 10.0
        assert deadline.timeout(30.0) == 10.0 and deadline.timeout(4.0) == 4.0
        clock[0] += 9.0
        assert deadline.timeout(30.0) == 1.0
        assert deadline.sleep_allowed(0.5) and not deadline.sleep_allowed(1.0)
        deadline.check("a request with a second left")
        clock[0] += 1.0
        assert deadline.remaining() == 0.0
        with pytest.raises(deadline.DeadlineReached, match="before putting items 4-7"):
            deadline.check("putting items 4-7")
    assert deadline.remaining() is None  # restored when the invocation's block ends


def test_nested_deadlines_keep_the_earlier_end_and_it_is_a_transient_error(
    clock: list[float],
) -> None:
    with deadline.until(5.0):
        with deadline.until(60.0):
            assert deadline.remaining() == 5.0
        with deadline.until(2.0):
            assert deadline.remaining() == 2.0
        assert deadline.remaining() == 5.0
    with deadline.until(None):
        assert deadline.remaining() is None
    assert issubclass(deadline.DeadlineReached, TransientError)  # exit 3: nothing lost


class _Context:
    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_seconds_before_the_end_of_an_invocation() -> None:
    """What each handler gives ``until``: the remaining time less a fixed margin, or less a share
    of it kept within bounds; never below 0; None without a Lambda context."""
    assert deadline.seconds_before_end(_Context(30_000), least_ms=1_000) == 29.0
    assert deadline.seconds_before_end(_Context(500), least_ms=1_000) == 0.0
    share = {"least_ms": 2_000, "most_ms": 10_000, "share": 0.1}
    assert deadline.seconds_before_end(_Context(60_000), **share) == 54.0  # type: ignore[arg-type]
    assert deadline.seconds_before_end(_Context(5_000), **share) == 3.0  # type: ignore[arg-type]
    assert deadline.seconds_before_end(_Context(900_000), **share) == 890.0  # type: ignore[arg-type]
    assert deadline.seconds_before_end(None, least_ms=1_000) is None
