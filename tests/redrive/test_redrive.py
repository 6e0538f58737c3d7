"""``qldb-settle redrive``: failed ranges from the on-failure queue re-read from Kinesis.

Kinesis and SQS are moto's (``moto.mock_aws``): moto is the only way to have a Kinesis stream
here, so these are the one place the project tests against an emulation rather than the real
part. The buffer is a real SqliteBuffer file; the records are the real aggregated Kinesis
records of the qldb-simple-demo fixtures (plus synthetic blocks where a test needs many), and
the queue messages are the real on-failure message of qldb-bicycle-licence-sam with its range
pointed at the emulated stream.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto", reason="the redrive tests need moto (the main environment)")

import boto3
from amazon.ion import simpleion
from moto import mock_aws

from buffer.port import Incoming, PutReport, Rejection
from buffer.sqlite import SqliteBuffer
from destination.memory import MemoryDestination
from qldb_settle.cli import main
from qldb_settle.commands import redrive as rd
from runtime.errors import TransientError
from settler.cycle import SettlePolicy, settle
from tests.conftest import Synth

REGION = "eu-west-1"
MESSAGE_FIXTURE = "qldb-bicycle-licence-sam__streams-dynamodb__msg.json"
EVENT_FIXTURES = (
    "qldb-simple-demo__streams-dynamodb__data.json",
    "qldb-simple-demo__streams-es__data.json",
)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


class Stream:
    """An emulated one-shard stream and its on-failure queue."""

    def __init__(self) -> None:
        self.kinesis = boto3.client("kinesis", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.kinesis.create_stream(StreamName="journal", ShardCount=1)
        summary = self.kinesis.describe_stream_summary(StreamName="journal")
        self.arn = summary["StreamDescriptionSummary"]["StreamARN"]
        self.queue = self.sqs.create_queue(QueueName="failed-ranges")["QueueUrl"]

    def put(self, data: bytes, key: str = "k") -> tuple[str, str]:
        answer = self.kinesis.put_record(StreamName="journal", Data=data, PartitionKey=key)
        return answer["ShardId"], answer["SequenceNumber"]

    def send_range(self, fixtures: Path, shard: str, start: str, end: str, size: int) -> None:
        """The real on-failure message, its KinesisBatchInfo pointed at this stream."""
        real = json.loads((fixtures / MESSAGE_FIXTURE).read_text())["Records"][0]
        body = json.loads(real["body"])
        body["KinesisBatchInfo"].update(
            streamArn=self.arn,
            shardId=shard,
            startSequenceNumber=start,
            endSequenceNumber=end,
            batchSize=size,
        )
        self.sqs.send_message(QueueUrl=self.queue, MessageBody=json.dumps(body))

    def waiting(self) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["All"])[
            "Attributes"
        ]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )


def real_kinesis_data(fixtures: Path, name: str) -> bytes:
    event = json.loads((fixtures / name).read_text())
    (record,) = event["Records"]
    return base64.b64decode(record["kinesis"]["data"], validate=True)


def synthetic(synth: Synth, seq: int) -> bytes:
    data: bytes = simpleion.dumps(synth.block(seq).summary, binary=True)
    return data


def redrive_cli(
    stream: Stream, buffer_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    code = main(
        ["redrive", "--queue", stream.queue, "--buffer", f"sqlite:{buffer_path}", "--wait", "0",
         "--json"]
    )  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def sequences(path: Path) -> list[int]:
    buffer = SqliteBuffer(path)
    try:
        return sorted(row.sequence_no for row in buffer.blocks())
    finally:
        buffer.close()


def test_real_message_shape_parses(fixtures_dir: Path) -> None:
    (record,) = json.loads((fixtures_dir / MESSAGE_FIXTURE).read_text())["Records"]
    rng = rd.FailedRange.from_message(record)
    assert rng.stream_arn == "arn:aws:kinesis:eu-west-1:082136225280:stream/LicenceStreamKinesis"
    assert (rng.shard_id, rng.start, rng.end) == (
        "shardId-000000000000",
        "49612846633638285695198771602783108269174606893684883458",
        "49612846633638285695198771602783108269174606893684883458",
    )
    assert (rng.region, rng.batch_size, rng.condition) == (REGION, 1, "RetryAttemptsExhausted")
    assert rng.receipt_handle.startswith("AQEBQSdi")


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"requestContext": {}}),
        json.dumps({"KinesisBatchInfo": {"shardId": "s", "startSequenceNumber": "1"}}),
        json.dumps(
            {
                "KinesisBatchInfo": {
                    "streamArn": "arn:aws:kinesis:eu-west-1:1:stream/s",
                    "shardId": "s",
                    "startSequenceNumber": "12x",
                    "endSequenceNumber": "13",
                }
            }
        ),
    ],
)
def test_other_messages_are_not_ranges(body: str) -> None:
    with pytest.raises(rd.InputError, match="message m1"):
        rd.FailedRange.from_message({"MessageId": "m1", "Body": body})


def test_redrive_stores_the_range_and_deletes_its_message(
    aws: None, fixtures_dir: Path, tmp_path: Path, synth: Synth,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    stream = Stream()
    shard, first = stream.put(real_kinesis_data(fixtures_dir, EVENT_FIXTURES[0]))
    _, last = stream.put(real_kinesis_data(fixtures_dir, EVENT_FIXTURES[1]))
    stream.put(synthetic(synth, 1))  # after the range: must not be read
    stream.send_range(fixtures_dir, shard, first, last, 2)
    buffer_path = tmp_path / "buffer.db"

    code, report = redrive_cli(stream, buffer_path, capsys)

    assert code == 0, report
    assert report["messages"] == 1 and report["redriven"] == 1
    assert report["kinesis_records"] == 2
    # Each real aggregate holds one block summary (3 statements) and one revision.
    assert report["stored"] == {"blocks": 2, "statements": 6, "revisions": 2, "control": 0}
    assert (report["rejected"], report["unreadable"], report["not_ranges"]) == (0, [], [])
    assert sequences(buffer_path) == [545, 7551]
    assert stream.waiting() == 0

    # Redriving the same range again (a message sent twice) stores nothing new.
    stream.send_range(fixtures_dir, shard, first, last, 2)
    code, again = redrive_cli(stream, buffer_path, capsys)
    assert code == 0
    assert again["duplicates"] == 4 and again["stored"]["blocks"] == 0
    assert stream.waiting() == 0


def test_a_range_over_several_pages_stops_at_its_end(
    aws: None, fixtures_dir: Path, tmp_path: Path, synth: Synth, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rd, "GET_RECORDS_LIMIT", 2)
    stream = Stream()
    put = [stream.put(synthetic(synth, seq)) for seq in range(1, 8)]
    shard = put[0][0]
    stream.send_range(fixtures_dir, shard, put[1][1], put[5][1], 5)
    buffer = SqliteBuffer(tmp_path / "b.db")
    try:
        report = rd.redrive(
            stream.queue, buffer, sqs=stream.sqs, kinesis_for=lambda _r: stream.kinesis,
            wait_seconds=0,
        )  # fmt: skip
    finally:
        buffer.close()
    assert (report.redriven, report.kinesis_records) == (1, 5)
    assert sequences(tmp_path / "b.db") == [2, 3, 4, 5, 6]
    assert stream.waiting() == 0


def test_ranges_no_longer_in_the_stream_are_reported_and_kept(
    aws: None, fixtures_dir: Path, tmp_path: Path, synth: Synth,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    stream = Stream()
    shard, first = stream.put(synthetic(synth, 1))
    _, second = stream.put(synthetic(synth, 2))
    # Past retention: the range starts before what the shard still holds.
    stream.send_range(fixtures_dir, shard, str(int(first) - 1), first, 1)
    # The end was never reached: the shard has nothing after `second`.
    stream.send_range(fixtures_dir, shard, second, str(int(second) + 10**6), 2)
    # The real message unchanged: its stream does not exist here.
    real = json.loads((fixtures_dir / MESSAGE_FIXTURE).read_text())["Records"][0]
    stream.sqs.send_message(QueueUrl=stream.queue, MessageBody=real["body"])
    # Not an on-failure message at all.
    stream.sqs.send_message(QueueUrl=stream.queue, MessageBody="hello")

    code, report = redrive_cli(stream, tmp_path / "b.db", capsys)

    assert code == 1
    assert (report["messages"], report["redriven"]) == (4, 0)
    reasons = sorted(u["reason"] for u in report["unreadable"])
    assert len(reasons) == 3
    assert any("past its retention" in r and f"starts at {first}" in r for r in reasons)
    assert any("has nothing after" in r for r in reasons)
    assert any("ResourceNotFoundException" in r for r in reasons)
    assert len(report["not_ranges"]) == 1
    assert report["stored"]["blocks"] == 0
    assert stream.waiting() == 4  # every message kept for an operator

    # The buffer knows: each unreadable range is an unresolved `failed-range` rejection, and the
    # settler passes no gap while one is (its records may be the missing blocks).
    buffer = SqliteBuffer(tmp_path / "b.db")
    try:
        kept = [r for r in buffer.rejected() if r.kind == rd.FAILED_RANGE]
        assert len(kept) == 3 and buffer.unresolved_rejections() == 3
        assert all("could not read" in r.reason and r.origin.startswith(shard) for r in kept)
        one, _, three = synth.chain(3)
        buffer.put(synth.incomings([one, three]))
        report = settle(
            buffer,
            MemoryDestination(),
            now=datetime(2100, 1, 1, tzinfo=UTC),
            # The synthetic revisions carry made-up hashes: no content check.
            policy=SettlePolicy(window_seconds=60, check_content=False),
        )
    finally:
        buffer.close()
    assert report.blocks == 1 and report.gaps_passed == 0 and report.halted
    assert "failed stream ranges" in (report.halt_reason or "")


def test_a_range_redriven_later_resolves_the_failed_range_an_earlier_run_kept(
    aws: None, fixtures_dir: Path, tmp_path: Path, synth: Synth,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A range unreadable in one run is kept as a ``failed-range`` rejection (gaps held); once a
    later run reads that range whole and stores it, the redrive itself resolves the rejection,
    so it does not hold every later gap until an operator acknowledges it."""
    stream = Stream()
    shard, first = stream.put(synthetic(synth, 1))
    end = str(int(first) + 1)  # the shard has nothing after `first` yet: the end is not reached
    stream.send_range(fixtures_dir, shard, first, end, 1)
    code, report = redrive_cli(stream, tmp_path / "b.db", capsys)
    assert code == 1 and report["redriven"] == 0 and len(report["unreadable"]) == 1
    assert report["resolved_ranges"] == 0
    buffer = SqliteBuffer(tmp_path / "b.db")
    try:
        assert buffer.unresolved_rejections() == 1
    finally:
        buffer.close()

    _, later = stream.put(synthetic(synth, 2))  # up to the end: the range can be read whole
    assert int(later) >= int(end)
    stream.send_range(fixtures_dir, shard, first, end, 1)  # the range's message, delivered again
    code, report = redrive_cli(stream, tmp_path / "b.db", capsys)
    assert code == 0 and report["redriven"] == 1 and report["resolved_ranges"] == 1, report
    buffer = SqliteBuffer(tmp_path / "b.db")
    try:
        (kept,) = [r for r in buffer.rejected() if r.kind == rd.FAILED_RANGE]
        assert kept.resolved_at is not None and kept.resolved_by == "qldb-settle redrive"
        assert buffer.unresolved_rejections() == 0
    finally:
        buffer.close()


class FailingBuffer:
    """A SqliteBuffer whose put fails as an unreachable buffer does (a stand-in: nothing real
    fails on demand here)."""

    def __init__(self, inner: SqliteBuffer) -> None:
        self.inner = inner

    def put(self, records: Sequence[Incoming], rejections: Sequence[Rejection] = ()) -> PutReport:
        raise TransientError("buffer unreachable after 3 retries")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_transient_buffer_failure_keeps_the_message(
    aws: None, fixtures_dir: Path, tmp_path: Path
) -> None:
    stream = Stream()
    shard, seq = stream.put(real_kinesis_data(fixtures_dir, EVENT_FIXTURES[0]))
    stream.send_range(fixtures_dir, shard, seq, seq, 1)
    inner = SqliteBuffer(tmp_path / "b.db")
    try:
        report = rd.redrive(
            stream.queue, FailingBuffer(inner), sqs=stream.sqs,  # type: ignore[arg-type]
            kinesis_for=lambda _r: stream.kinesis, wait_seconds=0,
        )  # fmt: skip
    finally:
        inner.close()
    assert report.transient == "buffer unreachable after 3 retries"
    assert report.redriven == 0
    assert stream.waiting() == 1


def test_arrival_times_are_kept(aws: None, fixtures_dir: Path, tmp_path: Path) -> None:
    stream = Stream()
    shard, seq = stream.put(real_kinesis_data(fixtures_dir, EVENT_FIXTURES[0]))
    stream.send_range(fixtures_dir, shard, seq, seq, 1)
    rng = rd.FailedRange.from_message(
        stream.sqs.receive_message(QueueUrl=stream.queue)["Messages"][0]
    )
    read = rd.read_range(stream.kinesis, rng)
    assert read.problem is None and len(read.records) == 1
    arrived = read.records[0]["ApproximateArrivalTimestamp"]
    assert isinstance(arrived, datetime)
    assert abs((datetime.now(UTC) - arrived.astimezone(UTC)).total_seconds()) < 600
