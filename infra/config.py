"""The app's configuration: the CDK context parsed into one ``Config`` and checked, each error
naming its context key.

The keys themselves, with their defaults and meanings, are the table in ``infra.context``, which
also renders ``cdk.json`` (``python -m infra.config > cdk.json`` still writes it; a test keeps them
equal). Values given with ``cdk synth -c key=value`` arrive as strings and are parsed here.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.context import CONTEXT, DEFAULTS, ContextKey, Scalar, render_cdk_json
from runtime.errors import ConfigError

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


if __name__ == "__main__":
    sys.stdout.write(render_cdk_json())
