"""``qldb-settle redrive --queue URL [--buffer URL] [--json]``: re-read failed stream ranges.

When the ingest function's event source mapping gives up on a batch (retries or record age
exhausted), its on-failure destination receives only the batch's description: stream ARN, shard
id and the first and last sequence numbers (``KinesisBatchInfo``), never the records. This
command reads those messages, re-reads each range from Kinesis (``GetShardIterator``
``AT_SEQUENCE_NUMBER``, then ``GetRecords`` until past the end sequence number), stores the
records through the ingest core (``ingest.decode`` → ``ingest.service.ingest_items``, so they
are decoded, deduplicated and counted exactly as the ingest function does), and deletes a message
only once its whole range is stored. A range the stream no longer holds (past its retention, or
a shard or stream gone) is reported and its message left in the queue for an operator.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from journal.errors import InputError
from qldb_settle.output import (
    EXIT_ATTENTION,
    EXIT_OK,
    EXIT_TRANSIENT,
    add_buffer,
    add_common_settings,
    add_json,
    print_json,
    settings_from,
)
from runtime.errors import TransientError

if TYPE_CHECKING:
    from buffer.port import PutReport, SettlingBuffer

log = logging.getLogger(__name__)

GET_RECORDS_LIMIT = 1000
# GetRecords may answer empty while still behind the tip (sparse shards): give up after this many
# empty answers in a row that are still behind, and report the range as not fully read.
MAX_EMPTY_READS = 50
VISIBILITY_SECONDS = 900
FAILED_RANGE = "failed-range"  # the rejection kind of a range that could not be redriven


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedRange:
    """One on-failure message: the Kinesis range a batch covered."""

    message_id: str
    receipt_handle: str
    stream_arn: str
    shard_id: str
    start: str
    end: str
    batch_size: int | None = None
    first_arrival: str | None = None
    condition: str | None = None

    @property
    def region(self) -> str:
        return self.stream_arn.split(":")[3]

    @property
    def stream_name(self) -> str:
        return self.stream_arn.split(":stream/", 1)[1]

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> FailedRange:
        """From an SQS message (``ReceiveMessage`` shape, ``Body`` or ``body``). Raises
        ``InputError`` saying what is missing when it is not an on-failure message of a Kinesis
        event source mapping."""
        message_id = str(message.get("MessageId") or message.get("messageId") or "?")
        body_text = message.get("Body", message.get("body"))
        try:
            body = json.loads(body_text) if isinstance(body_text, str) else None
        except json.JSONDecodeError:
            body = None
        info = body.get("KinesisBatchInfo") if isinstance(body, Mapping) else None
        if not isinstance(info, Mapping):
            raise InputError(f"message {message_id}: no KinesisBatchInfo in its JSON body")
        values = {}
        for key in ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber"):
            value = info.get(key)
            if not isinstance(value, str) or not value:
                raise InputError(f"message {message_id}: KinesisBatchInfo.{key} is missing")
            values[key] = value
        arn = values["streamArn"]
        if not arn.startswith("arn:") or ":stream/" not in arn or len(arn.split(":")) < 6:
            raise InputError(f"message {message_id}: streamArn {arn!r} is not a stream ARN")
        for key in ("startSequenceNumber", "endSequenceNumber"):
            if not values[key].isdigit():
                raise InputError(f"message {message_id}: {key} {values[key]!r} is not a number")
        context = body.get("requestContext") if isinstance(body, Mapping) else None
        size = info.get("batchSize")
        return cls(
            message_id=message_id,
            receipt_handle=str(message.get("ReceiptHandle") or message.get("receiptHandle") or ""),
            stream_arn=arn,
            shard_id=values["shardId"],
            start=values["startSequenceNumber"],
            end=values["endSequenceNumber"],
            batch_size=size if isinstance(size, int) else None,
            first_arrival=info.get("approximateArrivalOfFirstRecord"),
            condition=context.get("condition") if isinstance(context, Mapping) else None,
        )


@dataclass(slots=True)
class RangeRead:
    """What re-reading one range gave: its Kinesis records (in order) and, when the range could
    not be read whole, why."""

    records: list[Mapping[str, Any]] = field(default_factory=list)
    problem: str | None = None


def read_range(kinesis: Any, rng: FailedRange) -> RangeRead:
    """Re-read ``rng`` from the stream: every Kinesis record with ``start <= sequence <= end``.

    ``problem`` is set when the range is not all there: the stream or shard is gone, the start
    is no longer retained (the first record returned is later than ``start``), or the end was
    never reached."""
    from botocore.exceptions import ClientError

    start, end = int(rng.start), int(rng.end)
    out = RangeRead()
    try:
        # By name in the client's region (the ARN's): the queue and the stream share an account.
        iterator: str | None = kinesis.get_shard_iterator(
            StreamName=rng.stream_name,
            ShardId=rng.shard_id,
            ShardIteratorType="AT_SEQUENCE_NUMBER",
            StartingSequenceNumber=rng.start,
        )["ShardIterator"]
        empty = 0
        while iterator is not None:
            answer = kinesis.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            records = answer.get("Records", [])
            for record in records:
                seq = int(record["SequenceNumber"])
                if seq < start:
                    continue
                if not out.records and seq > start:
                    out.problem = (
                        f"sequence {rng.start} is no longer in the stream (past its retention); "
                        f"the shard now starts at {record['SequenceNumber']}"
                    )
                    return out
                if seq > end:
                    return out
                out.records.append(record)
                if seq == end:
                    return out
            behind = answer.get("MillisBehindLatest", 0)
            if records:
                empty = 0
            elif behind == 0:
                break
            else:
                empty += 1
                if empty >= MAX_EMPTY_READS:
                    break
            iterator = answer.get("NextShardIterator")
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", str(exc))
        if code in ("ProvisionedThroughputExceededException", "LimitExceededException"):
            raise TransientError(f"Kinesis throttled reading {rng.shard_id}: {message}") from exc
        out.records.clear()
        out.problem = f"Kinesis refused the range ({code}): {message}"
        return out
    if out.records:
        last = out.records[-1]["SequenceNumber"]
        out.problem = f"the range ends at {rng.end} but the shard has nothing after {last}"
    else:
        out.problem = (
            f"no record of the range is left in the stream (sequence {rng.start} onwards is "
            "past its retention, or the shard is empty)"
        )
    return out


def _put_report() -> PutReport:
    from buffer.port import PutReport

    return PutReport()


@dataclass(slots=True)
class RedriveReport:
    """What a redrive did: messages read, ranges stored (their messages deleted), the buffer's
    counts, and what stayed in the queue with why."""

    messages: int = 0
    redriven: int = 0
    kinesis_records: int = 0
    put: PutReport = field(default_factory=_put_report)
    rejected_by_kind: dict[str, int] = field(default_factory=dict)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    not_ranges: list[dict[str, str]] = field(default_factory=list)
    transient: str | None = None
    resolved_ranges: int = 0  # failed-range rejections of earlier runs resolved by this one

    @property
    def needs_attention(self) -> bool:
        put = self.put
        return bool(self.unreadable or self.not_ranges or (put and (put.rejected or put.conflicts)))

    def as_json(self) -> dict[str, Any]:
        put = self.put
        return {
            "messages": self.messages,
            "redriven": self.redriven,
            "kinesis_records": self.kinesis_records,
            "records": put.records if put else 0,
            "stored": dict(put.stored) if put else {},
            "duplicates": put.duplicates if put else 0,
            "conflicts": put.conflicts if put else 0,
            "rejected": put.rejected if put else 0,
            "late": put.late if put else 0,
            "unreadable": list(self.unreadable),
            "not_ranges": list(self.not_ranges),
            "transient": self.transient,
            "resolved_ranges": self.resolved_ranges,
        }


def redrive(
    queue_url: str,
    buffer: SettlingBuffer,
    *,
    sqs: Any,
    kinesis_for: Callable[[str], Any],
    wait_seconds: int = 1,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RedriveReport:
    """Drain ``queue_url``: each failed range is re-read (``kinesis_for(region)`` gives the
    Kinesis client of the stream's region) and stored into ``buffer``; its message is deleted
    once stored. Messages that are not ranges, and ranges that cannot be read whole, stay in the
    queue (invisible for ``VISIBILITY_SECONDS``, so one run handles each message once) and are
    listed. A range stored whole resolves the ``failed-range`` rejections an earlier run kept for
    it (it no longer holds the settler's gaps). A ``TransientError`` of the buffer stops the run
    (``report.transient``)."""
    from ingest.decode import decode_kinesis_data
    from ingest.service import ingest_items

    report = RedriveReport()
    while True:
        answer = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=VISIBILITY_SECONDS,
        )
        messages: Sequence[Mapping[str, Any]] = answer.get("Messages", [])
        if not messages:
            return report
        for message in messages:
            report.messages += 1
            try:
                rng = FailedRange.from_message(message)
            except InputError as exc:
                report.not_ranges.append(
                    {"message_id": str(message.get("MessageId", "?")), "reason": str(exc)}
                )
                continue
            read = read_range(kinesis_for(rng.region), rng)
            if read.problem is not None:
                log.warning("range %s %s..%s: %s", rng.shard_id, rng.start, rng.end, read.problem)
                unreadable = {
                    "message_id": rng.message_id,
                    "stream_arn": rng.stream_arn,
                    "shard_id": rng.shard_id,
                    "start": rng.start,
                    "end": rng.end,
                    "reason": read.problem,
                }
                report.unreadable.append(unreadable)
                if not _keep_failed_range(buffer, rng, read.problem, report):
                    return report
                continue
            items = []
            for record in read.records:
                arrived = record.get("ApproximateArrivalTimestamp")
                items.extend(
                    decode_kinesis_data(
                        bytes(record["Data"]),
                        origin=f"{rng.shard_id}/{record['SequenceNumber']}",
                        arrived_at=arrived if isinstance(arrived, datetime) else None,
                    )
                )
            ingested = ingest_items(buffer, items)
            report.put.add(ingested.put)
            for kind, n in ingested.rejected_by_kind.items():
                report.rejected_by_kind[kind] = report.rejected_by_kind.get(kind, 0) + n
            if ingested.transient is not None:
                report.transient = ingested.transient
                return report
            report.kinesis_records += len(read.records)
            if not _resolve_failed_range(buffer, rng, clock(), report):
                return report
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=rng.receipt_handle)
            report.redriven += 1


def _range_origin(rng: FailedRange) -> str:
    return f"{rng.shard_id}/{rng.start}..{rng.end}"


def _resolve_failed_range(
    buffer: SettlingBuffer, rng: FailedRange, now: datetime, report: RedriveReport
) -> bool:
    """Acknowledge the unresolved ``failed-range`` rejections of ``rng`` (same stream, shard and
    sequence range), now that its records are stored. False when the buffer is unavailable."""
    origin = _range_origin(rng)
    try:
        ids = [
            r.rejection_id
            for r in buffer.rejected()
            if r.kind == FAILED_RANGE
            and r.origin == origin
            and r.resolved_at is None
            and json.loads(r.raw or b"{}").get("stream_arn") == rng.stream_arn
        ]
        if ids:
            report.resolved_ranges += buffer.acknowledge_rejections(
                ids,
                "redriven: the range was read whole and stored",
                "qldb-settle redrive",
                now,
            )
    except TransientError as exc:
        report.transient = str(exc)
        return False
    return True


def _keep_failed_range(
    buffer: SettlingBuffer, rng: FailedRange, problem: str, report: RedriveReport
) -> bool:
    """Record a range that could not be redriven in the buffer as a ``failed-range`` rejection:
    until an operator acknowledges it, the settler passes no gap (the range may hold the missing
    blocks). Its id is stable (the range and the reason), so a rerun records it once. False when
    the buffer is unavailable (``report.transient``)."""
    from buffer.port import Rejection

    described = {
        "stream_arn": rng.stream_arn,
        "shard_id": rng.shard_id,
        "start": rng.start,
        "end": rng.end,
    }
    rejection = Rejection(
        origin=_range_origin(rng),
        raw=json.dumps(described, sort_keys=True).encode(),
        kind=FAILED_RANGE,
        reason=f"a failed stream range the redrive could not read: {problem}",
    )
    try:
        buffer.put([], [rejection])
    except TransientError as exc:
        report.transient = str(exc)
        return False
    return True


def _region_of_queue(url: str) -> str | None:
    # https://sqs.<region>.amazonaws.com/<account>/<name>
    host = url.split("://", 1)[-1].split("/", 1)[0]
    parts = host.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "sqs" else None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "redrive",
        help="re-read the stream ranges of the ingest on-failure queue into the buffer",
        description=(
            "Read the on-failure queue of the ingest event source mapping (its messages hold "
            "shard and sequence ranges, not records), re-read each range from Kinesis while the "
            "stream still retains it, store the records in the settling buffer through the "
            "ingest core, and delete each message once its range is stored. Ranges no longer "
            "retained are listed and their messages kept. Exit 1 when a range could not be "
            "read or records were rejected, 3 when the buffer is unavailable (run it again)."
        ),
    )
    p.add_argument("--queue", required=True, metavar="URL", help="the on-failure SQS queue URL")
    p.add_argument(
        "--wait",
        type=int,
        default=1,
        metavar="S",
        help="long-poll seconds per receive (0-20, default 1)",
    )
    add_buffer(p)
    add_common_settings(p)
    add_json(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import boto3

    from compose.roots import open_buffer

    if not 0 <= args.wait <= 20:
        raise InputError(f"--wait must be between 0 and 20 seconds, not {args.wait}")
    settings = settings_from(args)
    session = boto3.session.Session()
    sqs = session.client("sqs", region_name=_region_of_queue(args.queue))
    clients: dict[str, Any] = {}

    def kinesis_for(region: str) -> Any:
        if region not in clients:
            clients[region] = session.client("kinesis", region_name=region)
        return clients[region]

    buffer = open_buffer(settings, opensearch_auth=args.opensearch_auth)
    try:
        report = redrive(
            args.queue, buffer, sqs=sqs, kinesis_for=kinesis_for, wait_seconds=args.wait
        )
    finally:
        buffer.close()
    if args.json:
        print_json(report.as_json())
    else:
        _print_summary(report)
    if report.transient is not None:
        print(
            f"qldb-settle redrive: {report.transient} (the message of the range being stored "
            "stays in the queue; nothing was lost; run it again)",
            file=sys.stderr,
        )
        return EXIT_TRANSIENT
    return EXIT_ATTENTION if report.needs_attention else EXIT_OK


def _print_summary(report: RedriveReport) -> None:
    put = report.put
    s = put.stored
    print(
        f"redrove {report.redriven} of {report.messages} failed ranges "
        f"({report.kinesis_records} Kinesis records)"
    )
    print(
        f"  stored: {s.get('blocks', 0)} blocks, {s.get('statements', 0)} statements, "
        f"{s.get('revisions', 0)} revisions, {s.get('control', 0)} control records"
    )
    print(
        f"  duplicates: {put.duplicates}  conflicts: {put.conflicts}  late: {put.late}  "
        f"rejected: {put.rejected}"
    )
    if report.resolved_ranges:
        print(
            f"  resolved: {report.resolved_ranges} failed-range records of earlier runs "
            "(their ranges are stored now, so they no longer hold the settler's gaps)"
        )
    for u in report.unreadable:
        print(f"  not re-read: {u['shard_id']} {u['start']}..{u['end']}: {u['reason']}")
    for n in report.not_ranges:
        print(f"  not a failed range: {n['reason']}")
