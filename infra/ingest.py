"""Where a record enters in AWS: the ingest function and its Kinesis event source mapping.

The mapping reports partial batch failures (the handler names the lowest failed sequence number
on), bisects a failing batch, gives up after bounded retries or record age and then sends the
shard and sequence range (not the records) to an SQS on-failure queue: ``qldb-settle redrive``
re-reads those ranges from the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from aws_cdk import Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.lambdas import project_function
from infra.packaging import HANDLERS


class IngestFunction(Construct):
    """The ingest Lambda (``handlers.ingest.handler``) reading ``stream``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream,
        code_dir: Path,
        layer_dir: Path | None,
        environment: Mapping[str, str],
        service: str,
        starting_position: str,
        starting_position_timestamp: str = "",
        batch_size: int,
        batching_window_seconds: int,
        parallelization_factor: int,
        retry_attempts: int,
        max_record_age_seconds: int,
        memory_mb: int,
        timeout_seconds: int,
        log_retention_days: int,
        vpc: ec2.IVpc | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        # SQS's longest: a range waits for redrive as long as the queue can keep it.
        self.failure_queue_retention_seconds = 14 * 86400
        self.failure_queue = sqs.Queue(
            self,
            "FailedRanges",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.seconds(self.failure_queue_retention_seconds),
        )
        self.function, self.role = project_function(
            self,
            description="qldb-settle ingest: Kinesis journal records into the settling buffer",
            handler=HANDLERS["ingest"],
            code_dir=code_dir,
            layer_dir=layer_dir,
            environment=environment,
            memory_mb=memory_mb,
            timeout_seconds=timeout_seconds,
            log_retention_days=log_retention_days,
            service=service,
            vpc=vpc,
            security_groups=security_groups,
        )
        timestamp = None
        if starting_position == "AT_TIMESTAMP":
            instant = datetime.fromisoformat(starting_position_timestamp.replace("Z", "+00:00"))
            timestamp = instant.timestamp()
        self.event_source = sources.KinesisEventSource(
            stream,
            starting_position=lambda_.StartingPosition[starting_position],
            starting_position_timestamp=timestamp,
            batch_size=batch_size,
            max_batching_window=Duration.seconds(batching_window_seconds),
            parallelization_factor=parallelization_factor,
            report_batch_item_failures=True,
            bisect_batch_on_error=True,
            retry_attempts=retry_attempts,
            max_record_age=Duration.seconds(max_record_age_seconds),
            on_failure=sources.SqsDlq(self.failure_queue),
        )
        self.function.add_event_source(self.event_source)
