"""The metric contract between the handlers and the dashboard: CloudWatch EMF, one namespace.

The handlers publish these names with aws-lambda-powertools ``Metrics`` (namespace from
``POWERTOOLS_METRICS_NAMESPACE``, service from ``POWERTOOLS_SERVICE_NAME``, both set by the
stack), so every metric carries the dimension ``service`` = the function's service name (see
``service_names``); ``RecordsReceived`` carries ``RecordType`` as well (one metric per record
type, e.g. with ``single_metric(..., default_dimensions=metrics.default_dimensions)``). The
dashboard and the alarms read exactly these names and dimensions: a handler that publishes other
names or dimensions leaves its widgets empty.
"""

from __future__ import annotations

from typing import Final

NAMESPACE: Final = "QldbSettle"

# Dimensions.
SERVICE_DIMENSION: Final = "service"
RECORD_TYPE_DIMENSION: Final = "RecordType"
RECORD_TYPES: Final = ("BLOCK_SUMMARY", "REVISION_DETAILS", "CONTROL")

# Ingest (unit Count unless noted).
RECORDS_RECEIVED: Final = "RecordsReceived"  # dimension RecordType
STATEMENTS_BUFFERED: Final = "StatementsBuffered"
REVISIONS_BUFFERED: Final = "RevisionsBuffered"
DUPLICATES: Final = "Duplicates"
CONFLICTS: Final = "Conflicts"
LATE_RECORDS: Final = "LateRecords"
REJECTED_RECORDS: Final = "RejectedRecords"
INGEST_DELAY: Final = "IngestDelay"  # Milliseconds: arrival - commit, one value per record
OUT_OF_ORDERNESS: Final = "OutOfOrderness"  # Count: highest sequenceNo seen - the record's
# Kinesis records an invocation handed back for retry (batchItemFailures: the buffer was
# unavailable, or the invocation's deadline came): Lambda does not count these as Errors.
RECORDS_RETRIED: Final = "RecordsRetried"

# Settler (unit Count unless noted).
BLOCKS_REPLAYED: Final = "BlocksReplayed"
STATEMENTS_REPLAYED: Final = "StatementsReplayed"
REVISIONS_APPLIED: Final = "RevisionsApplied"
REPLAY_LAG: Final = "ReplayLag"  # Milliseconds: replay - commit, one value per block
BUFFER_DEPTH: Final = "BufferDepth"  # pending blocks after the cycle
OLDEST_PENDING_AGE: Final = "OldestPendingAge"  # Milliseconds: now - oldest pending commit
HELD_BY_WINDOW: Final = "HeldByWindow"
EARLY_RELEASES: Final = "EarlyReleases"
GAPS_PASSED: Final = "GapsPassed"
QUARANTINED_BLOCKS: Final = "QuarantinedBlocks"
LATE_BLOCKS: Final = "LateBlocks"
DIGESTS_UNVERIFIED: Final = "DigestsUnverified"
CYCLE_DURATION: Final = "CycleDuration"  # Milliseconds
HALTED: Final = "Halted"  # 0 or 1, once per cycle
GAPS_HELD: Final = "GapsHeld"  # 1 when a gap waited because the ingest was impaired
LEASE_HELD: Final = "LeaseHeld"  # 1 when the cycle stood aside for another settler
WINDOW_SECONDS: Final = "WindowSeconds"  # Seconds: the settle window the cycle actually used

INGEST_METRICS: Final = (
    RECORDS_RECEIVED,
    STATEMENTS_BUFFERED,
    REVISIONS_BUFFERED,
    DUPLICATES,
    CONFLICTS,
    LATE_RECORDS,
    REJECTED_RECORDS,
    INGEST_DELAY,
    OUT_OF_ORDERNESS,
    RECORDS_RETRIED,
)
SETTLER_METRICS: Final = (
    BLOCKS_REPLAYED,
    STATEMENTS_REPLAYED,
    REVISIONS_APPLIED,
    REPLAY_LAG,
    BUFFER_DEPTH,
    OLDEST_PENDING_AGE,
    HELD_BY_WINDOW,
    EARLY_RELEASES,
    GAPS_PASSED,
    QUARANTINED_BLOCKS,
    LATE_BLOCKS,
    DIGESTS_UNVERIFIED,
    CYCLE_DURATION,
    HALTED,
    GAPS_HELD,
    LEASE_HELD,
    WINDOW_SECONDS,
)


def service_names(service_name: str) -> tuple[str, str]:
    """``POWERTOOLS_SERVICE_NAME`` of the ingest and the settler function."""
    return f"{service_name}-ingest", f"{service_name}-settler"
