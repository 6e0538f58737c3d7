"""The ingest's on-failure queue and the stream it points into, as files, for the campaign.

When the ingest function's event source mapping gives up on a batch (its retries ran out), AWS
sends a message describing the batch's range (``KinesisBatchInfo``: stream, shard, first and last
sequence numbers) to the on-failure queue; the records stay in the stream until its retention
trims them. Neither SQS nor Kinesis can be had locally across processes (moto runs in one
process; its server needs Flask, which the project does not install), so the campaign keeps both
in a folder that every process of a scenario shares:

- ``queue/<id>.json``: one SQS message each (``FileQueue``: ``get_queue_attributes``,
  ``receive_message`` with its visibility timeout, ``delete_message``, the calls of
  ``settler.ingest_health`` and ``qldb-settle redrive``);
- ``stream/<shard>.json``: the Kinesis records of each shard in sequence order (``FileStream``:
  ``get_shard_iterator`` ``AT_SEQUENCE_NUMBER`` and ``get_records``, the calls of ``redrive``);
  ``stream/REFUSED`` makes every call fail as Kinesis does for a stream it cannot find.

``EventSourceMapping`` plays AWS's part: it keeps every delivered record in the stream, and
sends the message of a batch whose retries ran out.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/000000000000/qldb-settle-ingest-failures"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:000000000000:function:qldb-settle-ingest"


def _write(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


class FileQueue:
    """The SQS calls the settler and ``redrive`` make, on ``root/queue``."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "queue"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _messages(self) -> list[tuple[Path, dict[str, Any]]]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            try:
                out.append((path, json.loads(path.read_text(encoding="utf-8"))))
            except FileNotFoundError:
                continue  # deleted meanwhile
        return out

    def send(self, body: Mapping[str, Any]) -> str:
        message_id = str(uuid.uuid4())
        n = len(list(self.dir.glob("*.json")))
        data = {"MessageId": message_id, "Body": json.dumps(body), "invisible_until": 0.0}
        _write(self.dir / f"{time.time_ns():020d}-{n:04d}.json", data)
        return message_id

    def expire_visibility(self) -> None:
        """Every received message visible again (its visibility timeout has run out)."""
        for path, data in self._messages():
            _write(path, {**data, "invisible_until": 0.0})

    def count(self) -> int:
        return len(self._messages())

    # --- boto3's SQS client -------------------------------------------------------------------

    def get_queue_attributes(
        self, *, QueueUrl: str, AttributeNames: Sequence[str]
    ) -> dict[str, Any]:
        now = time.time()
        messages = [d for _, d in self._messages()]
        visible = sum(1 for d in messages if d["invisible_until"] <= now)
        return {
            "Attributes": {
                "ApproximateNumberOfMessages": str(visible),
                "ApproximateNumberOfMessagesNotVisible": str(len(messages) - visible),
            }
        }

    def receive_message(
        self,
        *,
        QueueUrl: str,
        MaxNumberOfMessages: int = 1,
        WaitTimeSeconds: int = 0,
        VisibilityTimeout: int = 30,
    ) -> dict[str, Any]:
        now = time.time()
        out: list[dict[str, Any]] = []
        for path, data in self._messages():
            if len(out) >= MaxNumberOfMessages:
                break
            if data["invisible_until"] > now:
                continue
            _write(path, {**data, "invisible_until": now + VisibilityTimeout})
            out.append(
                {"MessageId": data["MessageId"], "ReceiptHandle": path.name, "Body": data["Body"]}
            )
        return {"Messages": out} if out else {}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> dict[str, Any]:
        (self.dir / ReceiptHandle).unlink(missing_ok=True)
        return {}


class FileStream:
    """The Kinesis calls ``redrive`` makes, on ``root/stream``."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "stream"
        self.dir.mkdir(parents=True, exist_ok=True)

    @property
    def refused(self) -> Path:
        return self.dir / "REFUSED"

    def refuse(self, on: bool) -> None:
        """Kinesis refuses every call (on) or answers again (off)."""
        if on:
            self.refused.write_text("refused by the campaign\n", encoding="utf-8")
        else:
            self.refused.unlink(missing_ok=True)

    def _shard(self, shard_id: str) -> Path:
        return self.dir / f"{shard_id}.json"

    def records(self, shard_id: str) -> list[dict[str, Any]]:
        path = self._shard(shard_id)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []

    def put(self, shard_id: str, records: Sequence[Mapping[str, Any]]) -> None:
        by_seq = {r["SequenceNumber"]: dict(r) for r in self.records(shard_id)}
        for r in records:
            by_seq.setdefault(r["SequenceNumber"], dict(r))
        _write(
            self._shard(shard_id), sorted(by_seq.values(), key=lambda r: int(r["SequenceNumber"]))
        )

    def _check(self, operation: str) -> None:
        if self.refused.exists():
            from botocore.exceptions import ClientError

            raise ClientError(
                {
                    "Error": {
                        "Code": "ResourceNotFoundException",
                        "Message": "Stream qldb-settle-simulated under account 000000000000 "
                        "not found.",
                    }
                },
                operation,
            )

    # --- boto3's Kinesis client ---------------------------------------------------------------

    def get_shard_iterator(
        self,
        *,
        StreamName: str,
        ShardId: str,
        ShardIteratorType: str,
        StartingSequenceNumber: str,
    ) -> dict[str, Any]:
        self._check("GetShardIterator")
        if ShardIteratorType != "AT_SEQUENCE_NUMBER":
            raise ValueError(f"FileStream: {ShardIteratorType} is not emulated")
        start = int(StartingSequenceNumber)
        records = self.records(ShardId)
        at = next((i for i, r in enumerate(records) if int(r["SequenceNumber"]) >= start), None)
        return {"ShardIterator": f"{ShardId}|{len(records) if at is None else at}"}

    def get_records(self, *, ShardIterator: str, Limit: int = 1000) -> dict[str, Any]:
        self._check("GetRecords")
        shard_id, _, index = ShardIterator.rpartition("|")
        records = self.records(shard_id)
        i = int(index)
        page = records[i : i + Limit]
        return {
            "Records": [
                {
                    "SequenceNumber": r["SequenceNumber"],
                    "PartitionKey": r["PartitionKey"],
                    "Data": base64.b64decode(r["Data"]),
                    "ApproximateArrivalTimestamp": datetime.fromtimestamp(
                        float(r["ApproximateArrivalTimestamp"]), UTC
                    ),
                }
                for r in page
            ],
            "NextShardIterator": f"{shard_id}|{i + len(page)}",
            "MillisBehindLatest": 0 if i + len(page) >= len(records) else 1000,
        }


class EventSourceMapping:
    """AWS's part between the stream and the ingest function: every delivered event's records
    are in the stream (``deliver``), and a batch whose retries ran out becomes one message on
    the on-failure queue (``give_up``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.queue = FileQueue(root)
        self.stream = FileStream(root)

    def deliver(self, event_file: Path) -> None:
        for shard_id, records in _kinesis_records(event_file).items():
            self.stream.put(shard_id, records)

    def give_up(self, event_file: Path, *, attempts: int) -> dict[str, Any]:
        """The on-failure message of the batch that is ``event_file`` (one shard), as the event
        source mapping sends it once its retries are exhausted."""
        event = json.loads(event_file.read_text(encoding="utf-8"))
        entries = event["Records"]
        shard_id = entries[0]["eventID"].split(":")[0]
        seqs = sorted(int(e["kinesis"]["sequenceNumber"]) for e in entries)
        arrivals = sorted(float(e["kinesis"]["approximateArrivalTimestamp"]) for e in entries)
        now = datetime.now(UTC)
        body = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": FUNCTION_ARN,
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": str(seqs[0]),
                "endSequenceNumber": str(seqs[-1]),
                "approximateArrivalOfFirstRecord": _iso(arrivals[0]),
                "approximateArrivalOfLastRecord": _iso(arrivals[-1]),
                "batchSize": len(entries),
                "streamArn": entries[0]["eventSourceARN"],
            },
        }
        self.queue.send(body)
        return body


def _iso(epoch: float) -> str:
    text = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _kinesis_records(event_file: Path) -> dict[str, list[dict[str, Any]]]:
    event = json.loads(event_file.read_text(encoding="utf-8"))
    out: dict[str, list[dict[str, Any]]] = {}
    for e in event["Records"]:
        k = e["kinesis"]
        out.setdefault(e["eventID"].split(":")[0], []).append(
            {
                "SequenceNumber": k["sequenceNumber"],
                "PartitionKey": k["partitionKey"],
                "Data": k["data"],
                "ApproximateArrivalTimestamp": k["approximateArrivalTimestamp"],
            }
        )
    return out


def patch_boto3(root: Path) -> None:
    """Make every boto3 session's ``sqs`` and ``kinesis`` clients the files of ``root``."""
    import boto3.session

    real = boto3.session.Session.client
    queue, stream = FileQueue(root), FileStream(root)

    def client(self: Any, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name == "sqs":
            return queue
        if service_name == "kinesis":
            return stream
        return real(self, service_name, *args, **kwargs)

    boto3.session.Session.client = client
