"""The ingest Lambda: a Kinesis batch in, ``{"batchItemFailures": [...]}`` out.

Thin: decode the event (``ingest.decode``), put it into the buffer (``ingest.service``), turn the
report into the response and the EMF metrics (names from ``handlers.metrics``). The buffer is built
once per container, lazily, from the environment (``compose.settings.Settings.from_env`` and
``compose.roots.open_buffer``, imported downward; kept by ``compose.container``); tests give their
own with ``use_buffer``.

Failures: a Kinesis record whose items the buffer could not take because of a ``TransientError``
is reported, and so is every record after it (Kinesis retries from the lowest failed sequence
number; order within the shard is kept). A rejected record is *not* a failure: reporting it would
block the shard forever; it is kept in the buffer with its reason and counted.

Time: every buffer request ends by the invocation's deadline (``runtime.deadline``, the remaining
time less a margin), and what is not stored by then is reported as failures, so a slow buffer
ends in a partial batch response, never in a timeout that fails the whole batch.

Metrics count only the Kinesis records this invocation acknowledges (puts are made of whole
records: ``ingest_items(units=...)``), so a retried record is counted once, by the invocation
that stores it, not on every retry.

The partial batch response is written here, not with powertools' ``BatchProcessor``: that calls a
record handler once per Kinesis record, which would turn the one bulk put of a whole batch (one
SQLite transaction, one OpenSearch ``_bulk``) into a put per record, N round trips where one does.
What it would give beyond that (the ``batchItemFailures`` shape, the lowest failed sequence number
first) is a few lines of ``handler`` below: the sequence numbers of the Kinesis records from the
first one not wholly stored on, in order (tests/ingest/test_ingest_buffer.py).

aws-lambda-powertools is imported here only, and only when metrics are published (the core
never imports it; without it, metrics are skipped with a warning).
"""

from __future__ import annotations

import logging
from typing import Any

from buffer.port import SettlingBuffer
from compose.container import ContainerPart
from compose.roots import open_buffer
from compose.settings import Settings
from handlers.metrics import (
    CONFLICTS,
    DUPLICATES,
    INGEST_DELAY,
    LATE_RECORDS,
    NAMESPACE,
    OUT_OF_ORDERNESS,
    RECORD_TYPE_DIMENSION,
    RECORDS_RECEIVED,
    RECORDS_RETRIED,
    REJECTED_RECORDS,
    REVISIONS_BUFFERED,
    STATEMENTS_BUFFERED,
)
from ingest.decode import DecodedItem, decode_kinesis_event
from ingest.service import IngestReport, ingest_items
from journal.records import RECORD_TYPES
from runtime import deadline
from runtime.errors import TransientError

log = logging.getLogger(__name__)

_buffer: ContainerPart[SettlingBuffer] = ContainerPart(lambda: open_buffer(Settings.from_env()))
# Stop starting buffer requests this long before the invocation's end (at least 2 s, at most
# 10 s, a tenth of what is left): enough to answer with batchItemFailures instead of timing out.
MAX_MARGIN_MS = 10_000
MIN_MARGIN_MS = 2_000


def use_buffer(buffer: SettlingBuffer | None) -> None:
    """Replace the composition root's buffer (tests), or forget it (None: rebuilt from the
    environment on the next invocation)."""
    _buffer.use(buffer)


def seconds_left(context: Any) -> float | None:
    """The invocation's remaining time less the margin, in seconds (None without a context)."""
    return deadline.seconds_before_end(
        context, least_ms=MIN_MARGIN_MS, most_ms=MAX_MARGIN_MS, share=0.1
    )


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    decoded = decode_kinesis_event(event)
    items: list[DecodedItem] = []
    owner: list[int] = []  # index of the Kinesis record each item came from
    for i, rec in enumerate(decoded):
        items.extend(rec.items)
        owner.extend([i] * len(rec.items))
    with deadline.until(seconds_left(context)):
        report = ingest_items(_buffer.get(), items, units=[len(r.items) for r in decoded])
    failures: list[str] = []
    if report.unstored_from is not None:
        first = owner[report.unstored_from]
        failures = [s for r in decoded[first:] if (s := r.sequence_number) is not None]
        if not failures:
            # Nothing to name: fail the whole batch rather than lose what was not stored.
            raise TransientError(report.transient or "buffer unavailable")
    log.info(
        "ingested %d records from %d Kinesis records: stored %s, %d duplicates, %d conflicts, "
        "%d late, %d rejected, %d Kinesis records to retry",
        report.records, len(decoded), report.put.stored, report.put.duplicates,
        report.put.conflicts, report.put.late, report.put.rejected, len(failures),
    )  # fmt: skip
    publish_metrics(report, retried=len(failures))
    return {"batchItemFailures": [{"itemIdentifier": s} for s in failures]}


def publish_metrics(report: IngestReport, retried: int = 0) -> None:
    """The ingest metrics of DESIGN.md as CloudWatch EMF (printed to stdout)."""
    try:
        from aws_lambda_powertools import Metrics
        from aws_lambda_powertools.metrics import MetricUnit, single_metric
    except ImportError:
        log.warning("aws_lambda_powertools is not importable: ingest metrics not published")
        return
    for record_type in RECORD_TYPES:
        with single_metric(
            name=RECORDS_RECEIVED,
            unit=MetricUnit.Count,
            value=report.received.get(record_type, 0),
            namespace=NAMESPACE,
        ) as metric:
            metric.add_dimension(name=RECORD_TYPE_DIMENSION, value=record_type)
    metrics = Metrics(namespace=NAMESPACE)
    put = report.put
    metrics.add_metric(STATEMENTS_BUFFERED, MetricUnit.Count, put.stored.get("statements", 0))
    metrics.add_metric(REVISIONS_BUFFERED, MetricUnit.Count, put.stored.get("revisions", 0))
    metrics.add_metric(DUPLICATES, MetricUnit.Count, put.duplicates)
    metrics.add_metric(CONFLICTS, MetricUnit.Count, put.conflicts)
    metrics.add_metric(LATE_RECORDS, MetricUnit.Count, put.late)
    metrics.add_metric(REJECTED_RECORDS, MetricUnit.Count, put.rejected)
    for delay in report.ingest_delays_ms:
        metrics.add_metric(INGEST_DELAY, MetricUnit.Milliseconds, delay)
    for distance in report.out_of_orderness:
        metrics.add_metric(OUT_OF_ORDERNESS, MetricUnit.Count, distance)
    metrics.add_metric(RECORDS_RETRIED, MetricUnit.Count, retried)
    metrics.flush_metrics()
