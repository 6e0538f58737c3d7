"""What both functions share: a role of their own, a log group, the code and the layer.

Architecture: x86_64 for all three functions (``ARCHITECTURE``; the layers are built for it,
``infra.build_layers.MACHINE``, and a test keeps the two equal). arm64 costs about 20% less per
GB-second, weighed function by function:

- settler: its layer needs psycopg-binary 3.3.9, whose only aarch64 wheel is tagged
  manylinux_2_27 (glibc 2.27) while the python3.11 runtime is Amazon Linux 2 (glibc 2.26): it
  would not load there (the x86_64 wheel is manylinux2014, glibc 2.17).
  It also runs once per schedule period, for seconds: 20% of it is cents a month.
- ingest (and export ingest, which shares its code and layer): an aarch64 wheel of amazon.ion 0.15
  exists (manylinux2014_aarch64), so arm64 is possible. It stays x86_64 because the layer that is
  deployed is the one ``tests/infra/test_infra_layer_imports.py`` executes: the handlers invoked
  from exactly their asset plus their layer, the C extension loaded. This machine runs x86_64 only
  (no aarch64 interpreter or emulator here), so an arm64 layer could only be checked statically
  (tags and ELF headers, which ``check_layer`` does), not run. The saving is 20% of the ingest's
  compute, small beside the OpenSearch domain; switching means ``MACHINE = "aarch64"``, relocking,
  and running that test on an arm64 host first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from handlers import metrics

RUNTIME = lambda_.Runtime.PYTHON_3_11
RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
}
ARCHITECTURE = lambda_.Architecture.X86_64


def project_function(
    scope: Construct,
    *,
    description: str,
    handler: str,
    code_dir: Path,
    layer_dir: Path | None,
    environment: Mapping[str, str],
    memory_mb: int,
    timeout_seconds: int,
    log_retention_days: int,
    service: str,
    reserved_concurrency: int | None = None,
    vpc: ec2.IVpc | None = None,
    security_groups: list[ec2.ISecurityGroup] | None = None,
) -> tuple[lambda_.Function, iam.Role]:
    """A Python 3.11 function from a plain code folder (no bundling), with its own role whose
    only standing permission is writing its own log group (no AWS managed policy)."""
    log_group, role = function_role(
        scope, description=description, log_retention_days=log_retention_days, vpc=vpc
    )
    layers = []
    if layer_dir is not None:
        layers.append(
            lambda_.LayerVersion(
                scope,
                "Dependencies",
                code=lambda_.Code.from_asset(str(layer_dir)),
                compatible_runtimes=[RUNTIME],
                compatible_architectures=[ARCHITECTURE],
                description=f"{service}: third-party packages (infra/build_layers.py)",
            )
        )
    function = lambda_.Function(
        scope,
        "Function",
        description=description,
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler=handler,
        code=lambda_.Code.from_asset(str(code_dir)),
        layers=layers,
        role=role,
        log_group=log_group,
        memory_size=memory_mb,
        timeout=Duration.seconds(timeout_seconds),
        reserved_concurrent_executions=reserved_concurrency,
        vpc=vpc,
        vpc_subnets=(
            ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS) if vpc else None
        ),
        security_groups=security_groups,
        environment={
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
            **environment,
        },
    )
    return function, role


def function_role(
    scope: Construct,
    *,
    description: str,
    log_retention_days: int,
    vpc: ec2.IVpc | None,
    prefix: str = "",
) -> tuple[logs.LogGroup, iam.Role]:
    """A function's log group (kept on delete) and its own role, allowed to write that log group
    and, in a VPC, what the Lambda service needs to attach the function to its subnets; nothing
    else (callers grant the rest). ``prefix`` starts the construct ids (``{prefix}Logs``,
    ``{prefix}Role``) where one scope holds several functions."""
    log_group = logs.LogGroup(
        scope,
        f"{prefix}Logs",
        retention=RETENTION[log_retention_days],
        removal_policy=RemovalPolicy.RETAIN,
    )
    role = iam.Role(
        scope,
        f"{prefix}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    role.add_to_policy(
        iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"],
            resources=[log_group.log_group_arn],
        )
    )
    if vpc is not None:
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                resources=["*"],
            )
        )
    return log_group, role
