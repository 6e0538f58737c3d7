"""Where a block is released in AWS: the settler function on an EventBridge schedule.

Reserved concurrency 1 (with the buffer's lease, never two settlers), the settle window as an SSM
parameter the settler reads each cycle (its first value from ``settleWindowSeconds``; change it
there at run time), and least-privilege grants: ``qldb:SendCommand`` on the destination ledger
only (plus, for a STANDARD-mode ledger, the PartiQL actions replay uses on that ledger's tables),
read on its own parameter. The OpenSearch grant is wired by the stack.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Aws, Duration
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from infra.lambdas import project_function
from infra.nag import ack
from infra.packaging import HANDLERS
from infra.postgres import PostgresReplica
from settler.ingest_health import FAILURE_QUEUE_ENV, INGEST_FUNCTION_ENV

# What replaying a block does on a STANDARD-mode ledger (statements and revisions, the
# checkpoint and id-map tables, DDL with their ids); never history() or redaction.
PARTIQL_ACTIONS = (
    "qldb:PartiQLCreateTable",
    "qldb:PartiQLDropTable",
    "qldb:PartiQLUndropTable",
    "qldb:PartiQLCreateIndex",
    "qldb:PartiQLDropIndex",
    "qldb:PartiQLInsert",
    "qldb:PartiQLUpdate",
    "qldb:PartiQLDelete",
    "qldb:PartiQLSelect",
)


class Settler(Construct):
    """The settler Lambda (``handlers.settler.handler``), its schedule and its window."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code_dir: Path,
        layer_dir: Path | None,
        environment: Mapping[str, str],
        service: str,
        window_parameter_name: str,
        window_seconds: int,
        rate_minutes: int,
        destination_ledger_name: str,
        destination_permissions_mode: str,
        memory_mb: int,
        timeout_seconds: int,
        log_retention_days: int,
        postgres: PostgresReplica | None = None,
        postgres_schema: str = "qldb",
        vpc: ec2.IVpc | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
    ) -> None:
        """``vpc``/``security_groups``: the VPC of the buffer domain (not with ``postgres``,
        whose own VPC the settler joins)."""
        super().__init__(scope, construct_id)
        if postgres is None:
            destination_env = {"QLDB_SETTLE_DESTINATION": f"qldb:{destination_ledger_name}"}
        else:
            destination_env = {
                "QLDB_SETTLE_DESTINATION": postgres.url,
                "QLDB_SETTLE_PG_SCHEMA": postgres_schema,
                "QLDB_SETTLE_PG_SECRET_ARN": postgres.secret.secret_arn,
            }
        self.window = ssm.StringParameter(
            self,
            "Window",
            parameter_name=window_parameter_name,
            string_value=str(window_seconds),
            description="qldb-settle settle window in seconds, read by the settler each cycle",
        )
        self.function, self.role = project_function(
            self,
            description="qldb-settle settler: replay settled blocks in commit order, once",
            handler=HANDLERS["settler"],
            code_dir=code_dir,
            layer_dir=layer_dir,
            environment={
                **environment,
                **destination_env,
                "QLDB_SETTLE_WINDOW_PARAMETER": window_parameter_name,
                # Used only where no parameter is named (a failed read keeps the last good one).
                "QLDB_SETTLE_WINDOW_SECONDS": str(window_seconds),
            },
            memory_mb=memory_mb,
            timeout_seconds=timeout_seconds,
            log_retention_days=log_retention_days,
            service=service,
            reserved_concurrency=1,
            vpc=vpc if postgres is None else postgres.vpc,
            security_groups=(
                security_groups if postgres is None else [postgres.client_security_group]
            ),
        )
        # A tick that finds the settler still running is throttled (reserved concurrency 1):
        # drop it rather than queue it, the next tick comes soon.
        self.function.configure_async_invoke(retry_attempts=0, max_event_age=Duration.minutes(1))
        self.window.grant_read(self.role)
        if postgres is not None:
            postgres.secret.grant_read(self.role)  # that one secret; nothing of QLDB
        else:
            self._grant_qldb(destination_ledger_name, destination_permissions_mode)
        self.schedule = events.Rule(
            self,
            "Schedule",
            description="run one settle cycle",
            schedule=events.Schedule.rate(Duration.minutes(rate_minutes)),
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )

    def watch_ingest(self, failure_queue: sqs.IQueue, ingest_function: lambda_.IFunction) -> None:
        """Let the settler check the ingest's health before it passes a gap
        (``settler.ingest_health``): the failure queue's depth and the ingest function's
        ``IteratorAge``, exactly those reads."""
        self.function.add_environment(FAILURE_QUEUE_ENV, failure_queue.queue_url)
        self.function.add_environment(INGEST_FUNCTION_ENV, ingest_function.function_name)
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["sqs:GetQueueAttributes"], resources=[failure_queue.queue_arn]
            )
        )
        # GetMetricStatistics has no resource-level permissions; the namespace is the condition.
        statement = iam.PolicyStatement(
            actions=["cloudwatch:GetMetricStatistics"],
            resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": "AWS/Lambda"}},
        )
        self.role.add_to_policy(statement)
        ack(
            self.role,
            "IAM5[Resource::*]",
            "cloudwatch:GetMetricStatistics supports no resource-level permissions; it is limited "
            "to the AWS/Lambda namespace (the settler reads the ingest function's IteratorAge "
            "before it passes a gap).",
        )

    def _grant_qldb(self, destination_ledger_name: str, destination_permissions_mode: str) -> None:
        ledger_arn = (
            f"arn:{Aws.PARTITION}:qldb:{Aws.REGION}:{Aws.ACCOUNT_ID}:ledger/"
            f"{destination_ledger_name}"
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["qldb:SendCommand"], resources=[ledger_arn])
        )
        if destination_permissions_mode == "STANDARD":
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=list(PARTIQL_ACTIONS),
                    resources=[
                        f"{ledger_arn}/table/*",
                        f"{ledger_arn}/information_schema/user_tables",
                    ],
                )
            )
