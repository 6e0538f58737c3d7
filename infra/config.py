"""The app's configuration: every CDK context key, with its default and meaning, in one table.

``cdk.json`` is generated from ``CONTEXT`` (``python -m infra.config > cdk.json``; a test keeps
them equal), so the context documents itself: each key is preceded by a ``// key`` entry holding
its meaning. Values given with ``cdk synth -c key=value`` arrive as strings and are parsed here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runtime.errors import ConfigError

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

_NAME = re.compile(r"^[a-z][a-z0-9-]{2,19}$")
_LEDGER = re.compile(r"^(?!^.*--)(?!^[0-9]+$)(?!^-)(?!.*-$)^[A-Za-z0-9-]{1,32}$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.()'/-]{1,900}$")  # no wildcard or condition characters
_LEDGER_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:qldb:[a-z0-9-]+:\d{12}:ledger/[A-Za-z0-9_-]{1,32}$")
_STARTING = ("TRIM_HORIZON", "LATEST", "AT_TIMESTAMP")
PROFILES = ("production", "dev")
# ingestMaxRecordAgeSeconds stays this far below the stream retention (redrive's time to act).
RETENTION_MARGIN_SECONDS = 3600
_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The parsed context, one field per key of ``CONTEXT`` (snake case)."""

    service_name: str
    deploy_ledgers: bool
    source_ledger_name: str
    destination_ledger_name: str
    destination: str
    postgresql_max_capacity: int
    postgresql_schema: str
    destination_permissions_mode: str
    existing_stream_arn: str
    existing_stream_key_arn: str
    shard_count: int
    stream_retention_hours: int
    existing_stream_retention_hours: int
    deploy_journal_stream: bool
    journal_stream_start_time: str
    starting_position: str
    starting_position_timestamp: str
    ingest_batch_size: int
    ingest_batching_window_seconds: int
    ingest_parallelization_factor: int
    ingest_retry_attempts: int
    ingest_max_record_age_seconds: int
    ingest_memory_mb: int
    ingest_timeout_seconds: int
    index_prefix: str
    operator_role_arns: str
    open_search_version: str
    open_search_instance_type: str
    open_search_data_nodes: int
    open_search_availability_zones: int
    open_search_volume_gb: int
    open_search_master_nodes: int
    open_search_master_instance_type: str
    open_search_master_role_arn: str
    vpc_id: str
    vpc_subnet_ids: str
    vpc_availability_zones: str
    profile: str
    backup_object_lock: str
    backup_object_lock_days: int
    buffer_retention_days: int
    settle_window_seconds: int
    early_release: bool
    settle_rate_minutes: int
    settler_memory_mb: int
    settler_timeout_seconds: int
    log_retention_days: int
    export_bucket: str
    export_prefix: str
    export_ledger_arn: str
    export_key_arn: str
    export_memory_mb: int
    lag_alarm_seconds: int
    iterator_age_alarm_seconds: int
    alarm_topic_arn: str
    lambda_layers: str

    @classmethod
    def defaults(cls) -> Config:
        return cls.from_context(lambda _key: None)

    @classmethod
    def from_context(cls, lookup: Callable[[str], Any]) -> Config:
        """Parse every key through ``lookup`` (e.g. ``app.node.try_get_context``); a missing key
        takes its default. Raises ``ConfigError`` naming the key for a malformed value."""
        values: dict[str, Any] = {}
        profile = str(lookup("profile") or DEFAULTS["profile"]).strip()
        if profile not in PROFILES:
            raise ConfigError(
                f"context profile must be one of {', '.join(PROFILES)}, not {profile!r}"
            )
        for key in CONTEXT:
            raw = lookup(key.name)
            if key.by_profile:
                by_profile = dict(key.by_profile)
                if raw is None or str(raw).strip() == "auto":
                    values[_snake(key.name)] = by_profile[profile]
                else:
                    values[_snake(key.name)] = _parse(key, raw, like=by_profile["production"])
                continue
            values[_snake(key.name)] = key.default if raw is None else _parse(key, raw)
        config = cls(**values)
        config.check()
        return config

    @property
    def creates_stream(self) -> bool:
        return not self.existing_stream_arn

    @property
    def retention_hours(self) -> int:
        """The retention of the stream the ingest reads: the created one's, or the one given
        for ``existingStreamArn``."""
        return self.existing_stream_retention_hours or self.stream_retention_hours

    @property
    def replays_export(self) -> bool:
        return bool(self.export_bucket)

    @property
    def export_location(self) -> str:
        prefix = self.export_prefix.strip("/")
        return f"s3://{self.export_bucket}/{prefix}" if prefix else f"s3://{self.export_bucket}"

    @property
    def operator_roles(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.operator_role_arns.split(",") if a.strip())

    @property
    def vpc_subnets(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.vpc_subnet_ids.split(",") if a.strip())

    @property
    def vpc_zones(self) -> tuple[str, ...]:
        return tuple(a.strip() for a in self.vpc_availability_zones.split(",") if a.strip())

    def check(self) -> None:
        """Cross-field and range checks, each naming its context key."""
        _require(_NAME.match(self.service_name) is not None, "serviceName", self.service_name)
        for name in ("sourceLedgerName", "destinationLedgerName"):
            value = getattr(self, _snake(name))
            _require(_LEDGER.match(value) is not None, name, value)
        _require(self.destination in ("qldb", "postgresql"), "destination", self.destination)
        _range("postgresqlMaxCapacity", self.postgresql_max_capacity, 1, 256)
        _require(
            re.match(r"^[a-z_][a-z0-9_]{0,62}$", self.postgresql_schema) is not None
            and not self.postgresql_schema.startswith("pg_"),
            "postgresqlSchema",
            self.postgresql_schema,
        )
        _require(
            self.destination_permissions_mode in ("STANDARD", "ALLOW_ALL"),
            "destinationPermissionsMode",
            self.destination_permissions_mode,
        )
        if self.existing_stream_arn:
            _require(
                self.existing_stream_arn.startswith("arn:")
                and ":stream/" in self.existing_stream_arn,
                "existingStreamArn",
                self.existing_stream_arn,
            )
            _require(
                not self.deploy_journal_stream,
                "deployJournalStream",
                "true (the journal stream is created only into the stream this app creates)",
            )
            if not self.existing_stream_retention_hours:
                raise ConfigError(
                    "context existingStreamRetentionHours is required with existingStreamArn: "
                    "give the existing stream's retention in hours (aws kinesis "
                    "describe-stream-summary --stream-arn ARN: RetentionPeriodHours)"
                )
            _range("existingStreamRetentionHours", self.existing_stream_retention_hours, 24, 8760)
        elif self.existing_stream_retention_hours:
            raise ConfigError(
                "context existingStreamRetentionHours is given only with existingStreamArn (the "
                "created stream's retention is streamRetentionHours), not "
                f"{self.existing_stream_retention_hours}"
            )
        if self.existing_stream_key_arn:
            _require(
                self.existing_stream_key_arn.startswith("arn:"),
                "existingStreamKeyArn",
                self.existing_stream_key_arn,
            )
        for arn in self.operator_roles:
            _require(arn.startswith("arn:") and ":role/" in arn, "operatorRoleArns", arn)
        _range("shardCount", self.shard_count, 1, 10000)
        _range("streamRetentionHours", self.stream_retention_hours, 24, 8760)
        _iso("journalStreamStartTime", self.journal_stream_start_time)
        _require(self.starting_position in _STARTING, "startingPosition", self.starting_position)
        if self.starting_position == "AT_TIMESTAMP":
            _iso("startingPositionTimestamp", self.starting_position_timestamp)
        _range("ingestBatchSize", self.ingest_batch_size, 1, 10000)
        _range("ingestBatchingWindowSeconds", self.ingest_batching_window_seconds, 0, 300)
        _range("ingestParallelizationFactor", self.ingest_parallelization_factor, 1, 10)
        _range("ingestRetryAttempts", self.ingest_retry_attempts, 0, 10000)
        _range("ingestMaxRecordAgeSeconds", self.ingest_max_record_age_seconds, 60, 604800)
        _range("ingestMemoryMb", self.ingest_memory_mb, 128, 10240)
        _range("ingestTimeoutSeconds", self.ingest_timeout_seconds, 1, 900)
        _range("openSearchDataNodes", self.open_search_data_nodes, 1, 80)
        _range("openSearchAvailabilityZones", self.open_search_availability_zones, 1, 3)
        _require(
            self.open_search_data_nodes % self.open_search_availability_zones == 0,
            "openSearchDataNodes",
            f"{self.open_search_data_nodes} (not a multiple of openSearchAvailabilityZones)",
        )
        _range("openSearchVolumeGb", self.open_search_volume_gb, 10, 16384)
        _require(
            self.open_search_master_nodes in (0, 3, 5),
            "openSearchMasterNodes",
            self.open_search_master_nodes,
        )
        if self.profile == "production":
            _require(
                self.open_search_master_nodes > 0 or self.open_search_data_nodes >= 3,
                "openSearchMasterNodes",
                f"0 with {self.open_search_data_nodes} data nodes (profile production: fewer "
                "than 3 master-eligible nodes lose the master with one node; set 3 or 5, more "
                "data nodes, or profile dev)",
            )
            _require(
                self.open_search_availability_zones > 1,
                "openSearchAvailabilityZones",
                "1 (profile production: a zone's loss would stop the buffer; use 2 or 3, or "
                "profile dev)",
            )
        if self.open_search_master_role_arn:
            _require(
                self.open_search_master_role_arn.startswith("arn:")
                and ":role/" in self.open_search_master_role_arn,
                "openSearchMasterRoleArn",
                self.open_search_master_role_arn,
            )
        if self.vpc_id or self.vpc_subnets or self.vpc_zones:
            _require(
                re.match(r"^vpc-[0-9a-f]{8,17}$", self.vpc_id) is not None,
                "vpcId",
                self.vpc_id or "(empty: required with vpcSubnetIds)",
            )
            for subnet in self.vpc_subnets:
                _require(
                    re.match(r"^subnet-[0-9a-f]{8,17}$", subnet) is not None, "vpcSubnetIds", subnet
                )
            _require(
                len(self.vpc_subnets) == self.open_search_availability_zones,
                "vpcSubnetIds",
                f"{self.vpc_subnet_ids} (one subnet per zone: openSearchAvailabilityZones is "
                f"{self.open_search_availability_zones})",
            )
            _require(
                len(self.vpc_zones) == len(self.vpc_subnets)
                and len(set(self.vpc_zones)) == len(self.vpc_zones),
                "vpcAvailabilityZones",
                f"{self.vpc_availability_zones} (one distinct zone per subnet of vpcSubnetIds)",
            )
            _require(
                self.destination != "postgresql",
                "vpcId",
                f"{self.vpc_id} with destination postgresql (the settler joins the replica's "
                "own VPC; one VPC per function)",
            )
        _require(
            self.backup_object_lock in ("", "GOVERNANCE", "COMPLIANCE"),
            "backupObjectLock",
            self.backup_object_lock,
        )
        _range("backupObjectLockDays", self.backup_object_lock_days, 1, 36500)
        _range("bufferRetentionDays", self.buffer_retention_days, 0, 36500)
        _range("settleWindowSeconds", self.settle_window_seconds, 0, 86400)
        _range("settleRateMinutes", self.settle_rate_minutes, 1, 1440)
        _range("settlerMemoryMb", self.settler_memory_mb, 128, 10240)
        _range("settlerTimeoutSeconds", self.settler_timeout_seconds, 1, 900)
        _require(
            self.log_retention_days in _RETENTION_DAYS, "logRetentionDays", self.log_retention_days
        )
        if self.export_bucket:
            _require(
                _BUCKET.match(self.export_bucket) is not None, "exportBucket", self.export_bucket
            )
            _require(
                _LEDGER_ARN.match(self.export_ledger_arn) is not None,
                "exportLedgerArn",
                self.export_ledger_arn or "(empty: required with exportBucket)",
            )
        _require(
            not self.export_prefix or _PREFIX.match(self.export_prefix) is not None,
            "exportPrefix",
            self.export_prefix,
        )
        if self.export_key_arn:
            _require(
                self.export_key_arn.startswith("arn:") and ":key/" in self.export_key_arn,
                "exportKeyArn",
                self.export_key_arn,
            )
        _range("exportMemoryMb", self.export_memory_mb, 128, 10240)
        _range("lagAlarmSeconds", self.lag_alarm_seconds, 1, 7 * 86400)
        _range("iteratorAgeAlarmSeconds", self.iterator_age_alarm_seconds, 1, 7 * 86400)
        if self.alarm_topic_arn:
            _require(self.alarm_topic_arn.startswith("arn:"), "alarmTopicArn", self.alarm_topic_arn)
        self._cross_check()

    def _cross_check(self) -> None:
        """The keys that bound each other: each message names both keys and their values."""
        if not self.lag_alarm_seconds > self.settle_window_seconds:
            raise ConfigError(
                f"context lagAlarmSeconds ({self.lag_alarm_seconds}) must be above "
                f"settleWindowSeconds ({self.settle_window_seconds}): every block waits the "
                "window, so a lag alarm at or below it fires on a healthy settler"
            )
        period = self.settle_rate_minutes * 60
        if not self.settler_timeout_seconds < period:
            raise ConfigError(
                f"context settlerTimeoutSeconds ({self.settler_timeout_seconds}) must be below "
                f"the schedule period, settleRateMinutes * 60 ({period} s): the next tick would "
                "find the settler still running (throttled, reserved concurrency 1)"
            )
        retention_key = (
            "existingStreamRetentionHours" if self.existing_stream_arn else "streamRetentionHours"
        )
        limit = self.retention_hours * 3600 - RETENTION_MARGIN_SECONDS
        if not self.ingest_max_record_age_seconds < limit:
            raise ConfigError(
                f"context ingestMaxRecordAgeSeconds ({self.ingest_max_record_age_seconds}) must "
                f"be below the stream retention minus {RETENTION_MARGIN_SECONDS // 3600} h "
                f"({retention_key} = {self.retention_hours}: {limit} s): a range that expires "
                "into the on-failure queue must still be in the stream for redrive"
            )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _parse(key: ContextKey, raw: Any, *, like: Scalar | None = None) -> Scalar:
    """``raw`` as a value of the type of ``like`` (the key's default unless given)."""
    example = key.default if like is None else like
    if isinstance(example, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
        raise ConfigError(f"context {key.name} must be true or false, not {raw!r}")
    if isinstance(example, int):
        if isinstance(raw, bool):
            raise ConfigError(f"context {key.name} must be a whole number, not {raw!r}")
        try:
            return int(str(raw).strip())
        except ValueError:
            raise ConfigError(f"context {key.name} must be a whole number, not {raw!r}") from None
    return str(raw).strip()


def _require(ok: bool, name: str, value: object) -> None:
    if not ok:
        raise ConfigError(f"context {name} is not valid: {value!r}")


def _range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ConfigError(f"context {name} must be between {low} and {high}, not {value}")


def _iso(name: str, value: str) -> None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"context {name} must be an ISO 8601 instant, not {value!r}") from None
    if parsed.tzinfo is None:
        raise ConfigError(f"context {name} must name its time zone (e.g. Z), not {value!r}")


def cdk_json() -> dict[str, Any]:
    """The content of ``cdk.json``: the app command and every context key, each preceded by a
    ``// key`` entry stating its meaning and default."""
    context: dict[str, Any] = {
        "//": "qldb-settle context: each key follows a '// key' entry with its meaning and "
        "default. Generated by `python -m infra.config > cdk.json` from infra/config.py.",
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


if __name__ == "__main__":
    sys.stdout.write(render_cdk_json())
