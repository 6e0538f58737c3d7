"""Each construct alone in a bare stack, checked with ``aws_cdk.assertions.Template``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aws_cdk", reason="the CDK tests need aws-cdk-lib (the main environment)")

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from handlers import metrics
from infra.buffer import BufferDomain
from infra.ingest import IngestFunction
from infra.ledgers import Ledgers
from infra.monitoring import Monitoring
from infra.settler import PARTIQL_ACTIONS, Settler
from infra.stream import JournalStream

STREAM_ARN = "arn:aws:kinesis:eu-west-1:111122223333:stream/journal"


def new_stack() -> cdk.Stack:
    return cdk.Stack(cdk.App(context={"aws:cdk:bundling-stacks": []}), "Test")


def statements(template: Template) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in template.find_resources("AWS::IAM::Policy").values():
        out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def with_action(template: Template, action: str) -> list[dict[str, Any]]:
    return [s for s in statements(template) if action in as_list(s["Action"])]


def assert_no_star(template: Template) -> None:
    for s in statements(template):
        assert "*" not in as_list(s["Resource"]), s


# Ledgers ------------------------------------------------------------------------------------


def test_ledgers_are_two_protected_qldb_ledgers() -> None:
    stack = new_stack()
    Ledgers(stack, "L", source_name="src", destination_name="dst", permissions_mode="STANDARD")
    t = Template.from_stack(stack)
    t.resource_count_is("AWS::QLDB::Ledger", 2)
    for name in ("src", "dst"):
        t.has_resource(
            "AWS::QLDB::Ledger",
            {
                "Properties": {
                    "Name": name,
                    "PermissionsMode": "STANDARD",
                    "DeletionProtection": True,
                },
                "Metadata": {"cfn-lint": {"config": {"ignore_checks": ["E3710"]}}},
            },
        )


# Stream -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_template() -> Template:
    stack = new_stack()
    JournalStream(stack, "J", shard_count=4, retention_hours=48, source_ledger_name="src")
    return Template.from_stack(stack)


def test_stream_is_kms_encrypted_with_a_rotating_customer_key(stream_template: Template) -> None:
    t = stream_template
    t.resource_count_is("AWS::KMS::Key", 1)
    t.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    key_id = next(iter(t.find_resources("AWS::KMS::Key")))
    t.has_resource_properties(
        "AWS::Kinesis::Stream",
        {
            "ShardCount": 4,
            "RetentionPeriodHours": 48,
            "StreamEncryption": {
                "EncryptionType": "KMS",
                "KeyId": {"Fn::GetAtt": [key_id, "Arn"]},
            },
        },
    )


def test_backup_bucket_is_encrypted_private_and_tls_only(stream_template: Template) -> None:
    t = stream_template
    key_id = next(iter(t.find_resources("AWS::KMS::Key")))
    buckets = t.find_resources("AWS::S3::Bucket")
    backup_id = next(k for k in buckets if k.startswith("JBackup") and "AccessLogs" not in k)
    backup = buckets[backup_id]["Properties"]
    assert backup["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    rule = backup["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "aws:kms",
        "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
    }
    assert backup["LoggingConfiguration"]["DestinationBucketName"] == {
        "Ref": next(k for k in buckets if "AccessLogs" in k)
    }
    # Every bucket refuses plain HTTP.
    policies = t.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == len(buckets) == 2
    for policy in policies.values():
        denies = [
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
        ]
        assert any(
            s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            and s["Action"] == "s3:*"
            and s["Principal"] == {"AWS": "*"}
            for s in denies
        ), policy
    backup_policy = next(
        p for p in policies.values() if p["Properties"]["Bucket"] == {"Ref": backup_id}
    )
    assert backup_policy


def test_firehose_copies_the_stream_to_the_backup_bucket(stream_template: Template) -> None:
    t = stream_template
    stream_id = next(iter(t.find_resources("AWS::Kinesis::Stream")))
    t.has_resource_properties(
        "AWS::KinesisFirehose::DeliveryStream",
        {
            "DeliveryStreamType": "KinesisStreamAsSource",
            "KinesisStreamSourceConfiguration": {
                "KinesisStreamARN": {"Fn::GetAtt": [stream_id, "Arn"]}
            },
            "ExtendedS3DestinationConfiguration": Match.object_like(
                {
                    "CompressionFormat": "GZIP",
                    "EncryptionConfiguration": {"KMSEncryptionConfig": Match.any_value()},
                }
            ),
        },
    )


def test_journal_stream_feeds_the_kinesis_stream(stream_template: Template) -> None:
    t = stream_template
    stream_id = next(iter(t.find_resources("AWS::Kinesis::Stream")))
    t.has_resource_properties(
        "AWS::QLDB::Stream",
        {
            "LedgerName": "src",
            "InclusiveStartTime": "2020-01-01T00:00:00Z",
            "KinesisConfiguration": {
                "AggregationEnabled": True,
                "StreamArn": {"Fn::GetAtt": [stream_id, "Arn"]},
            },
        },
    )
    writes = with_action(t, "kinesis:PutRecords")
    assert [s["Resource"] for s in writes] == [{"Fn::GetAtt": [stream_id, "Arn"]}]


def test_no_journal_stream_without_a_source_ledger() -> None:
    stack = new_stack()
    JournalStream(stack, "J", shard_count=1, retention_hours=24)
    Template.from_stack(stack).resource_count_is("AWS::QLDB::Stream", 0)


# Ingest -------------------------------------------------------------------------------------


def make_ingest(stack: cdk.Stack, code: Path, **overrides: Any) -> IngestFunction:
    stream = kinesis.Stream.from_stream_arn(stack, "Stream", STREAM_ARN)
    props: dict[str, Any] = {
        "stream": stream,
        "code_dir": code,
        "layer_dir": None,
        "environment": {"QLDB_SETTLE_BUFFER": "opensearch:https://example"},
        "service": "svc-ingest",
        "starting_position": "TRIM_HORIZON",
        "batch_size": 250,
        "batching_window_seconds": 3,
        "parallelization_factor": 4,
        "retry_attempts": 7,
        "max_record_age_seconds": 3600,
        "memory_mb": 512,
        "timeout_seconds": 60,
        "log_retention_days": 30,
    }
    props.update(overrides)
    return IngestFunction(stack, "Ingest", **props)


def test_ingest_event_source_mapping_settings(code_dir: Path) -> None:
    stack = new_stack()
    make_ingest(stack, code_dir / "ingest")
    t = Template.from_stack(stack)
    queue_id = next(iter(t.find_resources("AWS::SQS::Queue")))
    t.resource_count_is("AWS::Lambda::EventSourceMapping", 1)
    t.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": STREAM_ARN,
            "StartingPosition": "TRIM_HORIZON",
            "BatchSize": 250,
            "MaximumBatchingWindowInSeconds": 3,
            "ParallelizationFactor": 4,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "BisectBatchOnFunctionError": True,
            "MaximumRetryAttempts": 7,
            "MaximumRecordAgeInSeconds": 3600,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue_id, "Arn"]}}},
        },
    )
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handlers.ingest.handler",
            "Runtime": "python3.11",
            "Environment": {
                "Variables": {
                    "POWERTOOLS_SERVICE_NAME": "svc-ingest",
                    "POWERTOOLS_METRICS_NAMESPACE": metrics.NAMESPACE,
                    "QLDB_SETTLE_BUFFER": "opensearch:https://example",
                }
            },
        },
    )
    # The on-failure queue: encrypted, TLS only.
    t.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})
    t.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_ingest_starting_at_a_timestamp(code_dir: Path) -> None:
    stack = new_stack()
    make_ingest(
        stack,
        code_dir / "ingest",
        starting_position="AT_TIMESTAMP",
        starting_position_timestamp="2024-05-01T00:00:00Z",
    )
    Template.from_stack(stack).has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {"StartingPosition": "AT_TIMESTAMP", "StartingPositionTimestamp": 1714521600},
    )


def test_ingest_role_is_scoped_to_single_resources(code_dir: Path) -> None:
    stack = new_stack()
    make_ingest(stack, code_dir / "ingest")
    t = Template.from_stack(stack)
    assert t.find_resources("AWS::IAM::Role")  # its own role
    for role in t.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]  # no AWS managed policy
    assert_no_star(t)
    reads = with_action(t, "kinesis:GetRecords")
    assert [s["Resource"] for s in reads] == [STREAM_ARN]
    queue_id = next(iter(t.find_resources("AWS::SQS::Queue")))
    sends = with_action(t, "sqs:SendMessage")
    assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [queue_id, "Arn"]}]
    log_id = next(iter(t.find_resources("AWS::Logs::LogGroup")))
    logs = with_action(t, "logs:PutLogEvents")
    assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": [log_id, "Arn"]}]


# Buffer -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def buffer_template() -> Template:
    stack = new_stack()
    buffer = BufferDomain(
        stack,
        "Buffer",
        domain_name="qsb",
        version="2.19",
        instance_type="r6g.large.search",
        data_nodes=3,
        availability_zones=3,
        volume_gb=50,
        master_nodes=3,
        master_instance_type="m6g.large.search",
        log_retention_days=30,
    )
    for name in ("A", "B"):
        buffer.grant_http(
            iam.Role(stack, name, assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        )
    iam.Role(stack, "Other", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    return Template.from_stack(stack)


def test_buffer_domain_encryption_https_and_sizing(buffer_template: Template) -> None:
    buffer_template.has_resource_properties(
        "AWS::OpenSearchService::Domain",
        {
            "DomainName": "qsb",
            "EngineVersion": "OpenSearch_2.19",
            "EncryptionAtRestOptions": {"Enabled": True},
            "NodeToNodeEncryptionOptions": {"Enabled": True},
            "DomainEndpointOptions": {
                "EnforceHTTPS": True,
                "TLSSecurityPolicy": "Policy-Min-TLS-1-2-PFS-2023-10",
            },
            "ClusterConfig": Match.object_like(
                {
                    "InstanceCount": 3,
                    "InstanceType": "r6g.large.search",
                    "DedicatedMasterEnabled": True,
                    "DedicatedMasterCount": 3,
                    "ZoneAwarenessEnabled": True,
                    "ZoneAwarenessConfig": {"AvailabilityZoneCount": 3},
                }
            ),
            "EBSOptions": {"EBSEnabled": True, "VolumeSize": 50, "VolumeType": "gp3"},
            "LogPublishingOptions": Match.object_like(
                {
                    "SEARCH_SLOW_LOGS": Match.object_like({"Enabled": True}),
                    "INDEX_SLOW_LOGS": Match.object_like({"Enabled": True}),
                }
            ),
        },
    )


def test_buffer_access_is_limited_to_the_granted_roles(buffer_template: Template) -> None:
    t = buffer_template
    roles = t.find_resources("AWS::IAM::Role")
    granted = sorted(k for k in roles if k.startswith(("A", "B")) and not k.startswith("Buffer"))
    other = next(k for k in roles if k.startswith("Other"))
    domain_id, domain = next(iter(t.find_resources("AWS::OpenSearchService::Domain").items()))
    statement, _master = domain["Properties"]["AccessPolicies"]["Statement"]
    principals = statement["Principal"]["AWS"]
    assert sorted(p["Fn::GetAtt"][0] for p in principals) == granted
    assert other not in json.dumps(domain)
    assert statement["Effect"] == "Allow"
    assert "domain/qsb/*" in json.dumps(statement["Resource"])
    # Each granted role: HTTP on this domain and its paths, nothing else.
    http = with_action(t, "es:ESHttpPut")
    assert len(http) == 2
    for s in http:
        assert s["Resource"] == [
            {"Fn::GetAtt": [domain_id, "Arn"]},
            {"Fn::Join": ["", [{"Fn::GetAtt": [domain_id, "Arn"]}, "/*"]]},
        ]
        assert all(a.startswith("es:ESHttp") for a in s["Action"])
    assert_no_star(t)


# Settler ------------------------------------------------------------------------------------


def make_settler(stack: cdk.Stack, code: Path, **overrides: Any) -> Settler:
    props: dict[str, Any] = {
        "code_dir": code,
        "layer_dir": None,
        "environment": {"QLDB_SETTLE_BUFFER": "opensearch:https://example"},
        "service": "svc-settler",
        "window_parameter_name": "/svc/settle-window-seconds",
        "window_seconds": 120,
        "rate_minutes": 1,
        "destination_ledger_name": "replica",
        "destination_permissions_mode": "STANDARD",
        "memory_mb": 1024,
        "timeout_seconds": 60,
        "log_retention_days": 30,
    }
    props.update(overrides)
    return Settler(stack, "Settler", **props)


@pytest.fixture(scope="module")
def settler_template(code_dir: Path) -> Template:
    stack = new_stack()
    make_settler(stack, code_dir / "settler", rate_minutes=5, window_seconds=300)
    return Template.from_stack(stack)


def test_settler_runs_alone_on_a_schedule(settler_template: Template) -> None:
    t = settler_template
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handlers.settler.handler",
            "Runtime": "python3.11",
            "ReservedConcurrentExecutions": 1,
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "QLDB_SETTLE_DESTINATION": "qldb:replica",
                        "QLDB_SETTLE_WINDOW_PARAMETER": "/svc/settle-window-seconds",
                        "POWERTOOLS_SERVICE_NAME": "svc-settler",
                    }
                )
            },
        },
    )
    function_id = next(iter(t.find_resources("AWS::Lambda::Function")))
    t.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [function_id, "Arn"]}})],
        },
    )
    t.has_resource_properties("AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 0})


def test_settler_window_parameter(settler_template: Template) -> None:
    settler_template.has_resource_properties(
        "AWS::SSM::Parameter",
        {"Name": "/svc/settle-window-seconds", "Type": "String", "Value": "300"},
    )
    param_id = next(iter(settler_template.find_resources("AWS::SSM::Parameter")))
    reads = with_action(settler_template, "ssm:GetParameter")
    assert len(reads) == 1
    assert json.dumps(reads[0]["Resource"]).count(param_id) == 1


def test_settler_qldb_grant_is_the_destination_ledger_only(settler_template: Template) -> None:
    t = settler_template
    assert_no_star(t)
    (send,) = with_action(t, "qldb:SendCommand")
    assert send["Action"] == "qldb:SendCommand"
    assert json.dumps(send["Resource"]).endswith(':ledger/replica"]]}')
    (partiql,) = with_action(t, "qldb:PartiQLInsert")
    assert sorted(partiql["Action"]) == sorted(PARTIQL_ACTIONS)
    resources = json.dumps(partiql["Resource"])
    assert ":ledger/replica/table/*" in resources
    assert ":ledger/replica/information_schema/user_tables" in resources
    assert not [s for s in statements(t) if any(a.startswith("es:") for a in as_list(s["Action"]))]


def test_the_settler_reads_exactly_the_ingest_health_it_checks_before_passing_a_gap(
    code_dir: Path,
) -> None:
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs

    stack = new_stack()
    settler = make_settler(stack, code_dir / "settler")
    queue = sqs.Queue(stack, "Failures")
    ingest = lambda_.Function(
        stack,
        "IngestStub",
        runtime=lambda_.Runtime.PYTHON_3_11,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c): pass"),
    )
    settler.watch_ingest(queue, ingest)
    t = Template.from_stack(stack)
    queue_id = next(iter(t.find_resources("AWS::SQS::Queue")))
    t.has_resource_properties(
        "AWS::Lambda::Function",
        {
            "Handler": "handlers.settler.handler",
            "Environment": {
                "Variables": Match.object_like(
                    {
                        "QLDB_SETTLE_FAILURE_QUEUE_URL": {"Ref": queue_id},
                        "QLDB_SETTLE_INGEST_FUNCTION": Match.any_value(),
                    }
                )
            },
        },
    )
    (depth,) = with_action(t, "sqs:GetQueueAttributes")
    assert depth["Action"] == "sqs:GetQueueAttributes"
    assert depth["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    (age,) = with_action(t, "cloudwatch:GetMetricStatistics")
    assert age["Resource"] == "*"
    assert age["Condition"] == {"StringEquals": {"cloudwatch:namespace": "AWS/Lambda"}}


def test_settler_on_an_allow_all_ledger_has_no_partiql_grant(code_dir: Path) -> None:
    stack = new_stack()
    make_settler(stack, code_dir / "settler", destination_permissions_mode="ALLOW_ALL")
    t = Template.from_stack(stack)
    assert len(with_action(t, "qldb:SendCommand")) == 1
    assert not with_action(t, "qldb:PartiQLInsert")
    t.has_resource_properties("AWS::Events::Rule", {"ScheduleExpression": "rate(1 minute)"})
    t.has_resource_properties("AWS::SSM::Parameter", {"Value": "120"})


def test_layer_dir_adds_a_layer(code_dir: Path, tmp_path: Path) -> None:
    layer = tmp_path / "settler"
    (layer / "python").mkdir(parents=True)
    (layer / "python" / "marker.py").write_text("")
    stack = new_stack()
    make_settler(stack, code_dir / "settler", layer_dir=layer)
    t = Template.from_stack(stack)
    t.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.11"], "CompatibleArchitectures": ["x86_64"]},
    )
    layer_id = next(iter(t.find_resources("AWS::Lambda::LayerVersion")))
    t.has_resource_properties("AWS::Lambda::Function", {"Layers": [{"Ref": layer_id}]})


# Monitoring ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def monitoring() -> tuple[Template, dict[str, Any]]:
    stack = new_stack()
    ingest = lambda_.Function.from_function_name(stack, "I", "ingest-fn")
    settler = lambda_.Function.from_function_name(stack, "S", "settler-fn")
    queue = sqs.Queue.from_queue_arn(stack, "Q", "arn:aws:sqs:eu-west-1:111122223333:failed")
    stream = kinesis.Stream.from_stream_arn(
        stack, "K", "arn:aws:kinesis:eu-west-1:111122223333:stream/journal"
    )
    Monitoring(
        stack,
        "M",
        dashboard_name="svc-Ordering",
        alarm_prefix="svc",
        ingest_service="svc-ingest",
        settler_service="svc-settler",
        ingest_function=ingest,
        settler_function=settler,
        failure_queue=queue,
        stream=stream,
        domain_name="svc",
        domain_volume_gb=40,
        domain_data_nodes=2,
        domain_master_nodes=3,
        lag_alarm_seconds=400,
        iterator_age_alarm_seconds=900,
        settle_window_seconds=150,
        settle_rate_minutes=2,
        settler_timeout_seconds=100,
        failed_range_age_seconds=7200,
        alarm_topic_arn="arn:aws:sns:eu-west-1:111122223333:ops",
    )
    t = Template.from_stack(stack)
    (dashboard,) = t.find_resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    # Tokens (region, function names) sit inside JSON strings: stand in a plain word for them.
    text = (
        body
        if isinstance(body, str)
        else "".join(p if isinstance(p, str) else "TOKEN" for p in body["Fn::Join"][1])
    )
    return t, json.loads(text)


def widget_metrics(widget: dict[str, Any]) -> list[list[Any]]:
    return list(widget.get("properties", {}).get("metrics", []))


def test_dashboard_charts_every_metric(monitoring: tuple[Template, dict[str, Any]]) -> None:
    t, body = monitoring
    t.has_resource_properties("AWS::CloudWatch::Dashboard", {"DashboardName": "svc-Ordering"})
    charted: dict[str, set[str]] = {}
    titles = []
    for widget in body["widgets"]:
        titles.append(widget.get("properties", {}).get("title", ""))
        for row in widget_metrics(widget):
            if isinstance(row[0], dict):  # an expression (the per-shard SEARCH)
                continue
            namespace, name = row[0], row[1]
            if namespace == ".":  # repeated namespace shorthand is not used by CDK, but be safe
                continue
            charted.setdefault(namespace, set()).add(name)
            if namespace == metrics.NAMESPACE:
                service = row[row.index(metrics.SERVICE_DIMENSION) + 1]
                expected = "svc-ingest" if name in metrics.INGEST_METRICS else "svc-settler"
                assert service == expected, row
    assert set(metrics.INGEST_METRICS) | set(metrics.SETTLER_METRICS) <= charted[metrics.NAMESPACE]
    assert "IteratorAge" in charted["AWS/Lambda"]
    assert {"Errors", "Throttles", "Duration"} <= charted["AWS/Lambda"]
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"} <= charted[
        "AWS/SQS"
    ]
    assert "GetRecords.IteratorAgeMilliseconds" in charted["AWS/Kinesis"]
    assert {
        "ClusterStatus.red",
        "ClusterStatus.yellow",
        "ClusterIndexWritesBlocked",
        "FreeStorageSpace",
        "JVMMemoryPressure",
        "AutomatedSnapshotFailure",
    } <= charted["AWS/ES"]
    # The record types each have their line.
    received = [
        row
        for w in body["widgets"]
        for row in widget_metrics(w)
        if len(row) > 1 and row[1] == metrics.RECORDS_RECEIVED
    ]
    assert sorted(row[row.index(metrics.RECORD_TYPE_DIMENSION) + 1] for row in received) == sorted(
        metrics.RECORD_TYPES
    )
    # Lag is drawn against the alarm line (window + margin).
    lag = next(w for w in body["widgets"] if "Replay lag" in w["properties"].get("title", ""))
    assert lag["properties"]["annotations"]["horizontal"][0]["value"] == 400_000

    def widget(title: str) -> dict[str, Any]:
        (found,) = [w for w in body["widgets"] if title in w["properties"].get("title", "")]
        return dict(found)

    def lines(w: dict[str, Any]) -> dict[str, float]:
        return {a["label"]: a["value"] for a in w["properties"]["annotations"]["horizontal"]}

    # The settler's invocation against its timeout (ms), with its errors.
    settler = widget("against its timeout")
    assert lines(settler) == {"settler timeout": 100_000}
    assert [r[1] for r in widget_metrics(settler)] == ["Duration", "Errors", "Throttles"]
    assert widget_metrics(settler)[0][-1]["stat"] == "Maximum"
    # Oldest pending age against the window (ms) and the lag alarm.
    pending = widget("oldest pending age")
    assert set(lines(pending).values()) == {400_000, 150_000}
    # Iterator age: the function's, the stream's, and per shard by a SEARCH on the stream.
    ages = widget("Iterator age")
    (search,) = [r[0]["expression"] for r in widget_metrics(ages) if isinstance(r[0], dict)]
    assert search.startswith("SEARCH('{AWS/Kinesis,ShardId,StreamName}")
    assert 'MetricName="IteratorAgeMilliseconds" StreamName="journal"' in search
    assert lines(ages)["iterator age alarm"] == 900_000
    # The failed-range age line is the alarm's threshold, in seconds as SQS reports it.
    assert lines(widget("Failed ranges queue"))["failed-range age alarm"] == 7200
    # Free storage against 25 % of a node's 40 GiB, in MiB.
    assert lines(widget("free storage"))["free storage alarm"] == 10240
    assert any(title.startswith("Ordering") or "Ordering" in title for title in titles) or any(
        w["type"] == "text" and "# Ordering" in w["properties"]["markdown"] for w in body["widgets"]
    )


def test_alarms_notify_the_given_topic(monitoring: tuple[Template, dict[str, Any]]) -> None:
    """Each alarm's metric, threshold and missing-data treatment: tests/infra/
    test_infra_alarms.py (on the synthesized app). Here: a given topic is used, none created,
    and the settler's alarm periods follow its schedule (every 2 minutes: 5-minute periods)."""
    t, _ = monitoring
    t.resource_count_is("AWS::SNS::Topic", 0)
    t.resource_count_is("AWS::KMS::Key", 0)
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in t.find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert len(alarms) == 26
    for a in alarms.values():
        assert a["AlarmActions"] == ["arn:aws:sns:eu-west-1:111122223333:ops"]
    assert alarms["svc-Halted"]["OKActions"] == ["arn:aws:sns:eu-west-1:111122223333:ops"]
    assert "OKActions" not in alarms["svc-GapsPassed"]
    assert alarms["svc-SettlerHeartbeat"]["Period"] == 300
    assert alarms["svc-FailedRangesAge"]["Threshold"] == 7200
    assert alarms["svc-BufferFreeStorage"]["Threshold"] == 10240
    (dimension,) = alarms["svc-IteratorAge"]["Dimensions"]
    assert dimension["Name"] == "FunctionName"
    assert ":function:ingest-fn" in json.dumps(dimension["Value"])


def test_the_settlers_alarm_periods_hold_a_cycle() -> None:
    """A settler on a 10-minute schedule: its alarms' periods are 10 minutes (a 5-minute period
    would be empty every other time, and the heartbeat would fire on a healthy settler)."""
    stack = new_stack()
    Monitoring(
        stack,
        "M",
        dashboard_name="svc-Ordering",
        alarm_prefix="svc",
        ingest_service="svc-ingest",
        settler_service="svc-settler",
        ingest_function=lambda_.Function.from_function_name(stack, "I", "ingest-fn"),
        settler_function=lambda_.Function.from_function_name(stack, "S", "settler-fn"),
        failure_queue=sqs.Queue.from_queue_arn(
            stack, "Q", "arn:aws:sqs:eu-west-1:111122223333:failed"
        ),
        stream=kinesis.Stream.from_stream_arn(
            stack, "K", "arn:aws:kinesis:eu-west-1:111122223333:stream/journal"
        ),
        domain_name="svc",
        domain_volume_gb=20,
        domain_data_nodes=1,
        domain_master_nodes=0,
        lag_alarm_seconds=900,
        iterator_age_alarm_seconds=900,
        settle_window_seconds=600,
        settle_rate_minutes=10,
        settler_timeout_seconds=300,
        failed_range_age_seconds=7200,
    )
    periods = {
        a["Properties"]["AlarmName"]: a["Properties"].get("Period")
        for a in Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == metrics.NAMESPACE
        and {"Name": "service", "Value": "svc-settler"} in a["Properties"]["Dimensions"]
    }
    assert periods and set(periods.values()) == {600}, periods
    # One data node holds no replica (yellow for good): no yellow alarm.
    names = {
        a["Properties"]["AlarmName"]
        for a in Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    }
    assert "svc-BufferClusterRed" in names and "svc-BufferClusterYellow" not in names
    # No dedicated masters: no master alarms.
    assert not [n for n in names if n.startswith("svc-BufferMaster")]
