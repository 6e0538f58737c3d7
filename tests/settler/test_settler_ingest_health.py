"""Gaps wait while the ingest is impaired (issue 19): the cycle's rule with an injected health
check, and ``settler.ingest_health.aws_ingest_health`` against SQS and CloudWatch served by moto
(no real AWS can be had here; moto stands in for both services)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from settler_blocks import Chain, Rev, put

from buffer.port import SettlingBuffer
from destination.memory import MemoryDestination
from settler.cycle import SettlePolicy, settle
from settler.ingest_health import aws_ingest_health


def _chain_with_a_gap(buffer: SettlingBuffer) -> datetime:
    chain = Chain()
    one = chain.block([("INSERT INTO T ?", [{"n": 1}])], [Rev("T", "A" * 22, 0, {"n": 1})])
    three = chain.block(
        [("INSERT INTO T ?", [{"n": 3}])], [Rev("T", "B" * 22, 0, {"n": 3})], skip=1
    )
    put(buffer, one, three)
    return three.commit + timedelta(seconds=120)


def test_a_gap_waits_while_the_ingest_is_impaired_and_passes_once_it_is_not(
    buffer: SettlingBuffer,
) -> None:
    now = _chain_with_a_gap(buffer)
    asked: list[int] = []

    def impaired() -> str | None:
        asked.append(1)
        return "3 failed batch(es) wait in the ingest's failure queue"

    dest = MemoryDestination()
    held = settle(
        buffer, dest, now=now, policy=SettlePolicy(window_seconds=60), ingest_health=impaired
    )
    assert held.blocks == 1 and held.gaps_passed == 0 and held.halted
    assert held.gap_held == "3 failed batch(es) wait in the ingest's failure queue"
    assert "not passed while the ingest is impaired: 3 failed batch" in (held.halt_reason or "")
    assert list(buffer.gaps()) == [] and asked == [1]

    passed = settle(
        buffer, dest, now=now, policy=SettlePolicy(window_seconds=60), ingest_health=lambda: None
    )
    assert passed.blocks == 1 and passed.gaps_passed == 1 and passed.gap_held is None


def test_a_cycle_without_a_gap_does_not_ask(buffer: SettlingBuffer) -> None:
    chain = Chain()
    block = chain.block([("INSERT INTO T ?", [{"n": 1}])], [Rev("T", "A" * 22, 0, {"n": 1})])
    put(buffer, block)

    def never() -> str | None:
        raise AssertionError("asked without a gap")

    report = settle(
        buffer,
        MemoryDestination(),
        now=block.commit + timedelta(seconds=61),
        policy=SettlePolicy(window_seconds=60),
        ingest_health=never,
    )
    assert report.blocks == 1


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[object, object]]:
    moto = pytest.importorskip("moto", reason="moto is in the main environment")
    import boto3

    for key, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(key, value)
    with moto.mock_aws():
        yield boto3.client("sqs"), boto3.client("cloudwatch")


def test_the_aws_check_reads_the_failure_queue_and_the_iterator_age(
    aws: tuple[object, object],
) -> None:
    sqs, cw = aws
    url = sqs.create_queue(QueueName="ingest-failures")["QueueUrl"]  # type: ignore[attr-defined]
    now = datetime.now(UTC)
    check = aws_ingest_health(
        window_seconds=120,
        queue_url=url,
        function_name="qldb-settle-ingest",
        sqs=sqs,
        cloudwatch=cw,
        clock=lambda: now + timedelta(minutes=1),
    )
    assert check is not None
    assert check() is None  # an empty queue, no iterator age published: healthy

    cw.put_metric_data(  # type: ignore[attr-defined]
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": "qldb-settle-ingest"}],
                "Timestamp": now,
                "Value": 30_000.0,
                "Unit": "Milliseconds",
            }
        ],
    )
    assert check() is None  # 30 s behind, below the 120 s window

    cw.put_metric_data(  # type: ignore[attr-defined]
        Namespace="AWS/Lambda",
        MetricData=[
            {
                "MetricName": "IteratorAge",
                "Dimensions": [{"Name": "FunctionName", "Value": "qldb-settle-ingest"}],
                "Timestamp": now,
                "Value": 600_000.0,
                "Unit": "Milliseconds",
            }
        ],
    )
    sqs.send_message(QueueUrl=url, MessageBody="{}")  # type: ignore[attr-defined]
    reason = check() or ""
    assert "1 failed batch(es) wait in the ingest's failure queue" in reason
    assert "600 s behind the stream" in reason and "120 s window" in reason


def test_an_unreadable_source_holds_the_gap() -> None:
    class Broken:
        def get_queue_attributes(self, **_: object) -> object:
            raise RuntimeError("AccessDenied")

    check = aws_ingest_health(
        window_seconds=60, queue_url="https://q", function_name=None, sqs=Broken()
    )
    assert check is not None
    assert "could not be read (RuntimeError: AccessDenied)" in (check() or "")
    assert aws_ingest_health(window_seconds=60, queue_url=None, function_name=None) is None


def test_a_cli_settle_given_the_failure_queue_holds_gaps_while_it_holds_a_range(
    aws: tuple[object, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``settle --failure-queue URL`` asks the queue as the settler Lambda does: a simulated
    stream with read-only gaps, every window passed, holds its first gap while a range waits
    in the queue (exit 1, halted, the queue named, nothing passed) and passes the gaps once it
    is empty. SQS is moto's."""
    import json

    from qldb_settle.cli import main
    from qldb_settle.simulate import SimulationConfig, simulate

    sqs, _cw = aws
    url = sqs.create_queue(QueueName="ingest-failures")["QueueUrl"]  # type: ignore[attr-defined]
    sim = tmp_path / "sim"
    simulate(sim, SimulationConfig(transactions=40, seed=3, read_only_rate=0.3))
    buf, rep = f"sqlite:{tmp_path / 'b.db'}", f"embedded:{tmp_path / 'r.db'}"
    assert main(["ingest", "--buffer", buf, str(sim / "events")]) == 0
    capsys.readouterr()
    args = ["settle", "--buffer", buf, "--destination", rep, "--now", "2100-01-01T00:00:00Z"]
    args += ["--failure-queue", url, "--json"]

    sqs.send_message(QueueUrl=url, MessageBody="{}")  # type: ignore[attr-defined]
    assert main(args) == 1
    held = json.loads(capsys.readouterr().out)
    assert held["halted"] and held["gaps_passed"] == 0, held
    assert "failure queue" in held["halt_reason"], held

    sqs.purge_queue(QueueUrl=url)  # type: ignore[attr-defined]
    assert main(args) == 0
    passed = json.loads(capsys.readouterr().out)
    assert not passed["halted"] and passed["gaps_passed"] > 0, passed
