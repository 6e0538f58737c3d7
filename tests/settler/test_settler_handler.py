"""The settler Lambda handler: settings from the environment, the window from SSM, a deadline
from the context, EMF metrics at the edge.

The buffer is a real SQLite file; the destination is the in-memory fake
(``destination.memory``); SSM is moto's (nothing else can stand in for SSM here); the Lambda
context is a small stand-in object with ``get_remaining_time_in_millis`` (what Lambda passes).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from emf import emf_values
from settler_blocks import Chain, Rev, put

import handlers.settler as handler_module
from buffer.sqlite import SqliteBuffer
from compose.settings import Settings
from destination.memory import MemoryDestination
from handlers.settler import deadline_from, handler, use_parts, window_seconds


class Context:
    """What the handler uses of the Lambda context."""

    def __init__(self, remaining_ms: list[int], request_id: str = "req-0") -> None:
        self.remaining = remaining_ms
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining[0]


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[SqliteBuffer, MemoryDestination]]:
    buffer = SqliteBuffer(tmp_path / "buffer.db")
    dest = MemoryDestination()
    use_parts((buffer, dest))
    yield buffer, dest
    use_parts(None)
    buffer.close()


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "qldb-settle-settler")
    monkeypatch.setenv("QLDB_SETTLE_WINDOW_SECONDS", "0")
    monkeypatch.delenv("QLDB_SETTLE_WINDOW_PARAMETER", raising=False)
    monkeypatch.setattr(handler_module, "_ssm", None)


def test_one_cycle_replays_and_publishes_the_settler_metrics(
    parts: tuple[SqliteBuffer, MemoryDestination], capsys: pytest.CaptureFixture[str]
) -> None:
    buffer, dest = parts
    chain = Chain()
    put(
        buffer,
        chain.block(["CREATE TABLE T"]),
        chain.block([("INSERT INTO T ?", [{"a": 1}])], [Rev("T", "D" * 22, 0, {"a": 1})]),
    )
    result = handler({}, Context([60_000]))
    assert result["replayed"] == {"blocks": 2, "statements": 1, "revisions": 1}
    assert result["halted"] is False and result["window_seconds"] == 0
    metrics = emf_values(capsys.readouterr().out)
    assert set(metrics) == {
        "BlocksReplayed", "StatementsReplayed", "RevisionsApplied", "ReplayLag", "BufferDepth",
        "HeldByWindow", "EarlyReleases", "GapsPassed", "QuarantinedBlocks", "LateBlocks",
        "DigestsUnverified", "CycleDuration", "Halted", "LeaseHeld", "GapsHeld", "WindowSeconds",
    }  # fmt: skip
    assert metrics["WindowSeconds"] == [0]  # the window the cycle used
    assert metrics["BlocksReplayed"] == [2] and metrics["Halted"] == [0]
    assert metrics["LeaseHeld"] == [0]
    assert len(metrics["ReplayLag"]) == 2 and metrics["DigestsUnverified"] == [1]
    assert len(dest.documents()) == 1


def test_an_invocation_stands_aside_while_another_holds_the_lease_and_says_so_in_a_metric(
    parts: tuple[SqliteBuffer, MemoryDestination], capsys: pytest.CaptureFixture[str]
) -> None:
    buffer, _ = parts
    # Another invocation (its own request id: owners are per invocation) is mid-cycle.
    other = handler_module.owner_of(Context([60_000], "req-other"))
    assert other == "settler-lambda:req-other" != handler_module.owner_of(Context([60_000]))
    assert buffer.acquire_lease(other, 90, datetime.now(UTC))
    result = handler({}, Context([60_000]))
    assert "settler-lambda:req-other" in result["skipped"]
    assert emf_values(capsys.readouterr().out) == {"LeaseHeld": [1]}


def test_the_lease_lasts_the_invocation_plus_a_margin(
    parts: tuple[SqliteBuffer, MemoryDestination],
) -> None:
    buffer, _ = parts
    assert handler_module.lease_seconds_of(Context([60_000])) == 60 + 30
    seen: list[float] = []
    acquire = buffer.acquire_lease

    def spy(owner: str, ttl: float, now: datetime) -> bool:
        seen.append(ttl)
        return acquire(owner, ttl, now)

    buffer.acquire_lease = spy  # type: ignore[method-assign]
    handler({}, Context([45_000]))
    assert seen == [75.0]
    assert buffer.lease() is None  # released at the end of the cycle


def test_the_window_comes_from_the_ssm_parameter_each_cycle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(handler_module, "_ssm", None)
    monkeypatch.setattr(handler_module, "_last_good_window", {})
    # Each scheduled cycle reads afresh (the cache is shorter than the schedule's period): here
    # the reads follow each other at once, so the cache is turned off to see every change.
    monkeypatch.setattr(handler_module, "WINDOW_CACHE_SECONDS", 0)
    settings = Settings(window_seconds=120)
    env = {"QLDB_SETTLE_WINDOW_PARAMETER": "/qldb-settle/window"}
    with mock_aws():
        import boto3

        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/qldb-settle/window", Value="45", Type="String")
        assert window_seconds(settings, env) == 45
        ssm.put_parameter(Name="/qldb-settle/window", Value="300", Type="String", Overwrite=True)
        assert window_seconds(settings, env) == 300
        ssm.put_parameter(Name="/qldb-settle/window", Value="soon", Type="String", Overwrite=True)
        # Unreadable: the last good value holds, not the setting (120 would release early).
        assert window_seconds(settings, env) == 300
        ssm.delete_parameter(Name="/qldb-settle/window")
        assert window_seconds(settings, env) == 300
    assert window_seconds(settings, {}) == 120


def test_an_unreadable_window_with_no_earlier_value_skips_the_cycle_with_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A container whose first read fails has no window anybody chose: the invocation fails
    (the Errors alarm sees it) and nothing is settled, rather than settling with the default."""
    from moto import mock_aws

    settler_handler = handler_module
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(settler_handler, "_ssm", None)
    monkeypatch.setattr(settler_handler, "_last_good_window", {})
    env = {"QLDB_SETTLE_WINDOW_PARAMETER": "/qldb-settle/never-written"}
    with mock_aws():
        with pytest.raises(settler_handler.WindowUnreadable, match="never-written"):
            window_seconds(Settings(window_seconds=120), env)
        monkeypatch.setenv("QLDB_SETTLE_WINDOW_PARAMETER", "/qldb-settle/never-written")
        settled: list[object] = []
        monkeypatch.setattr(settler_handler, "settle", lambda *a, **k: settled.append(a))
        with pytest.raises(settler_handler.WindowUnreadable):
            settler_handler.handler({}, None)
        assert settled == []


def test_the_deadline_keeps_a_margin_of_the_invocation() -> None:
    remaining = [300_000]
    deadline = deadline_from(Context(remaining))
    assert deadline is not None and not deadline()
    remaining[0] = 14_000
    assert deadline()
    assert deadline_from(object()) is None


def test_a_cycle_near_the_end_of_the_invocation_applies_nothing(
    parts: tuple[SqliteBuffer, MemoryDestination], capsys: pytest.CaptureFixture[str]
) -> None:
    buffer, dest = parts
    chain = Chain()
    put(buffer, chain.block(["CREATE TABLE T"]))
    context: Any = Context([1_000])  # less than the smallest margin is left
    result = handler({}, context)
    assert result["replayed"]["blocks"] == 0 and dest.apply_calls == 0
    capsys.readouterr()


def test_every_client_call_of_the_cycle_runs_inside_the_invocations_hard_deadline(
    parts: tuple[SqliteBuffer, MemoryDestination], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler sets ``runtime.deadline`` to the invocation's end less ``HARD_MARGIN_MS``
    around the cycle (the OpenSearch, QLDB and PostgreSQL clients read it); it is gone after."""
    from runtime import deadline

    seen: list[float | None] = []
    real_settle = handler_module.settle

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(deadline.remaining())
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(handler_module, "settle", spy)
    handler({}, Context([30_000]))
    (left,) = seen
    assert left is not None and 28.0 < left <= 29.0  # 30 s less the 1 s margin
    assert deadline.remaining() is None
    assert handler_module.hard_seconds_left(Context([500])) == 0.0
    assert handler_module.hard_seconds_left(None) is None
