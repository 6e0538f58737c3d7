"""Replay of a journal export in S3: the export-ingest function and the state machine that
invokes it until the export is in the buffer (only when the context names ``exportBucket``).

One function ingests the whole export, in order (``handlers.export.handler``): the chain is
checked link by link across objects and a strand's objects are put in manifest order, so the
objects are not fanned out. An invocation stops between objects before its 15 minutes run out
and returns how far each strand got; the state machine gives that back to it as its next event
(after a pause when the buffer was unavailable) until it returns ``done``.

The function reads the export prefix and nothing else of S3: ``s3:ListBucket`` on the bucket
under a prefix condition and ``s3:GetObject`` on ``BUCKET/PREFIX/*``; ``kms:Decrypt`` on the
export's key when it is SSE-KMS; the buffer domain like the ingest function.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.lambdas import RETENTION, project_function

HANDLER = "handlers.export.handler"
TIMEOUT_SECONDS = 900  # Lambda's limit; the handler stops between objects before it
TRANSIENT_PAUSE_SECONDS = 60


def s3_arn(bucket: str, path: str = "") -> str:
    return f"arn:{Aws.PARTITION}:s3:::{bucket}{'/' + path if path else ''}"


class ExportReplay(Construct):
    """The export-ingest Lambda and the ``<serviceName>-export-replay`` state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: str,
        prefix: str,
        ledger_arn: str,
        key_arn: str,
        code_dir: Path,
        layer_dir: Path | None,
        environment: Mapping[str, str],
        service: str,
        state_machine_name: str,
        memory_mb: int,
        log_retention_days: int,
        vpc: ec2.IVpc | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.prefix = prefix.strip("/")
        location = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self.function, self.role = project_function(
            self,
            description=f"qldb-settle export ingest: the journal export {location} into the "
            "settling buffer",
            handler=HANDLER,
            code_dir=code_dir,
            layer_dir=layer_dir,
            environment={
                **environment,
                "QLDB_SETTLE_EXPORT": location,
                "QLDB_SETTLE_LEDGER_ARN": ledger_arn,
            },
            memory_mb=memory_mb,
            timeout_seconds=TIMEOUT_SECONDS,
            log_retention_days=log_retention_days,
            service=service,
            vpc=vpc,
            security_groups=security_groups,
        )
        list_bucket = iam.PolicyStatement(
            sid="ListTheExportPrefix",
            actions=["s3:ListBucket"],
            resources=[s3_arn(bucket)],
            conditions=(
                {"StringLike": {"s3:prefix": [f"{self.prefix}/*"]}} if self.prefix else None
            ),
        )
        self.role.add_to_policy(list_bucket)
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadTheExportObjects",
                actions=["s3:GetObject"],
                resources=[s3_arn(bucket, f"{self.prefix}/*" if self.prefix else "*")],
            )
        )
        if key_arn:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptTheExport",
                    actions=["kms:Decrypt"],
                    resources=[key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}
                    },
                )
            )

        invoke = tasks.LambdaInvoke(
            self,
            "Ingest",
            lambda_function=self.function,
            payload=sfn.TaskInput.from_json_path_at("$"),
            payload_response_only=True,
            retry_on_service_exceptions=True,
            comment="ingest objects until the invocation nearly runs out of time",
        )
        pause = sfn.Wait(
            self,
            "BufferUnavailable",
            time=sfn.WaitTime.duration(Duration.seconds(TRANSIENT_PAUSE_SECONDS)),
            comment="the buffer refused a put: wait, then resume at that object",
        )
        pause.next(invoke)
        finished = (
            sfn.Choice(self, "Attention?")
            .when(
                sfn.Condition.boolean_equals("$.needs_attention", True),
                sfn.Fail(
                    self,
                    "NeedsAttention",
                    error="NeedsAttention",
                    cause="the export is ingested, but records were rejected or conflicted: "
                    "qldb-settle rejected, and the function's log",
                ),
            )
            .otherwise(sfn.Succeed(self, "Ingested"))
        )
        loop = (
            sfn.Choice(self, "Done?")
            .when(sfn.Condition.boolean_equals("$.done", True), finished)
            .when(sfn.Condition.is_not_null("$.transient"), pause)
            .otherwise(invoke)
        )
        self.log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            retention=RETENTION[log_retention_days],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name,
            definition_body=sfn.DefinitionBody.from_chainable(invoke.next(loop)),
            timeout=Duration.days(7),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=True
            ),
            comment=f"qldb-settle: replay the journal export {location} into the buffer",
        )
