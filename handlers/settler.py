"""The settler Lambda (EventBridge schedule): one settle cycle per invocation.

Thin: settings from the environment, the window from the SSM parameter named by
``QLDB_SETTLE_WINDOW_PARAMETER`` (powertools' ``parameters`` with its cache, kept for less than the
schedule's period so each scheduled cycle reads it afresh; an ``SSMProvider`` of its own, not
``get_parameter``'s default one, so that its botocore client has the settler's short timeouts; a
failed read keeps the container's last good value, and with none the cycle is skipped with an
error), a deadline from the Lambda context
minus a margin (the cycle starts no destination transaction past it) and a hard one that every
client call keeps (``runtime.deadline``), the buffer and destination from one lazy composition root
(``compose.roots``, imported downward; built on the first invocation and kept for the container by
``compose.container``; tests give their own with ``use_parts``), then ``settler.cycle.settle`` and
its report turned into the response and the EMF metrics (names from ``handlers.metrics``;
powertools' ``Metrics``, flushed once per invocation by ``log_metrics``, whatever the invocation's
outcome).

The clock is read here, at the edge, never in the core. aws-lambda-powertools (in the settler's
layer) and boto3 are imported here only: never by the core.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parameters import SSMProvider
from botocore.config import Config

from buffer.port import SettlingBuffer
from compose.container import ContainerPart
from compose.roots import open_buffer, open_destination
from compose.settings import Settings, retention_of
from destination.port import Destination
from handlers.metrics import (
    BLOCKS_REPLAYED,
    BUFFER_DEPTH,
    CYCLE_DURATION,
    DIGESTS_UNVERIFIED,
    EARLY_RELEASES,
    GAPS_HELD,
    GAPS_PASSED,
    HALTED,
    HELD_BY_WINDOW,
    LATE_BLOCKS,
    LEASE_HELD,
    NAMESPACE,
    OLDEST_PENDING_AGE,
    QUARANTINED_BLOCKS,
    REPLAY_LAG,
    REVISIONS_APPLIED,
    STATEMENTS_REPLAYED,
    WINDOW_SECONDS,
)
from runtime import deadline
from runtime.errors import LeaseHeld
from settler.cycle import DEFAULT_LEASE_SECONDS, SettlePolicy, settle
from settler.cycle_report import SettleReport
from settler.ingest_health import FAILURE_QUEUE_ENV, INGEST_FUNCTION_ENV, aws_ingest_health

log = logging.getLogger(__name__)

WINDOW_PARAMETER_ENV = "QLDB_SETTLE_WINDOW_PARAMETER"
OWNER_PREFIX = "settler-lambda"
# The lease outlives the invocation by this much: a settler killed at its timeout locks the
# next one out for at most this long (a live one renews it as the cycle runs).
LEASE_MARGIN_SECONDS = 30.0
# Stop starting destination transactions when less than this is left of the invocation.
DEADLINE_MARGIN_MS = 15_000
MIN_DEADLINE_MARGIN_MS = 2_000
# No client call of the cycle (buffer, destination, AWS reads) may run closer than this to the
# invocation's end (runtime.deadline): what is cut there is rolled back or repaired next cycle,
# where a Lambda timeout would cut it anywhere.
HARD_MARGIN_MS = 1_000
# The settler's own AWS reads (SSM here, SQS and CloudWatch in settler.ingest_health).
AWS_CLIENT_CONFIG = {"connect_timeout": 3, "read_timeout": 5, "retries": {"max_attempts": 3}}
# How long powertools keeps a window read: less than the schedule's period (one minute), so every
# scheduled cycle reads the parameter afresh and only invocations closer together share a read.
WINDOW_CACHE_SECONDS = 30

_ssm: SSMProvider | None = None
# One Metrics per container: ``log_metrics`` flushes what an invocation added, once, at its end.
metrics = Metrics(namespace=NAMESPACE)
# The last value read of each window parameter, kept for the container's life.
_last_good_window: dict[str, float] = {}


def use_parts(parts: tuple[SettlingBuffer, Destination] | None) -> None:
    """Replace the composition root's buffer and destination (tests), or forget them (None:
    rebuilt from the environment on the next invocation)."""
    _parts.use(parts)


def _open_parts() -> tuple[SettlingBuffer, Destination]:
    settings = Settings.from_env()
    return open_buffer(settings), open_destination(settings)


_parts: ContainerPart[tuple[SettlingBuffer, Destination]] = ContainerPart(_open_parts)


class WindowUnreadable(RuntimeError):
    """The SSM window parameter could not be read and this container has no good value of it:
    the cycle is skipped with an error (the Errors alarm sees it) rather than settled with a
    window nobody chose."""


def window_seconds(settings: Settings, env: dict[str, str] | None = None) -> float:
    """The settle window: the SSM parameter's value when one is named, else the setting
    (``QLDB_SETTLE_WINDOW_SECONDS``, which the stack sets from the context).

    A read that fails (throttled, missing, malformed) falls back to the last value this
    container read successfully, never to the setting: one throttled read after an operator
    raised the window must not release blocks early. With no good value yet it raises
    ``WindowUnreadable``.
    """
    environ = os.environ if env is None else env
    name = environ.get(WINDOW_PARAMETER_ENV)
    if not name:
        return settings.window_seconds
    global _ssm  # noqa: PLW0603
    try:
        if _ssm is None:
            _ssm = SSMProvider(boto_config=Config(**AWS_CLIENT_CONFIG))
        raw = _ssm.get(name, max_age=WINDOW_CACHE_SECONDS)
        value = float(raw)  # type: ignore[arg-type]
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"not a window in seconds: {raw!r}")
    except Exception as exc:  # unreachable, missing or malformed
        last = _last_good_window.get(name)
        if last is None:
            raise WindowUnreadable(
                f"settle window parameter {name} unreadable ({exc}) and no earlier value in "
                "this container: cycle skipped"
            ) from exc
        log.warning(
            "settle window parameter %s unreadable (%s): keeping its last value, %s s",
            name, exc, last,
        )  # fmt: skip
        return last
    _last_good_window[name] = value
    return value


def deadline_from(context: Any) -> Callable[[], bool] | None:
    """True once less than the margin is left of the invocation (None without a context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    margin = max(MIN_DEADLINE_MARGIN_MS, min(DEADLINE_MARGIN_MS, remaining() // 5))
    return lambda: bool(remaining() < margin)


def hard_seconds_left(context: Any) -> float | None:
    """The invocation's end less ``HARD_MARGIN_MS``, in seconds (None without a context)."""
    return deadline.seconds_before_end(context, least_ms=HARD_MARGIN_MS)


def owner_of(context: Any) -> str:
    """The lease owner of this invocation: ``settler-lambda:REQUEST_ID``."""
    request = getattr(context, "aws_request_id", None) or uuid.uuid4().hex
    return f"{OWNER_PREFIX}:{request}"


def lease_seconds_of(context: Any) -> float:
    """The invocation's remaining time plus a margin (the default without a context)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return DEFAULT_LEASE_SECONDS
    return float(remaining()) / 1000.0 + LEASE_MARGIN_SECONDS


def _settle(
    buffer: SettlingBuffer,
    destination: Destination,
    settings: Settings,
    window: float,
    context: Any,
) -> SettleReport:
    policy = SettlePolicy(
        window_seconds=window,
        early_release=settings.early_release,
        lease_seconds=lease_seconds_of(context),
        retention=retention_of(settings),
    )
    return settle(
        buffer,
        destination,
        now=datetime.now(UTC),
        policy=policy,
        deadline=deadline_from(context),
        owner=owner_of(context),
        ingest_health=aws_ingest_health(
            window_seconds=window,
            queue_url=os.environ.get(FAILURE_QUEUE_ENV),
            function_name=os.environ.get(INGEST_FUNCTION_ENV),
        ),
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda entry point: one cycle, its metrics flushed once whatever the outcome.

    An invocation that fails before its cycle (``WindowUnreadable``) has no metrics to flush: its
    error is what the Errors alarm counts, so powertools' empty-flush warning is silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        result: dict[str, Any] = _handle(event, context)
        return result


@metrics.log_metrics
def _handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = Settings.from_env()
    window = window_seconds(settings)
    buffer, destination = _parts.get()
    started = time.monotonic()
    try:
        with deadline.until(hard_seconds_left(context)):
            report = _settle(buffer, destination, settings, window, context)
    except LeaseHeld as exc:
        log.warning("cycle skipped: %s", exc)
        publish_lease_held()
        return {"skipped": str(exc)}
    duration_ms = (time.monotonic() - started) * 1000.0
    if report.halted:
        log.error("settler halted: %s", report.halt_reason)
    log.info(
        "settled %d blocks (%d statements, %d revisions) in %.0f ms; held %d, gaps passed %d, "
        "late %d, quarantined %d, deadline reached %s",
        report.blocks, report.statements, report.revisions, duration_ms, report.held_by_window,
        report.gaps_passed, report.late, report.quarantined, report.deadline_reached,
    )  # fmt: skip
    publish_metrics(report, duration_ms, window)
    return {**report.to_json(), "window_seconds": window}


def publish_lease_held() -> None:
    """``LeaseHeld`` = 1: this invocation stood aside for another settler."""
    metrics.add_metric(LEASE_HELD, MetricUnit.Count, 1)


def publish_metrics(report: SettleReport, duration_ms: float, window: float) -> None:
    """The settler metrics of DESIGN.md, added for ``log_metrics`` to print as CloudWatch EMF."""
    count, ms = MetricUnit.Count, MetricUnit.Milliseconds
    metrics.add_metric(BLOCKS_REPLAYED, count, report.blocks)
    metrics.add_metric(STATEMENTS_REPLAYED, count, report.statements)
    metrics.add_metric(REVISIONS_APPLIED, count, report.revisions)
    for lag in report.lag_ms:
        metrics.add_metric(REPLAY_LAG, ms, lag)
    metrics.add_metric(BUFFER_DEPTH, count, report.buffer_depth)
    if report.oldest_pending_age_ms is not None:
        metrics.add_metric(OLDEST_PENDING_AGE, ms, report.oldest_pending_age_ms)
    metrics.add_metric(HELD_BY_WINDOW, count, report.held_by_window)
    metrics.add_metric(EARLY_RELEASES, count, report.early_released)
    metrics.add_metric(GAPS_PASSED, count, report.gaps_passed)
    metrics.add_metric(QUARANTINED_BLOCKS, count, report.quarantined)
    metrics.add_metric(LATE_BLOCKS, count, report.late)
    metrics.add_metric(DIGESTS_UNVERIFIED, count, report.digests_unverified)
    metrics.add_metric(CYCLE_DURATION, ms, duration_ms)
    metrics.add_metric(HALTED, count, 1 if report.halted else 0)
    metrics.add_metric(LEASE_HELD, count, 0)
    metrics.add_metric(GAPS_HELD, count, 1 if report.gap_held else 0)
    metrics.add_metric(WINDOW_SECONDS, MetricUnit.Seconds, window)
