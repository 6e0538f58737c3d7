"""Watching the ordering: the "Ordering" CloudWatch dashboard, the alarms and who they reach.

Every metric of the service is read by the names and dimensions of ``handlers.metrics`` (the
handlers' EMF contract); the functions' errors, throttles, durations and iterator age, the
on-failure queue, the stream and the buffer domain are read from their AWS namespaces. The
dashboard and the alarms are one module (one construct) because they change together: each metric
the handlers add is charted and alarmed from the same ``Metric`` objects, and the runbook in
docs/deploy.md follows the alarms table (tests/infra/test_infra_alarms.py) row by row.

Missing data, alarm by alarm (``treat_missing_data``):

- *not breaching* where a missing point means nothing happened: the event counts (GapsPassed,
  QuarantinedBlocks, LateBlocks, RejectedRecords, Conflicts, RecordsRetried, the functions'
  Errors and Throttles), ReplayLag (emitted only when blocks replay), OldestPendingAge (emitted
  only while a block is pending), IteratorAge (emitted only when the ingest is invoked) and the
  on-failure queue (SQS stops reporting an idle, empty queue);
- *breaching* where the absence itself is the failure: the settler's heartbeat, the number of
  cycles (``CycleDuration`` samples), which a settler that throws, times out, is throttled or is
  never invoked does not emit;
- *missing* (the alarm keeps its state) where the metric is reported every period whenever its
  source is alive, so a gap is a reporting outage, neither proof of health nor of failure:
  Halted (one point per cycle; a settler that halts and then stops running stays in ALARM, and
  the heartbeat says it stopped) and the buffer domain's metrics (AWS/ES publishes them every
  minute).
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from handlers import metrics as m

PERIOD = Duration.minutes(1)
ALARM_PERIOD = Duration.minutes(5)
# The heartbeat fires after this many settler periods in a row without one finished cycle.
HEARTBEAT_PERIODS = 3
# The failed-ranges age alarm fires when this share of the time redrive has is used up.
FAILED_RANGE_AGE_SHARE = 0.75
MIN_FAILED_RANGE_MARGIN_SECONDS = 3600
# FreeStorageSpace alarm: a data node below this share of its volume (AWS's recommendation).
FREE_STORAGE_SHARE = 0.25
ES_NAMESPACE = "AWS/ES"

MISSING = cw.TreatMissingData.MISSING
NOT_BREACHING = cw.TreatMissingData.NOT_BREACHING
BREACHING = cw.TreatMissingData.BREACHING
GTE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD
LTE = cw.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD


def failed_range_age_alarm_seconds(
    *, retention_hours: int, max_record_age_seconds: int, queue_retention_seconds: int
) -> int:
    """When the oldest message of the on-failure queue is this old, its range is close to being
    lost. A range reaches the queue at most ``max_record_age_seconds`` after its records were
    written, and Kinesis trims them ``retention_hours`` after they were written, so redrive has
    ``retention - max record age`` from the message's arrival (less if the queue drops the
    message first). The alarm fires when ``FAILED_RANGE_AGE_SHARE`` of that is gone, and at the
    latest an hour before the end."""
    usable = min(retention_hours * 3600 - max_record_age_seconds, queue_retention_seconds)
    margin = max(MIN_FAILED_RANGE_MARGIN_SECONDS, round(usable * (1 - FAILED_RANGE_AGE_SHARE)))
    return max(60, usable - margin)


class Monitoring(Construct):
    """The dashboard ``<serviceName>-Ordering``, one alarm per condition an operator must act
    on, and the SNS topic they notify (``alarm_topic_arn``, or one created here: encrypted with
    a customer key of its own that CloudWatch may use for these alarms only).

    Iterator age is charted three ways. The alarm and the settler's gap check read the ingest
    function's ``AWS/Lambda IteratorAge``: it is this consumer's own age, but one value per
    function (the maximum over its shards). ``AWS/Kinesis GetRecords.IteratorAgeMilliseconds``
    is per stream and covers every consumer (the Firehose backup too). Per shard there is only
    the enhanced shard-level ``IteratorAgeMilliseconds`` (dimension ``ShardId``; again every
    consumer's): the created stream enables that one metric (``shard_level_metrics``), and the
    dashboard draws it with a SEARCH expression, so the panel also fills for an existing stream
    on which an operator enabled it (``aws kinesis enable-enhanced-monitoring``) and stays empty
    otherwise.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dashboard_name: str,
        alarm_prefix: str,
        ingest_service: str,
        settler_service: str,
        ingest_function: lambda_.IFunction,
        settler_function: lambda_.IFunction,
        failure_queue: sqs.IQueue,
        stream: kinesis.IStream,
        domain_name: str,
        domain_volume_gb: int,
        domain_data_nodes: int,
        domain_master_nodes: int,
        lag_alarm_seconds: int,
        iterator_age_alarm_seconds: int,
        settle_window_seconds: int,
        settle_rate_minutes: int,
        settler_timeout_seconds: int,
        failed_range_age_seconds: int,
        alarm_topic_arn: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self._ingest_service = ingest_service
        self._settler_service = settler_service

        lag_ms = lag_alarm_seconds * 1000
        window_ms = settle_window_seconds * 1000
        # Settler metrics come once per cycle: an alarm period holds at least one cycle.
        settler_period = Duration.minutes(max(5, settle_rate_minutes))

        def iterator_age(period: Duration, label: str | None = None) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/Lambda",
                metric_name="IteratorAge",
                dimensions_map={"FunctionName": ingest_function.function_name},
                statistic="Maximum",
                period=period,
                label=label,
            )

        def dlq_depth(period: Duration) -> cw.Metric:
            return failure_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=period
            )

        def domain(name: str, statistic: str, period: Duration = PERIOD) -> cw.Metric:
            return cw.Metric(
                namespace=ES_NAMESPACE,
                metric_name=name,
                dimensions_map={"DomainName": domain_name, "ClientId": Aws.ACCOUNT_ID},
                statistic=statistic,
                period=period,
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=(
                    "# Ordering\n"
                    "Blocks are replayed in commit order once settled: a block waits until it is "
                    "the settle window old (SSM parameter) unless the hash chain proves it next. "
                    "Lag above the window means blocks wait for missing records or the settler "
                    "is behind; **Halted** means an operator must `qldb-settle resolve` a block. "
                    "Each alarm's first command: docs/deploy.md, Runbook."
                ),
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Replay lag (ms) against the window plus margin",
                left=self._distribution(settler_service, m.REPLAY_LAG),
                left_annotations=[
                    cw.HorizontalAnnotation(value=lag_ms, label="lag alarm (window + margin)")
                ],
                width=12,
            ),
            cw.GraphWidget(
                title="Buffer depth (blocks) and oldest pending age (ms) against the window",
                left=[self._settler(m.BUFFER_DEPTH, "Maximum")],
                right=[self._settler(m.OLDEST_PENDING_AGE, "Maximum")],
                right_annotations=[
                    cw.HorizontalAnnotation(value=lag_ms, label="lag alarm"),
                    cw.HorizontalAnnotation(
                        value=window_ms,
                        label="settle window (settleWindowSeconds; the SSM value may differ)",
                    ),
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Held by window, early releases; the window used (s)",
                left=[self._settler(m.HELD_BY_WINDOW, "Maximum")],
                right=[
                    self._settler(m.EARLY_RELEASES),
                    self._settler(m.WINDOW_SECONDS, "Minimum"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Gaps passed, late, quarantined; halted, gaps held, lease held",
                left=[
                    self._settler(m.GAPS_PASSED),
                    self._settler(m.LATE_BLOCKS),
                    self._settler(m.QUARANTINED_BLOCKS),
                    self._ingest(m.LATE_RECORDS),
                ],
                right=[
                    self._settler(m.HALTED, "Maximum"),
                    self._settler(m.GAPS_HELD, "Maximum"),
                    self._settler(m.LEASE_HELD, "Maximum"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Duplicates, conflicts, rejected records; Kinesis records retried",
                left=[
                    self._ingest(m.DUPLICATES),
                    self._ingest(m.CONFLICTS),
                    self._ingest(m.REJECTED_RECORDS),
                ],
                right=[self._ingest(m.RECORDS_RETRIED)],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Out-of-orderness (sequence numbers)",
                left=self._distribution(ingest_service, m.OUT_OF_ORDERNESS),
                width=8,
            ),
            cw.GraphWidget(
                title="Ingest delay (ms, arrival - commit)",
                left=self._distribution(ingest_service, m.INGEST_DELAY),
                width=8,
            ),
            cw.GraphWidget(
                title="Iterator age (ms): ingest function, stream (all consumers), per shard",
                left=[
                    iterator_age(PERIOD, "ingest function (AWS/Lambda IteratorAge)"),
                    stream.metric_get_records_iterator_age_milliseconds(
                        statistic="Maximum",
                        period=PERIOD,
                        label="stream, every consumer (GetRecords.IteratorAgeMilliseconds)",
                    ),
                    cw.MathExpression(
                        expression=(
                            "SEARCH('{AWS/Kinesis,ShardId,StreamName} "
                            'MetricName="IteratorAgeMilliseconds" '
                            f"StreamName=\"{stream.stream_name}\"', 'Maximum', 60)"
                        ),
                        label="shard",
                        period=PERIOD,
                    ),
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=iterator_age_alarm_seconds * 1000, label="iterator age alarm"
                    ),
                    cw.HorizontalAnnotation(value=window_ms, label="settle window: gaps wait"),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Records in, blocks out",
                left=[
                    *(
                        self._ingest(m.RECORDS_RECEIVED, record_type=t, label=t)
                        for t in m.RECORD_TYPES
                    ),
                    self._ingest(m.STATEMENTS_BUFFERED),
                    self._ingest(m.REVISIONS_BUFFERED),
                ],
                right=[
                    self._settler(m.BLOCKS_REPLAYED),
                    self._settler(m.STATEMENTS_REPLAYED),
                    self._settler(m.REVISIONS_APPLIED),
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Settler cycle (ms), cycles per minute, digests unverified",
                left=[
                    self._settler(m.CYCLE_DURATION, "p50"),
                    self._settler(m.CYCLE_DURATION, "Maximum"),
                ],
                right=[
                    self._settler(m.CYCLE_DURATION, "SampleCount", label="cycles"),
                    self._settler(m.DIGESTS_UNVERIFIED),
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Settler invocation (ms, AWS/Lambda Duration) against its timeout; errors",
                left=[
                    settler_function.metric_duration(
                        statistic="Maximum", period=PERIOD, label="settler duration max"
                    )
                ],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=settler_timeout_seconds * 1000, label="settler timeout"
                    )
                ],
                right=[
                    settler_function.metric_errors(period=PERIOD, label="settler errors"),
                    settler_function.metric_throttles(period=PERIOD, label="settler throttles"),
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Ingest errors and throttles",
                left=[
                    ingest_function.metric_errors(period=PERIOD, label="ingest errors"),
                    ingest_function.metric_throttles(period=PERIOD, label="ingest throttles"),
                ],
                width=6,
            ),
        )
        storage_mib = round(domain_volume_gb * 1024 * FREE_STORAGE_SHARE)
        self.dashboard.add_widgets(
            cw.GraphWidget(
                title="Failed ranges queue: depth and oldest (s); run qldb-settle redrive",
                left=[dlq_depth(PERIOD)],
                right=[
                    failure_queue.metric_approximate_age_of_oldest_message(
                        statistic="Maximum", period=PERIOD
                    )
                ],
                right_annotations=[
                    cw.HorizontalAnnotation(
                        value=failed_range_age_seconds, label="failed-range age alarm"
                    )
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Buffer domain: cluster status, writes blocked, snapshot failures",
                left=[
                    domain("ClusterStatus.red", "Maximum"),
                    domain("ClusterStatus.yellow", "Maximum"),
                    domain("ClusterIndexWritesBlocked", "Maximum"),
                    domain("AutomatedSnapshotFailure", "Maximum"),
                ],
                width=8,
            ),
            cw.GraphWidget(
                title="Buffer domain: free storage (MiB, smallest node); JVM memory, CPU (%)",
                left=[domain("FreeStorageSpace", "Minimum")],
                left_annotations=[
                    cw.HorizontalAnnotation(value=storage_mib, label="free storage alarm")
                ],
                right=[
                    domain("JVMMemoryPressure", "Maximum"),
                    domain("CPUUtilization", "Maximum"),
                ],
                width=8,
            ),
        )

        # Alarms: each on a condition that needs an operator. ``ok``: also notify when it
        # clears (conditions that last); event counts clear by themselves a period later while
        # what they counted still waits for an operator, so they notify once.
        self.alarms: list[cw.Alarm] = []
        self._ok: set[str] = set()

        def alarm(
            name: str,
            metric: cw.IMetric,
            threshold: float,
            description: str,
            *,
            comparison: cw.ComparisonOperator = GTE,
            evaluation_periods: int = 1,
            datapoints: int = 1,
            missing: cw.TreatMissingData = NOT_BREACHING,
            ok: bool = False,
        ) -> None:
            self.alarms.append(
                cw.Alarm(
                    self,
                    name,
                    alarm_name=f"{alarm_prefix}-{name}",
                    alarm_description=description,
                    metric=metric,
                    threshold=threshold,
                    comparison_operator=comparison,
                    evaluation_periods=evaluation_periods,
                    datapoints_to_alarm=datapoints,
                    treat_missing_data=missing,
                )
            )
            if ok:
                self._ok.add(name)

        # The settler.
        alarm(
            m.HALTED,
            self._settler(m.HALTED, "Maximum", period=settler_period),
            1,
            "The settler halted at a block that failed verification or replay, or at a gap "
            "while the ingest was impaired (GapsHeld): the settler's log line 'settler halted' "
            "gives the reason; `qldb-settle status`, `qldb-settle blocks --state quarantined`.",
            missing=MISSING,
            ok=True,
        )
        alarm(
            "SettlerHeartbeat",
            self._settler(m.CYCLE_DURATION, "SampleCount", period=settler_period),
            1,
            f"No settle cycle finished in {HEARTBEAT_PERIODS} periods in a row: the settler "
            "throws (see SettlerErrors), times out, is throttled, is not invoked (schedule "
            "rule disabled) or stands aside for another settler (LeaseHeld).",
            comparison=LT,
            evaluation_periods=HEARTBEAT_PERIODS,
            datapoints=HEARTBEAT_PERIODS,
            missing=BREACHING,
            ok=True,
        )
        alarm(
            "SettlerErrors",
            settler_function.metric_errors(period=ALARM_PERIOD),
            1,
            "A settler invocation failed (an exception, e.g. the window parameter unreadable "
            "with no earlier value, or the timeout): its log has the error.",
        )
        alarm(
            "SettlerThrottles",
            settler_function.metric_throttles(period=ALARM_PERIOD),
            1,
            "A settler tick was throttled (reserved concurrency 1: the previous cycle still "
            "ran, or the account is out of concurrency).",
        )
        alarm(
            m.QUARANTINED_BLOCKS,
            self._settler(m.QUARANTINED_BLOCKS, period=settler_period),
            1,
            "A block was quarantined (conflict, redacted revision, verification): "
            "`qldb-settle blocks --state quarantined`.",
        )
        alarm(
            m.LATE_BLOCKS,
            self._settler(m.LATE_BLOCKS, period=settler_period),
            1,
            "A block arrived after a later one was replayed or inside a passed gap: "
            "`qldb-settle blocks --state late`; consider a longer window.",
        )
        alarm(
            m.GAPS_PASSED,
            self._settler(m.GAPS_PASSED, period=settler_period),
            1,
            "The settler passed a gap in sequence numbers by the window rule (a read-only block, "
            "or a lost one): `qldb-settle status`; a block of the gap that arrives later is late.",
        )
        alarm(
            m.REPLAY_LAG,
            self._settler(m.REPLAY_LAG, "Maximum", period=settler_period),
            lag_ms,
            f"Replay lag above {lag_alarm_seconds}s (the window plus a margin): blocks "
            "wait for missing revisions or the settler is behind.",
            comparison=GT,
            evaluation_periods=3,
            datapoints=2,
            ok=True,
        )
        alarm(
            m.OLDEST_PENDING_AGE,
            self._settler(m.OLDEST_PENDING_AGE, "Maximum", period=settler_period),
            lag_ms,
            f"The oldest pending block is older than {lag_alarm_seconds}s (the window plus a "
            "margin) and not replayed: it waits for missing revisions or a block before it, or "
            "the settler is halted or behind.",
            comparison=GT,
            evaluation_periods=3,
            datapoints=2,
            ok=True,
        )
        # The ingest.
        alarm(
            "IngestErrors",
            ingest_function.metric_errors(period=ALARM_PERIOD),
            1,
            "An ingest batch failed as a whole (buffer unavailable, timeout): the mapping "
            "retries it, then sends its range to the on-failure queue (FailedRanges).",
        )
        alarm(
            m.RECORDS_RETRIED,
            self._ingest(m.RECORDS_RETRIED, period=ALARM_PERIOD),
            1,
            "The ingest keeps handing Kinesis records back for retry (batchItemFailures, which "
            "Lambda does not count as Errors) for 15 minutes: the buffer refuses writes or is "
            "too slow for the invocation's deadline. The ingest log names the cause; the "
            "domain's alarms and IteratorAge tell how far behind it is.",
            evaluation_periods=3,
            datapoints=3,
            ok=True,
        )
        alarm(
            "IngestThrottles",
            ingest_function.metric_throttles(period=ALARM_PERIOD),
            1,
            "Ingest invocations were throttled (account or function concurrency): the stream "
            "waits (IteratorAge grows).",
        )
        alarm(
            m.REJECTED_RECORDS,
            self._ingest(m.REJECTED_RECORDS, period=ALARM_PERIOD),
            1,
            "The ingest rejected input it could not decode or verify (kept in the buffer): "
            "`qldb-settle rejected`; while unresolved, the settler passes no gap.",
        )
        alarm(
            m.CONFLICTS,
            self._ingest(m.CONFLICTS, period=ALARM_PERIOD),
            1,
            "A record arrived again with different content (the first copy stays, its block "
            "will be quarantined): `qldb-settle rejected`.",
        )
        alarm(
            "IteratorAge",
            iterator_age(ALARM_PERIOD),
            iterator_age_alarm_seconds * 1000,
            f"The ingest function is more than {iterator_age_alarm_seconds}s behind the stream.",
            comparison=GT,
            evaluation_periods=3,
            datapoints=2,
            ok=True,
        )
        alarm(
            "FailedRanges",
            dlq_depth(ALARM_PERIOD),
            1,
            "Stream ranges failed ingest and wait in the on-failure queue: run "
            "`qldb-settle redrive --queue URL` before the stream's retention drops them.",
            ok=True,
        )
        alarm(
            "FailedRangesAge",
            failure_queue.metric_approximate_age_of_oldest_message(
                statistic="Maximum", period=ALARM_PERIOD
            ),
            failed_range_age_seconds,
            f"A failed range has waited {failed_range_age_seconds}s in the on-failure queue: "
            "the stream trims its records soon. Run `qldb-settle redrive --queue URL` now.",
            ok=True,
        )
        # The buffer domain: AWS's recommended alarms for OpenSearch Service (the master
        # alarms with dedicated masters only).
        alarm(
            "BufferClusterRed",
            domain("ClusterStatus.red", "Maximum"),
            1,
            "A primary shard of the buffer domain and its replicas are unassigned: ingest and "
            "the settler fail on its indices.",
            missing=MISSING,
            ok=True,
        )
        if domain_data_nodes > 1:  # one data node can hold no replica: yellow for good
            alarm(
                "BufferClusterYellow",
                domain("ClusterStatus.yellow", "Maximum"),
                1,
                "A replica shard of the buffer domain is unassigned (a node lost): one more "
                "loss and a shard is red.",
                evaluation_periods=5,
                datapoints=5,
                missing=MISSING,
                ok=True,
            )
        alarm(
            "BufferWritesBlocked",
            domain("ClusterIndexWritesBlocked", "Maximum", ALARM_PERIOD),
            1,
            "The buffer domain blocks writes (storage or memory pressure): ingest fails.",
            missing=MISSING,
            ok=True,
        )
        alarm(
            "BufferFreeStorage",
            domain("FreeStorageSpace", "Minimum"),
            storage_mib,
            f"A data node of the buffer domain has less than {FREE_STORAGE_SHARE:.0%} of its "
            f"{domain_volume_gb} GiB free: writes get blocked next.",
            comparison=LTE,
            missing=MISSING,
            ok=True,
        )
        alarm(
            "BufferJVMMemoryPressure",
            domain("JVMMemoryPressure", "Maximum"),
            95,
            "The buffer domain's JVM memory pressure is at 95% or more: out-of-memory errors "
            "and blocked writes follow.",
            evaluation_periods=3,
            datapoints=3,
            missing=MISSING,
            ok=True,
        )
        alarm(
            "BufferCPU",
            domain("CPUUtilization", "Maximum", Duration.minutes(15)),
            80,
            "The buffer domain's data nodes have been at 80% CPU or more for 45 minutes: ingest "
            "and the settler slow down (IteratorAge, lag).",
            evaluation_periods=3,
            datapoints=3,
            missing=MISSING,
            ok=True,
        )
        if domain_master_nodes:
            alarm(
                "BufferMasterCPU",
                domain("MasterCPUUtilization", "Maximum", Duration.minutes(15)),
                50,
                "The buffer domain's dedicated masters have been at 50% CPU or more for 45 "
                "minutes: cluster changes stall.",
                evaluation_periods=3,
                datapoints=3,
                missing=MISSING,
                ok=True,
            )
            alarm(
                "BufferMasterJVMMemoryPressure",
                domain("MasterJVMMemoryPressure", "Maximum"),
                95,
                "The buffer domain's dedicated masters are at 95% JVM memory pressure or more: "
                "the master may fail.",
                evaluation_periods=3,
                datapoints=3,
                missing=MISSING,
                ok=True,
            )
        alarm(
            "BufferSnapshotFailure",
            domain("AutomatedSnapshotFailure", "Maximum"),
            1,
            "An automated snapshot of the buffer domain failed (often a red cluster).",
            missing=MISSING,
        )

        self.alarm_key: kms.Key | None = None
        if alarm_topic_arn:
            self.topic: sns.ITopic = sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
        else:
            self.topic = self._create_topic(alarm_prefix)
        action = cw_actions.SnsAction(self.topic)
        for a in self.alarms:
            a.add_alarm_action(action)
            if a.node.id in self._ok:
                a.add_ok_action(action)

    def _create_topic(self, alarm_prefix: str) -> sns.Topic:
        """``<prefix>-alarms``, encrypted with a customer key (rotation on) whose policy lets
        CloudWatch use it for the alarms of this account named ``<prefix>-*`` only (CloudWatch
        must encrypt what it publishes to an encrypted topic)."""
        alarms_arn = (
            f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:{alarm_prefix}-*"
        )
        conditions = {
            "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
            "ArnLike": {"aws:SourceArn": alarms_arn},
        }
        cloudwatch = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        self.alarm_key = kms.Key(
            self,
            "AlarmTopicKey",
            description=f"{alarm_prefix}: the alarm topic",
            enable_key_rotation=True,
        )
        self.alarm_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsEncryptNotifications",
                principals=[cloudwatch],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions=conditions,
            )
        )
        topic = sns.Topic(
            self,
            "AlarmTopic",
            topic_name=f"{alarm_prefix}-alarms",
            display_name=f"{alarm_prefix} alarms",
            master_key=self.alarm_key,
            enforce_ssl=True,
        )
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[cloudwatch],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions=conditions,
            )
        )
        return topic

    def _metric(
        self,
        service: str,
        name: str,
        statistic: str,
        *,
        period: Duration = PERIOD,
        record_type: str | None = None,
        label: str | None = None,
    ) -> cw.Metric:
        dimensions = {m.SERVICE_DIMENSION: service}
        if record_type is not None:
            dimensions[m.RECORD_TYPE_DIMENSION] = record_type
        return cw.Metric(
            namespace=m.NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=statistic,
            period=period,
            label=label,
        )

    def _settler(
        self,
        name: str,
        statistic: str = "Sum",
        *,
        period: Duration = PERIOD,
        label: str | None = None,
    ) -> cw.Metric:
        return self._metric(self._settler_service, name, statistic, period=period, label=label)

    def _ingest(
        self,
        name: str,
        statistic: str = "Sum",
        *,
        period: Duration = PERIOD,
        record_type: str | None = None,
        label: str | None = None,
    ) -> cw.Metric:
        return self._metric(
            self._ingest_service,
            name,
            statistic,
            period=period,
            record_type=record_type,
            label=label,
        )

    def _distribution(self, service: str, name: str) -> list[cw.IMetric]:
        return [
            self._metric(service, name, stat, label=f"{name} {stat}")
            for stat in ("p50", "p99", "Maximum")
        ]
