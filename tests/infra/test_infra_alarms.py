"""The alarms of the synthesized app, against what the handlers emit, and who they reach.

One table states every alarm: metric, namespace, dimensions, statistic, period, threshold,
comparison, evaluation, missing-data treatment and whether it also notifies when it clears. The
template must hold exactly these. For the service's own metrics, the handlers' EMF output (their
``publish_metrics``, run with the environment the stack gives each function) must hold each
alarm's namespace, metric name, dimensions and unit: an alarm on a name or dimension no handler
publishes would never fire.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from handlers import metrics
from infra.config import Config
from runtime.errors import ConfigError
from tests.infra.conftest import ALARM_TOPIC, EXISTING_STREAM, Synthesized

# The defaults the table is written for (test_the_table_is_written_for_the_defaults).
SERVICE = "qldb-settle"
LAG_MS = 300 * 1000
ITERATOR_MS = 600 * 1000
# The failed-range age alarm: redrive has retention - max record age (168 h - 24 h), capped by
# the queue's 14 days; the alarm fires with a quarter of that (at least 1 h) left.
USABLE = min(168 * 3600 - 86400, 14 * 86400)
FAILED_RANGE_AGE_S = USABLE - max(3600, USABLE // 4)
FREE_STORAGE_MIB = 20 * 1024 // 4  # 25 % of a node's 20 GiB


@dataclass(frozen=True)
class Expected:
    namespace: str
    metric: str
    dims: str  # settler, ingest (service dimension); settler-fn, ingest-fn; queue; domain
    statistic: str
    period: int
    threshold: float
    comparison: str
    missing: str
    evaluation: int = 1
    datapoints: int = 1
    ok: bool = False


GTE, GT, LT, LTE = (
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
Q, LAMBDA, SQS, ES = metrics.NAMESPACE, "AWS/Lambda", "AWS/SQS", "AWS/ES"

ALARMS: dict[str, Expected] = {
    # The settler (period: 5 minutes, at least the schedule's).
    "Halted": Expected(Q, metrics.HALTED, "settler", "Maximum", 300, 1, GTE, "missing", ok=True),
    "SettlerHeartbeat": Expected(
        Q, metrics.CYCLE_DURATION, "settler", "SampleCount", 300, 1, LT, "breaching", 3, 3, True
    ),
    "SettlerErrors": Expected(LAMBDA, "Errors", "settler-fn", "Sum", 300, 1, GTE, "notBreaching"),
    "SettlerThrottles": Expected(
        LAMBDA, "Throttles", "settler-fn", "Sum", 300, 1, GTE, "notBreaching"
    ),
    "QuarantinedBlocks": Expected(
        Q, metrics.QUARANTINED_BLOCKS, "settler", "Sum", 300, 1, GTE, "notBreaching"
    ),
    "LateBlocks": Expected(Q, metrics.LATE_BLOCKS, "settler", "Sum", 300, 1, GTE, "notBreaching"),
    "GapsPassed": Expected(Q, metrics.GAPS_PASSED, "settler", "Sum", 300, 1, GTE, "notBreaching"),
    "ReplayLag": Expected(
        Q, metrics.REPLAY_LAG, "settler", "Maximum", 300, LAG_MS, GT, "notBreaching", 3, 2, True
    ),
    "OldestPendingAge": Expected(
        Q,
        metrics.OLDEST_PENDING_AGE,
        "settler",
        "Maximum",
        300,
        LAG_MS,
        GT,
        "notBreaching",
        3,
        2,
        True,
    ),
    # The ingest.
    "IngestErrors": Expected(LAMBDA, "Errors", "ingest-fn", "Sum", 300, 1, GTE, "notBreaching"),
    "IngestThrottles": Expected(
        LAMBDA, "Throttles", "ingest-fn", "Sum", 300, 1, GTE, "notBreaching"
    ),
    "RejectedRecords": Expected(
        Q, metrics.REJECTED_RECORDS, "ingest", "Sum", 300, 1, GTE, "notBreaching"
    ),
    "Conflicts": Expected(Q, metrics.CONFLICTS, "ingest", "Sum", 300, 1, GTE, "notBreaching"),
    "RecordsRetried": Expected(
        Q, metrics.RECORDS_RETRIED, "ingest", "Sum", 300, 1, GTE, "notBreaching", 3, 3, True
    ),
    "IteratorAge": Expected(
        LAMBDA,
        "IteratorAge",
        "ingest-fn",
        "Maximum",
        300,
        ITERATOR_MS,
        GT,
        "notBreaching",
        3,
        2,
        True,
    ),
    "FailedRanges": Expected(
        SQS,
        "ApproximateNumberOfMessagesVisible",
        "queue",
        "Maximum",
        300,
        1,
        GTE,
        "notBreaching",
        ok=True,
    ),
    "FailedRangesAge": Expected(
        SQS,
        "ApproximateAgeOfOldestMessage",
        "queue",
        "Maximum",
        300,
        FAILED_RANGE_AGE_S,
        GTE,
        "notBreaching",
        ok=True,
    ),
    # The buffer domain: AWS's recommended OpenSearch Service alarms.
    "BufferClusterRed": Expected(
        ES, "ClusterStatus.red", "domain", "Maximum", 60, 1, GTE, "missing", ok=True
    ),
    "BufferClusterYellow": Expected(
        ES, "ClusterStatus.yellow", "domain", "Maximum", 60, 1, GTE, "missing", 5, 5, True
    ),
    "BufferWritesBlocked": Expected(
        ES, "ClusterIndexWritesBlocked", "domain", "Maximum", 300, 1, GTE, "missing", ok=True
    ),
    "BufferFreeStorage": Expected(
        ES, "FreeStorageSpace", "domain", "Minimum", 60, FREE_STORAGE_MIB, LTE, "missing", ok=True
    ),
    "BufferJVMMemoryPressure": Expected(
        ES, "JVMMemoryPressure", "domain", "Maximum", 60, 95, GTE, "missing", 3, 3, True
    ),
    "BufferCPU": Expected(
        ES, "CPUUtilization", "domain", "Maximum", 900, 80, GTE, "missing", 3, 3, True
    ),
    # With dedicated masters (the production profile's 3).
    "BufferMasterCPU": Expected(
        ES, "MasterCPUUtilization", "domain", "Maximum", 900, 50, GTE, "missing", 3, 3, True
    ),
    "BufferMasterJVMMemoryPressure": Expected(
        ES, "MasterJVMMemoryPressure", "domain", "Maximum", 60, 95, GTE, "missing", 3, 3, True
    ),
    "BufferSnapshotFailure": Expected(
        ES, "AutomatedSnapshotFailure", "domain", "Maximum", 60, 1, GTE, "missing"
    ),
}


def test_the_table_is_written_for_the_defaults() -> None:
    c = Config.defaults()
    assert (c.service_name, c.lag_alarm_seconds, c.iterator_age_alarm_seconds) == (
        SERVICE,
        300,
        600,
    )
    assert (c.settle_rate_minutes, c.stream_retention_hours, c.ingest_max_record_age_seconds) == (
        1,
        168,
        86400,
    )
    assert c.open_search_volume_gb == 20 and c.alarm_topic_arn == ""
    assert c.open_search_data_nodes > 1  # the yellow alarm exists
    assert c.open_search_master_nodes == 3  # the master alarms exist


# The template ------------------------------------------------------------------------------


def alarms_of(synth: Synthesized) -> dict[str, dict[str, Any]]:
    out = {}
    for alarm in synth.resources("Service", "AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        name = props["AlarmName"]
        assert name.startswith(f"{SERVICE}-"), name
        out[name.removeprefix(f"{SERVICE}-")] = props
    return out


def function_ids(synth: Synthesized) -> dict[str, str]:
    """``ingest`` and ``settler``: the logical id of each function, by its handler."""
    found = {}
    for rid, fn in synth.resources("Service", "AWS::Lambda::Function").items():
        handler = fn["Properties"].get("Handler", "")
        for kind in ("ingest", "settler"):
            if handler == f"handlers.{kind}.handler":
                found[kind] = rid
    assert set(found) == {"ingest", "settler"}
    return found


def environment(synth: Synthesized, kind: str) -> dict[str, str]:
    fn = synth.templates["Service"]["Resources"][function_ids(synth)[kind]]
    variables = fn["Properties"]["Environment"]["Variables"]
    return {k: v for k, v in variables.items() if isinstance(v, str)}


def expected_dimensions(synth: Synthesized, kind: str) -> list[dict[str, Any]]:
    if kind in ("settler", "ingest"):
        # The service dimension is the POWERTOOLS_SERVICE_NAME the stack gives that function.
        service = environment(synth, kind)["POWERTOOLS_SERVICE_NAME"]
        return [{"Name": metrics.SERVICE_DIMENSION, "Value": service}]
    if kind in ("settler-fn", "ingest-fn"):
        fn = function_ids(synth)[kind.removesuffix("-fn")]
        return [{"Name": "FunctionName", "Value": {"Ref": fn}}]
    if kind == "queue":
        (queue,) = synth.resources("Service", "AWS::SQS::Queue")
        return [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]
    assert kind == "domain"
    (domain,) = synth.resources("Service", "AWS::OpenSearchService::Domain").values()
    return [
        {"Name": "ClientId", "Value": {"Ref": "AWS::AccountId"}},
        {"Name": "DomainName", "Value": domain["Properties"]["DomainName"]},
    ]


def test_every_alarm_is_in_the_table_and_every_row_is_an_alarm(default_app: Synthesized) -> None:
    assert sorted(alarms_of(default_app)) == sorted(ALARMS)


@pytest.mark.parametrize("name", sorted(ALARMS))
def test_alarm(name: str, default_app: Synthesized) -> None:
    e = ALARMS[name]
    a = alarms_of(default_app)[name]
    assert (a["Namespace"], a["MetricName"], a["Statistic"], a["Period"]) == (
        e.namespace,
        e.metric,
        e.statistic,
        e.period,
    )
    assert sorted(a["Dimensions"], key=lambda d: d["Name"]) == expected_dimensions(
        default_app, e.dims
    )
    assert (a["Threshold"], a["ComparisonOperator"]) == (e.threshold, e.comparison)
    assert (a["EvaluationPeriods"], a["DatapointsToAlarm"]) == (e.evaluation, e.datapoints)
    assert a["TreatMissingData"] == e.missing
    assert a["AlarmDescription"]


def test_only_the_heartbeat_treats_missing_data_as_breaching(default_app: Synthesized) -> None:
    breaching = [
        n for n, a in alarms_of(default_app).items() if a["TreatMissingData"] == "breaching"
    ]
    assert breaching == ["SettlerHeartbeat"]


def test_a_single_data_node_without_masters_has_no_yellow_or_master_alarm(
    default_app: Synthesized, synthesize: Callable[[Mapping[str, Any]], Synthesized]
) -> None:
    """One data node can hold no replica, so the domain is yellow for good: that alarm would
    only teach people to ignore alarms; without dedicated masters there is no master metric.
    Every other alarm stays."""
    dev = synthesize({"profile": "dev"})
    (domain,) = dev.resources("Service", "AWS::OpenSearchService::Domain").values()
    cluster = domain["Properties"]["ClusterConfig"]
    assert cluster["InstanceCount"] == 1 and not cluster.get("DedicatedMasterEnabled")
    assert sorted(alarms_of(dev)) == sorted(
        set(ALARMS) - {"BufferClusterYellow", "BufferMasterCPU", "BufferMasterJVMMemoryPressure"}
    )


def test_the_heartbeat_spans_several_cycles(default_app: Synthesized) -> None:
    """Three periods of at least the schedule each: a healthy settler is never missing from
    them all, a stopped one is within 15 minutes."""
    heartbeat = alarms_of(default_app)["SettlerHeartbeat"]
    (rule,) = default_app.resources("Service", "AWS::Events::Rule").values()
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    assert heartbeat["Period"] >= 60 and heartbeat["EvaluationPeriods"] >= 3


# What the handlers emit ----------------------------------------------------------------------


def emitted(out: str) -> set[tuple[str, str, frozenset[tuple[str, str]], str]]:
    """(namespace, metric, dimensions, unit) of every metric in EMF output."""
    found = set()
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        doc = json.loads(line)
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            for dims in directive["Dimensions"]:
                dimensions = frozenset((d, doc[d]) for d in dims)
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], dimensions, metric["Unit"]))
    return found


@pytest.fixture
def handler_metrics(
    default_app: Synthesized, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, set[tuple[str, str, frozenset[tuple[str, str]], str]]]:
    """Each handler's ``publish_metrics`` run under the environment the stack gives it (its
    Powertools service name and namespace), with every optional metric present."""
    pytest.importorskip("aws_lambda_powertools")
    from handlers import ingest, settler
    from ingest.service import IngestReport
    from settler.cycle_report import SettleReport

    out = {}
    for kind in ("settler", "ingest"):
        env = environment(default_app, kind)
        for key in ("POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"):
            monkeypatch.setenv(key, env[key])
        capsys.readouterr()
        if kind == "settler":
            # The handler's Metrics is built at import, after Lambda set the environment: here
            # after the stack's environment is set, as there.
            from aws_lambda_powertools import Metrics

            monkeypatch.setattr(settler, "metrics", Metrics(namespace=settler.NAMESPACE))
            report = SettleReport(lag_ms=[1500.0], halted=True, gaps_passed=1)
            report.oldest_pending_age_ms = 2500.0
            settler.publish_metrics(report, 12.0, 120.0)
            settler.metrics.flush_metrics()
        else:
            ingest.publish_metrics(IngestReport(ingest_delays_ms=[5.0], out_of_orderness=[1]))
        out[kind] = emitted(capsys.readouterr().out)
        assert out[kind], f"{kind}: no EMF output"
    return out


MS_THRESHOLDS = {"ReplayLag", "OldestPendingAge"}


def test_every_service_alarm_reads_what_a_handler_emits(
    default_app: Synthesized,
    handler_metrics: dict[str, set[tuple[str, str, frozenset[tuple[str, str]], str]]],
) -> None:
    service_alarms = {n: e for n, e in ALARMS.items() if e.namespace == metrics.NAMESPACE}
    assert len(service_alarms) == 10
    ingest_service, settler_service = metrics.service_names(SERVICE)
    for name, e in service_alarms.items():
        a = alarms_of(default_app)[name]
        dimensions = frozenset((d["Name"], d["Value"]) for d in a["Dimensions"])
        assert dict(dimensions)[metrics.SERVICE_DIMENSION] == (
            settler_service if e.dims == "settler" else ingest_service
        )
        units = {
            unit
            for namespace, metric, dims, unit in handler_metrics[e.dims]
            if (namespace, metric, dims) == (a["Namespace"], a["MetricName"], dimensions)
        }
        assert len(units) == 1, f"{name}: {e.dims} handler does not emit {a['MetricName']}"
        (unit,) = units
        # Thresholds on durations are in the metric's unit (ms), from seconds of the context.
        assert (unit == "Milliseconds") == (name in MS_THRESHOLDS or e.metric == "CycleDuration")
        if name in MS_THRESHOLDS:
            assert a["Threshold"] == Config.defaults().lag_alarm_seconds * 1000


def test_the_settler_emits_one_cycle_duration_per_cycle(
    handler_metrics: dict[str, set[tuple[str, str, frozenset[tuple[str, str]], str]]],
) -> None:
    """The heartbeat counts samples of CycleDuration: one per finished cycle, and the Halted
    alarm's metric (missing data: keeps state) is emitted every cycle too."""
    names = [metric for _, metric, _, _ in handler_metrics["settler"]]
    assert names.count(metrics.CYCLE_DURATION) == 1 and names.count(metrics.HALTED) == 1


# Who the alarms reach ---------------------------------------------------------------------


def test_a_kms_encrypted_topic_is_every_alarms_action(default_app: Synthesized) -> None:
    (topic_id, topic), *more = default_app.resources("Service", "AWS::SNS::Topic").items()
    assert more == []
    assert topic["Properties"]["TopicName"] == f"{SERVICE}-alarms"
    key_ref = topic["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"]
    assert key_ref[1] == "Arn"
    key = default_app.templates["Service"]["Resources"][key_ref[0]]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch["Effect"] == "Allow"
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"]["StringEquals"] == {
        "aws:SourceAccount": {"Ref": "AWS::AccountId"}
    }
    (pattern,) = cloudwatch["Condition"]["ArnLike"].values()
    assert pattern["Fn::Join"][1][-1] == f":alarm:{SERVICE}-*"  # these alarms only
    (policy,) = default_app.resources("Service", "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    (publish,) = [s for s in statements if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "sns:Publish" and publish["Resource"] == {"Ref": topic_id}
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in json.dumps(s) for s in statements)
    for name, a in alarms_of(default_app).items():
        assert a["AlarmActions"] == [{"Ref": topic_id}], name
        assert a.get("OKActions", []) == ([{"Ref": topic_id}] if ALARMS[name].ok else []), name
    output = default_app.templates["Service"]["Outputs"]["AlarmTopicArn"]
    assert output["Value"] == {"Ref": topic_id}


def test_a_given_topic_is_used_and_none_created(existing_app: Synthesized) -> None:
    assert existing_app.resources("Service", "AWS::SNS::Topic") == {}
    for a in existing_app.resources("Service", "AWS::CloudWatch::Alarm").values():
        assert a["Properties"]["AlarmActions"] == [ALARM_TOPIC]
    assert existing_app.templates["Service"]["Outputs"]["AlarmTopicArn"]["Value"] == ALARM_TOPIC


def test_an_existing_streams_retention_sets_the_failed_range_age(
    existing_app: Synthesized,
) -> None:
    """existingStreamRetentionHours 72: redrive has 72 h - 24 h from a message's arrival."""
    (age,) = [
        a["Properties"]
        for a in existing_app.resources("Service", "AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"].endswith("-FailedRangesAge")
    ]
    usable = 72 * 3600 - 86400
    assert age["Threshold"] == usable - usable // 4


def test_the_created_stream_reports_iterator_age_per_shard(default_app: Synthesized) -> None:
    (stream,) = default_app.resources("Streaming", "AWS::Kinesis::Stream").values()
    assert stream["Properties"]["DesiredShardLevelMetrics"] == ["IteratorAgeMilliseconds"]
    assert stream["Properties"]["RetentionPeriodHours"] == 168


# Cross-checks of the context --------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (
            {"settleWindowSeconds": 300},
            r"lagAlarmSeconds \(300\) must be above settleWindowSeconds \(300\)",
        ),
        (
            {"lagAlarmSeconds": 100},
            r"lagAlarmSeconds \(100\) must be above settleWindowSeconds \(120\)",
        ),
        (
            {"settlerTimeoutSeconds": 60},
            r"settlerTimeoutSeconds \(60\) must be below the schedule period, "
            r"settleRateMinutes \* 60 \(60 s\)",
        ),
        (
            {"settleRateMinutes": 2, "settlerTimeoutSeconds": 120},
            r"settlerTimeoutSeconds \(120\) must be below .* \(120 s\)",
        ),
        (
            {"streamRetentionHours": 24},
            r"ingestMaxRecordAgeSeconds \(86400\) must be below the stream retention minus 1 h "
            r"\(streamRetentionHours = 24: 82800 s\)",
        ),
        (
            {"streamRetentionHours": 48, "ingestMaxRecordAgeSeconds": 169200},
            r"ingestMaxRecordAgeSeconds \(169200\) .* \(streamRetentionHours = 48: 169200 s\)",
        ),
        (
            {"existingStreamArn": EXISTING_STREAM},
            r"existingStreamRetentionHours is required with existingStreamArn",
        ),
        (
            {"existingStreamArn": EXISTING_STREAM, "existingStreamRetentionHours": 12},
            r"existingStreamRetentionHours must be between 24 and 8760, not 12",
        ),
        (
            {"existingStreamArn": EXISTING_STREAM, "existingStreamRetentionHours": 24},
            r"ingestMaxRecordAgeSeconds \(86400\) .* "
            r"\(existingStreamRetentionHours = 24: 82800 s\)",
        ),
        (
            {"existingStreamRetentionHours": 48},
            r"existingStreamRetentionHours is given only with existingStreamArn",
        ),
    ],
)
def test_cross_checks_refuse_the_context_naming_the_keys(
    context: Mapping[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_context(context.get)


@pytest.mark.parametrize(
    "context",
    [
        {"settleWindowSeconds": 299},
        {"settlerTimeoutSeconds": 59},
        {"settleRateMinutes": 5, "settlerTimeoutSeconds": 299},
        {"streamRetentionHours": 24, "ingestMaxRecordAgeSeconds": 82799},
        {
            "existingStreamArn": EXISTING_STREAM,
            "existingStreamRetentionHours": 25,
            "ingestMaxRecordAgeSeconds": 86399,
        },
    ],
)
def test_cross_checks_accept_the_context_just_inside(context: Mapping[str, Any]) -> None:
    config = Config.from_context(context.get)
    assert config.retention_hours == (
        context.get("existingStreamRetentionHours") or context.get("streamRetentionHours") or 168
    )


def test_a_synth_with_a_bad_context_fails_naming_the_keys(
    synthesize: Callable[[Mapping[str, Any]], Synthesized],
) -> None:
    with pytest.raises(ConfigError, match=r"lagAlarmSeconds .* settleWindowSeconds"):
        synthesize({"settleWindowSeconds": "600"})
