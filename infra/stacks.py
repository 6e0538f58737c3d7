"""The three stacks: ledgers and streaming (the blog's two), and the settling service.

Each stack composes the constructs of one concern; the grants between them are wired here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from constructs import Construct

from handlers import metrics
from infra.buffer import BufferDomain
from infra.config import Config
from infra.export import ExportReplay
from infra.ingest import IngestFunction
from infra.ledgers import Ledgers
from infra.monitoring import Monitoring, failed_range_age_alarm_seconds
from infra.postgres import PostgresReplica
from infra.settler import Settler
from infra.stream import JournalStream


class LedgersStack(Stack):
    """The source and destination QLDB ledgers (only with ``deployLedgers``)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kw: Any) -> None:
        super().__init__(scope, construct_id, **kw)
        self.ledgers = Ledgers(
            self,
            "Ledgers",
            source_name=config.source_ledger_name,
            destination_name=config.destination_ledger_name,
            permissions_mode=config.destination_permissions_mode,
        )


class StreamingStack(Stack):
    """The Kinesis stream (KMS CMK), its Firehose backup to S3, and optionally the QLDB
    journal stream into it."""

    def __init__(self, scope: Construct, construct_id: str, *, config: Config, **kw: Any) -> None:
        super().__init__(scope, construct_id, **kw)
        self.journal = JournalStream(
            self,
            "Journal",
            shard_count=config.shard_count,
            retention_hours=config.stream_retention_hours,
            source_ledger_name=(
                config.source_ledger_name if config.deploy_journal_stream else None
            ),
            start_time=config.journal_stream_start_time,
            log_retention_days=config.log_retention_days,
            object_lock=config.backup_object_lock,
            object_lock_days=config.backup_object_lock_days,
        )
        CfnOutput(self, "StreamArn", value=self.journal.stream.stream_arn)
        CfnOutput(self, "BackupBucket", value=self.journal.backup.bucket_name)


class ServiceStack(Stack):
    """The settling service: ingest, buffer, settler, monitoring.

    ``stream`` is the stream of the streaming stack, or None to read the existing stream of
    ``existingStreamArn``. ``layer_dirs`` None: no dependency layers (template checks only).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: Config,
        stream: kinesis.IStream | None,
        code_dirs: dict[str, Path],
        layer_dirs: dict[str, Path] | None,
        **kw: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kw)
        if stream is None:
            key = (
                kms.Key.from_key_arn(self, "ExistingStreamKey", config.existing_stream_key_arn)
                if config.existing_stream_key_arn
                else None
            )
            stream = kinesis.Stream.from_stream_attributes(
                self, "ExistingStream", stream_arn=config.existing_stream_arn, encryption_key=key
            )
        ingest_service, settler_service = metrics.service_names(config.service_name)

        # An existing VPC for the buffer domain (no lookup: synthesis stays offline).
        self.vpc: ec2.IVpc | None = None
        if config.vpc_id:
            self.vpc = ec2.Vpc.from_vpc_attributes(
                self,
                "BufferVpc",
                vpc_id=config.vpc_id,
                availability_zones=list(config.vpc_zones),
                private_subnet_ids=list(config.vpc_subnets),
            )
        self.buffer = BufferDomain(
            self,
            "Buffer",
            domain_name=config.service_name,
            version=config.open_search_version,
            instance_type=config.open_search_instance_type,
            data_nodes=config.open_search_data_nodes,
            availability_zones=config.open_search_availability_zones,
            volume_gb=config.open_search_volume_gb,
            master_nodes=config.open_search_master_nodes,
            master_instance_type=config.open_search_master_instance_type,
            log_retention_days=config.log_retention_days,
            index_prefix=config.index_prefix,
            master_role_arn=config.open_search_master_role_arn,
            vpc=self.vpc,
            subnets=self.vpc.private_subnets if self.vpc is not None else (),
        )
        clients = self.buffer.client_security_group
        buffer_network: dict[str, Any] = (
            {"vpc": self.vpc, "security_groups": [clients]} if clients is not None else {}
        )
        environment = {
            "QLDB_SETTLE_BUFFER": self.buffer.url,
            "QLDB_SETTLE_INDEX_PREFIX": config.index_prefix,
            "QLDB_SETTLE_EARLY_RELEASE": "true" if config.early_release else "false",
        }
        self.ingest = IngestFunction(
            self,
            "Ingest",
            stream=stream,
            code_dir=code_dirs["ingest"],
            layer_dir=layer_dirs["ingest"] if layer_dirs else None,
            environment=environment,
            service=ingest_service,
            starting_position=config.starting_position,
            starting_position_timestamp=config.starting_position_timestamp,
            batch_size=config.ingest_batch_size,
            batching_window_seconds=config.ingest_batching_window_seconds,
            parallelization_factor=config.ingest_parallelization_factor,
            retry_attempts=config.ingest_retry_attempts,
            max_record_age_seconds=config.ingest_max_record_age_seconds,
            memory_mb=config.ingest_memory_mb,
            timeout_seconds=config.ingest_timeout_seconds,
            log_retention_days=config.log_retention_days,
            **buffer_network,
        )
        self.postgres = (
            PostgresReplica(
                self,
                "Replica",
                cluster_identifier=f"{config.service_name}-replica",
                min_capacity=0.5,
                max_capacity=config.postgresql_max_capacity,
                log_retention_days=config.log_retention_days,
            )
            if config.destination == "postgresql"
            else None
        )
        self.settler = Settler(
            self,
            "Settler",
            code_dir=code_dirs["settler"],
            layer_dir=layer_dirs["settler"] if layer_dirs else None,
            environment=environment,
            service=settler_service,
            window_parameter_name=window_parameter_name(config.service_name),
            window_seconds=config.settle_window_seconds,
            rate_minutes=config.settle_rate_minutes,
            destination_ledger_name=config.destination_ledger_name,
            destination_permissions_mode=config.destination_permissions_mode,
            memory_mb=config.settler_memory_mb,
            timeout_seconds=config.settler_timeout_seconds,
            log_retention_days=config.log_retention_days,
            postgres=self.postgres,
            postgres_schema=config.postgresql_schema,
            **buffer_network,
        )
        self.settler.watch_ingest(self.ingest.failure_queue, self.ingest.function)
        if config.buffer_retention_days:
            self.settler.function.add_environment(
                "QLDB_SETTLE_RETENTION_DAYS", str(config.buffer_retention_days)
            )
        self.buffer.grant_http(self.ingest.role, "ingest")
        self.buffer.grant_http(self.settler.role, "settler")
        # Their security roles exist before either function runs (else 403 until they do).
        for function in (self.ingest.function, self.settler.function):
            function.node.add_dependency(self.buffer.security_roles_resource)
        self.export: ExportReplay | None = None
        if config.replays_export:
            self.export = ExportReplay(
                self,
                "ExportReplay",
                bucket=config.export_bucket,
                prefix=config.export_prefix,
                ledger_arn=config.export_ledger_arn,
                key_arn=config.export_key_arn,
                code_dir=code_dirs["ingest"],  # the ingest function's code and layer (amazon.ion)
                layer_dir=layer_dirs["ingest"] if layer_dirs else None,
                environment=environment,
                service=f"{config.service_name}-export",
                state_machine_name=f"{config.service_name}-export-replay",
                memory_mb=config.export_memory_mb,
                log_retention_days=config.log_retention_days,
                **buffer_network,
            )
            self.buffer.grant_http(self.export.role, "ingest")
        for arn in config.operator_roles:
            self.buffer.allow_principal(arn, "operator")

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            dashboard_name=f"{config.service_name}-Ordering",
            alarm_prefix=config.service_name,
            ingest_service=ingest_service,
            settler_service=settler_service,
            ingest_function=self.ingest.function,
            settler_function=self.settler.function,
            failure_queue=self.ingest.failure_queue,
            stream=stream,
            domain_name=self.buffer.domain_name,
            domain_volume_gb=config.open_search_volume_gb,
            domain_data_nodes=config.open_search_data_nodes,
            domain_master_nodes=config.open_search_master_nodes,
            lag_alarm_seconds=config.lag_alarm_seconds,
            iterator_age_alarm_seconds=config.iterator_age_alarm_seconds,
            settle_window_seconds=config.settle_window_seconds,
            settle_rate_minutes=config.settle_rate_minutes,
            settler_timeout_seconds=config.settler_timeout_seconds,
            failed_range_age_seconds=failed_range_age_alarm_seconds(
                retention_hours=config.retention_hours,
                max_record_age_seconds=config.ingest_max_record_age_seconds,
                queue_retention_seconds=self.ingest.failure_queue_retention_seconds,
            ),
            alarm_topic_arn=config.alarm_topic_arn,
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.topic.topic_arn,
            description="the alarms notify this topic: subscribe to it",
        )
        CfnOutput(
            self,
            "FailedRangesQueueUrl",
            value=self.ingest.failure_queue.queue_url,
            description="qldb-settle redrive --queue <this>",
        )
        CfnOutput(self, "BufferUrl", value=self.buffer.url, description="--buffer for the CLI")
        CfnOutput(
            self,
            "BufferMasterRoleArn",
            value=self.buffer.master_role.role_arn,
            description="the buffer domain's FGAC master: assume it to administer the domain",
        )
        CfnOutput(self, "WindowParameter", value=self.settler.window.parameter_name)
        CfnOutput(self, "Dashboard", value=f"{config.service_name}-Ordering")
        # For the runbook's first commands (aws logs tail <group>): the names are generated.
        CfnOutput(self, "SettlerLogGroup", value=self.settler.function.log_group.log_group_name)
        CfnOutput(self, "IngestLogGroup", value=self.ingest.function.log_group.log_group_name)
        if self.export is not None:
            CfnOutput(
                self,
                "ExportReplayStateMachineArn",
                value=self.export.state_machine.state_machine_arn,
                description="aws stepfunctions start-execution --input '{}' --state-machine-arn",
            )
        if self.postgres is not None:
            CfnOutput(self, "ReplicaUrl", value=self.postgres.url, description="--destination")
            CfnOutput(self, "ReplicaSecretArn", value=self.postgres.secret.secret_arn)


def window_parameter_name(service_name: str) -> str:
    return f"/{service_name}/settle-window-seconds"
