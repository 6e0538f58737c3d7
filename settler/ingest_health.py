"""Is the ingest still holding blocks back? The settler asks before it passes a gap (issue 19).

A gap the window rule would pass may be a block the ingest has not delivered yet rather than
one that never comes: a batch in the ingest function's on-failure queue (its retries ran out
during an OpenSearch blip), or records behind an iterator age larger than the window. Passing
the gap then would make them late. ``aws_ingest_health`` answers from AWS, once per cycle:

- the failure queue (SQS ``GetQueueAttributes``: visible and in-flight messages) must be empty;
- the ingest function's ``IteratorAge`` (CloudWatch ``AWS/Lambda``, ``FunctionName``, the
  maximum of the last five minutes, the metric the IteratorAge alarm reads) must be below the
  window.

Anything else is a reason, and so is a failure to read either (the gap waits: holding is safe,
passing is not). Locally the buffer is what knows: ``redrive`` keeps every range it could not read
as a ``failed-range`` rejection, and unresolved rejections hold gaps in ``settler.cycle``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

LOOKBACK = timedelta(minutes=5)
# Where the settler (the Lambda's environment, the CLI's defaults) finds the two sources.
FAILURE_QUEUE_ENV = "QLDB_SETTLE_FAILURE_QUEUE_URL"
INGEST_FUNCTION_ENV = "QLDB_SETTLE_INGEST_FUNCTION"


def aws_ingest_health(
    *,
    window_seconds: float,
    queue_url: str | None,
    function_name: str | None,
    sqs: Any = None,
    cloudwatch: Any = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Callable[[], str | None] | None:
    """The check for ``settle(ingest_health=...)``; None when neither source is configured."""
    if not queue_url and not function_name:
        return None

    def check() -> str | None:
        reasons: list[str] = []
        if queue_url:
            reasons += _queue(sqs, queue_url)
        if function_name:
            reasons += _iterator_age(cloudwatch, function_name, window_seconds, clock())
        return "; ".join(reasons) or None

    return check


def _client(given: Any, name: str) -> Any:
    if given is not None:
        return given
    import boto3
    from botocore.config import Config

    # Short timeouts: this read runs inside the settler's invocation (runtime.deadline).
    config = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3})
    return boto3.client(name, config=config)


def _queue(sqs: Any, url: str) -> list[str]:
    try:
        attrs = _client(sqs, "sqs").get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        waiting = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
    except Exception as exc:  # unreadable: hold, never guess
        return [f"the ingest's failure queue could not be read ({type(exc).__name__}: {exc})"]
    if waiting:
        return [
            f"{waiting} failed batch(es) wait in the ingest's failure queue (qldb-settle redrive "
            "re-reads them)"
        ]
    return []


def _iterator_age(cw: Any, function: str, window_seconds: float, now: datetime) -> list[str]:
    try:
        points = _client(cw, "cloudwatch").get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="IteratorAge",
            Dimensions=[{"Name": "FunctionName", "Value": function}],
            StartTime=now - LOOKBACK,
            EndTime=now,
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
    except Exception as exc:
        return [f"the ingest's iterator age could not be read ({type(exc).__name__}: {exc})"]
    if not points:  # no batch read in five minutes: nothing is behind
        return []
    age_s = max(float(p["Maximum"]) for p in points) / 1000.0
    if age_s >= window_seconds:
        return [
            f"the ingest function is {age_s:.0f} s behind the stream (iterator age), not below "
            f"the {window_seconds:.0f} s window"
        ]
    return []
