"""Every CDK context key of the app, with its default and meaning, in one table (``CONTEXT``),
and ``cdk.json`` rendered from it.

``cdk.json`` is generated from ``CONTEXT`` (``python -m infra.config > cdk.json``; a test keeps
them equal), so the context documents itself: each key is preceded by a ``// key`` entry holding
its meaning. What the values must be, alone and against each other, is ``infra.config``: the table
changes when a key is added or its default moves, the checks when a rule does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Scalar = str | int | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ContextKey:
    name: str
    default: Scalar
    meaning: str
    # (profile, value) pairs: the key's value under each ``profile`` when it is "auto" (its
    # default); an explicit value wins over the profile's.
    by_profile: tuple[tuple[str, Scalar], ...] = ()


# The order of this table is the order of cdk.json and of docs/deploy.md.
CONTEXT: tuple[ContextKey, ...] = (
    ContextKey(
        name="serviceName",
        default="qldb-settle",
        meaning="prefix of stack names, the OpenSearch domain, the SSM parameter, the dashboard "
        "and the Powertools service names (lower case letters, digits and hyphens, 3-20 chars)",
    ),
    # Ledgers (QLDB reached end of support on 2025-07-31: off unless you still can create them).
    ContextKey(
        name="deployLedgers",
        default=False,
        meaning="create the source and destination QLDB ledgers (stack <serviceName>-ledgers); "
        "off: the ledgers already exist (QLDB can no longer be created after its end of support)",
    ),
    ContextKey(
        name="sourceLedgerName",
        default="qldb-settle-source",
        meaning="the source ledger: created when deployLedgers, streamed when deployJournalStream",
    ),
    ContextKey(
        name="destinationLedgerName",
        default="qldb-settle-replica",
        meaning="the destination ledger the settler replays into (qldb:SendCommand is granted on "
        "this ledger only); created when deployLedgers, otherwise it must exist",
    ),
    ContextKey(
        name="destination",
        default="qldb",
        meaning="where the settler replays: qldb (the destination ledger) or postgresql (an "
        "Aurora PostgreSQL Serverless v2 cluster this app creates in a VPC of its own, the "
        "settler in that VPC, granted its secret only; docs/postgresql.md)",
    ),
    ContextKey(
        name="postgresqlMaxCapacity",
        default=4,
        meaning="Aurora Serverless v2 maximum capacity in ACUs (minimum 0.5), with "
        "destination=postgresql",
    ),
    ContextKey(
        name="postgresqlSchema",
        default="qldb",
        meaning="the PostgreSQL schema of the replica's tables, with destination=postgresql",
    ),
    ContextKey(
        name="destinationPermissionsMode",
        default="STANDARD",
        meaning="STANDARD or ALLOW_ALL: the destination ledger's permissions mode; STANDARD also "
        "grants the PartiQL actions replay needs on that ledger's tables",
    ),
    # Stream.
    ContextKey(
        name="existingStreamArn",
        default="",
        meaning="ARN of an existing Kinesis stream of QLDB journal records to settle; empty: the "
        "stack <serviceName>-streaming creates the stream, its KMS key and the Firehose backup",
    ),
    ContextKey(
        name="existingStreamKeyArn",
        default="",
        meaning="KMS key ARN of existingStreamArn when it is encrypted with a customer key "
        "(the ingest function is granted kms:Decrypt on it); empty: none",
    ),
    ContextKey(
        name="shardCount",
        default=4,
        meaning="shards of the created Kinesis stream",
    ),
    ContextKey(
        name="streamRetentionHours",
        default=168,
        meaning="retention of the created stream (24-8760): how long redrive can re-read a range; "
        "ingestMaxRecordAgeSeconds must stay below it minus 1 h",
    ),
    ContextKey(
        name="existingStreamRetentionHours",
        default=0,
        meaning="retention of existingStreamArn in hours (24-8760), required with it (0: not "
        "given): the ingestMaxRecordAgeSeconds check and the failed-ranges age alarm use it",
    ),
    ContextKey(
        name="deployJournalStream",
        default=False,
        meaning="create the QLDB journal stream from sourceLedgerName into the created Kinesis "
        "stream (aggregation on); needs a ledger that QLDB still serves",
    ),
    ContextKey(
        name="backupObjectLock",
        default="",
        meaning="Object Lock of the created raw backup bucket (the audit copy): GOVERNANCE or "
        "COMPLIANCE (default retention backupObjectLockDays); empty: none. Decide at the first "
        "deploy: a bucket's Object Lock cannot be turned off",
    ),
    ContextKey(
        name="backupObjectLockDays",
        default=365,
        meaning="default retention of each backup object version under backupObjectLock (1-36500)",
    ),
    ContextKey(
        name="journalStreamStartTime",
        default="2020-01-01T00:00:00Z",
        meaning="InclusiveStartTime of the journal stream (ISO 8601 UTC)",
    ),
    # Ingest.
    ContextKey(
        name="startingPosition",
        default="TRIM_HORIZON",
        meaning="where the ingest event source mapping starts: TRIM_HORIZON, LATEST or "
        "AT_TIMESTAMP (then startingPositionTimestamp)",
    ),
    ContextKey(
        name="startingPositionTimestamp",
        default="",
        meaning="ISO 8601 UTC instant for startingPosition AT_TIMESTAMP; empty otherwise",
    ),
    ContextKey(
        name="ingestBatchSize",
        default=100,
        meaning="Kinesis records per ingest invocation (1-10000)",
    ),
    ContextKey(
        name="ingestBatchingWindowSeconds",
        default=1,
        meaning="how long the event source mapping gathers records before invoking (0-300)",
    ),
    ContextKey(
        name="ingestParallelizationFactor",
        default=2,
        meaning="concurrent ingest batches per shard (1-10): the buffer reorders, so >1 is safe",
    ),
    ContextKey(
        name="ingestRetryAttempts",
        default=10,
        meaning="retries of a failing batch (bisected on error) before its shard and sequence "
        "range goes to the on-failure queue (0-10000)",
    ),
    ContextKey(
        name="ingestMaxRecordAgeSeconds",
        default=86400,
        meaning="records older than this go to the on-failure queue instead of being retried "
        "(60-604800); keep it below the stream retention so redrive can still re-read them",
    ),
    ContextKey(name="ingestMemoryMb", default=512, meaning="memory of the ingest function"),
    ContextKey(name="ingestTimeoutSeconds", default=60, meaning="timeout of the ingest function"),
    # Buffer.
    ContextKey(
        name="profile",
        default="production",
        meaning="production or dev: the buffer domain's sizing where its keys say auto. "
        "production: 3 data nodes (r6g.large.search) in 3 zones and 3 dedicated masters; dev: "
        "1 t3.small.search data node, no masters, one zone (no quorum to lose, no HA either)",
    ),
    ContextKey(
        name="indexPrefix",
        default="qldb-settle",
        meaning="OpenSearch index prefix (QLDB_SETTLE_INDEX_PREFIX of both functions)",
    ),
    ContextKey(
        name="operatorRoleArns",
        default="",
        meaning="comma-separated IAM role ARNs also allowed to call the buffer domain (for "
        "qldb-settle status, blocks, resolve, redrive); empty: only the two function roles",
    ),
    ContextKey(
        name="openSearchVersion",
        default="2.19",
        meaning="OpenSearch engine version of the buffer domain",
    ),
    ContextKey(
        name="openSearchInstanceType",
        default="auto",
        meaning="data node instance type of the buffer domain; auto: the profile's "
        "(production r6g.large.search, dev t3.small.search)",
        by_profile=(("production", "r6g.large.search"), ("dev", "t3.small.search")),
    ),
    ContextKey(
        name="openSearchDataNodes",
        default="auto",
        meaning="data nodes (a multiple of openSearchAvailabilityZones); auto: the profile's "
        "(production 3, dev 1)",
        by_profile=(("production", 3), ("dev", 1)),
    ),
    ContextKey(
        name="openSearchAvailabilityZones",
        default="auto",
        meaning="1, 2 or 3: zone awareness of the buffer domain (1 turns it off); auto: the "
        "profile's (production 3, dev 1)",
        by_profile=(("production", 3), ("dev", 1)),
    ),
    ContextKey(
        name="openSearchVolumeGb",
        default=20,
        meaning="gp3 EBS volume per data node, GiB",
    ),
    ContextKey(
        name="openSearchMasterNodes",
        default="auto",
        meaning="dedicated master nodes: 0 (none), 3 or 5; auto: the profile's (production 3, "
        "dev 0). production refuses 0 with fewer than 3 data nodes: two master-eligible nodes "
        "lose the master with one node",
        by_profile=(("production", 3), ("dev", 0)),
    ),
    ContextKey(
        name="openSearchMasterInstanceType",
        default="m6g.large.search",
        meaning="instance type of the dedicated master nodes, when openSearchMasterNodes > 0",
    ),
    ContextKey(
        name="openSearchMasterRoleArn",
        default="",
        meaning="IAM role ARN of the buffer domain's fine-grained access control master user "
        "(it must trust this account); empty: the app creates one (output BufferMasterRoleArn), "
        "assumable by the account's principals allowed sts:AssumeRole on it",
    ),
    ContextKey(
        name="vpcId",
        default="",
        meaning="an existing VPC to place the buffer domain in (with vpcSubnetIds and "
        "vpcAvailabilityZones; no lookup); the ingest, settler and export functions join it "
        "and reach the domain on 443. Empty: a public HTTPS endpoint (IAM and FGAC only)",
    ),
    ContextKey(
        name="vpcSubnetIds",
        default="",
        meaning="comma-separated private subnet ids of vpcId (with a route to AWS APIs: NAT or "
        "endpoints), one per openSearchAvailabilityZones, in the order of vpcAvailabilityZones",
    ),
    ContextKey(
        name="vpcAvailabilityZones",
        default="",
        meaning="comma-separated availability zones of vpcSubnetIds, one per subnet",
    ),
    # Settler.
    ContextKey(
        name="settleWindowSeconds",
        default=120,
        meaning="first value of the settle window SSM parameter (/<serviceName>/"
        "settle-window-seconds); the settler reads the parameter each cycle, so change it "
        "there at run time; changing this key changes only the parameter's value",
    ),
    ContextKey(
        name="bufferRetentionDays",
        default=0,
        meaning="QLDB_SETTLE_RETENTION_DAYS of the settler: replayed blocks committed longer "
        "ago than this are purged from the buffer (their headers stay, marked, for duplicates); "
        "0 keeps everything (the buffer grows forever)",
    ),
    ContextKey(
        name="earlyRelease",
        default=False,
        meaning="QLDB_SETTLE_EARLY_RELEASE: release a block the hash chain proves next before "
        "its window",
    ),
    ContextKey(
        name="settleRateMinutes",
        default=1,
        meaning="the settler runs every this many minutes (EventBridge schedule)",
    ),
    ContextKey(name="settlerMemoryMb", default=1024, meaning="memory of the settler function"),
    ContextKey(
        name="settlerTimeoutSeconds",
        default=50,
        meaning="timeout of the settler function; a cycle stops before it (at most 900, and "
        "below the schedule period settleRateMinutes * 60, so one cycle ends before the next "
        "tick)",
    ),
    ContextKey(
        name="logRetentionDays",
        default=30,
        meaning="retention of the functions' and the domain's log groups (a CloudWatch value)",
    ),
    # Replay of a journal export in S3 (QLDB's end of support: exports are what is left).
    ContextKey(
        name="exportBucket",
        default="",
        meaning="S3 bucket of a journal export (ExportJournalToS3 output) to replay into the "
        "buffer; empty: no export replay. Set: the export-ingest function and its state machine "
        "<serviceName>-export-replay are created, granted reads under exportPrefix only",
    ),
    ContextKey(
        name="exportPrefix",
        default="",
        meaning="the export's prefix in exportBucket (the folder of its EXPORTID.started.manifest, "
        "e.g. journalExport); empty: the whole bucket",
    ),
    ContextKey(
        name="exportLedgerArn",
        default="",
        meaning="ARN of the exported ledger (arn:aws:qldb:REGION:ACCOUNT:ledger/NAME; its region, "
        "account and name make the record ids); required with exportBucket",
    ),
    ContextKey(
        name="exportKeyArn",
        default="",
        meaning="KMS key ARN of an SSE-KMS export (the export-ingest function is granted "
        "kms:Decrypt on it); empty: SSE-S3",
    ),
    ContextKey(
        name="exportMemoryMb",
        default=1024,
        meaning="memory of the export-ingest function (its timeout is 900 s; it stops between "
        "objects before it and the state machine invokes it again)",
    ),
    # Monitoring.
    ContextKey(
        name="lagAlarmSeconds",
        default=300,
        meaning="the replay-lag and oldest-pending-age alarms fire when lag exceeds this: the "
        "window plus a margin. It is a key of its own because the window may change at run "
        "time (SSM); it must be above settleWindowSeconds",
    ),
    ContextKey(
        name="iteratorAgeAlarmSeconds",
        default=600,
        meaning="the iterator-age alarm fires when the ingest function falls this far behind "
        "the stream",
    ),
    ContextKey(
        name="alarmTopicArn",
        default="",
        meaning="SNS topic ARN the alarms notify; empty: the service stack creates one "
        "(<serviceName>-alarms, KMS-encrypted with a key of its own; output AlarmTopicArn): "
        "subscribe to it",
    ),
    # Packaging.
    ContextKey(
        name="lambdaLayers",
        default="build/layers",
        meaning="folder (relative to the project root, or absolute) holding the ingest/ and "
        "settler/ dependency layers built by python -m infra.build_layers; 'none' synthesizes "
        "without layers, for template checks only (the functions would not run)",
    ),
)

DEFAULTS: dict[str, Scalar] = {k.name: k.default for k in CONTEXT}

# CDK feature flags the app sets (in cdk.json and in code, so `python -m infra.app` agrees).
FEATURE_FLAGS: dict[str, Any] = {
    # Server access logs delivered under a bucket policy, not the legacy LogDeliveryWrite ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
}


def cdk_json() -> dict[str, Any]:
    """The content of ``cdk.json``: the app command and every context key, each preceded by a
    ``// key`` entry stating its meaning and default."""
    context: dict[str, Any] = {
        "//": "qldb-settle context: each key follows a '// key' entry with its meaning and "
        "default. Generated by `python -m infra.config > cdk.json` from infra/context.py.",
    }
    for key in CONTEXT:
        context[f"// {key.name}"] = f"{key.meaning} (default {json.dumps(key.default)})"
        context[key.name] = key.default
    context.update(FEATURE_FLAGS)
    return {
        "app": ".venv/bin/python -m infra.app",
        "watch": {"include": ["infra/**"], "exclude": ["build/**", "cdk.out/**"]},
        "context": context,
    }


def render_cdk_json() -> str:
    return json.dumps(cdk_json(), indent=2) + "\n"


def context_table() -> Mapping[str, tuple[Scalar, str]]:
    return {k.name: (k.default, k.meaning) for k in CONTEXT}
