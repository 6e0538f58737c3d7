"""Watching the ordering: the "Ordering" CloudWatch dashboard and the alarms.

Every metric is read by the names and dimensions of ``handlers.metrics`` (the handlers' EMF
contract), plus the ingest function's iterator age, the functions' errors and the on-failure
queue's depth from their AWS namespaces.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from handlers import metrics as m

PERIOD = Duration.minutes(1)
ALARM_PERIOD = Duration.minutes(5)


class Monitoring(Construct):
    """The dashboard ``<serviceName>-Ordering`` and one alarm per condition an operator must
    act on: settler halted, a block quarantined, a late block, replay lag beyond the window plus
    a margin, ingest iterator age, failed ranges waiting in the on-failure queue."""

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
        lag_alarm_seconds: int,
        iterator_age_alarm_seconds: int,
        alarm_topic_arn: str = "",
    ) -> None:
        super().__init__(scope, construct_id)
        self._ingest_service = ingest_service
        self._settler_service = settler_service

        lag_ms = lag_alarm_seconds * 1000

        def iterator_age(period: Duration) -> cw.Metric:
            return cw.Metric(
                namespace="AWS/Lambda",
                metric_name="IteratorAge",
                dimensions_map={"FunctionName": ingest_function.function_name},
                statistic="Maximum",
                period=period,
            )

        def dlq_depth(period: Duration) -> cw.Metric:
            return failure_queue.metric_approximate_number_of_messages_visible(
                statistic="Maximum", period=period
            )

        self.dashboard = cw.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=(
                    "# Ordering\n"
                    "Blocks are replayed in commit order once settled: a block waits until it is "
                    "the settle window old (SSM parameter) unless the hash chain proves it next. "
                    "Lag above the window means blocks wait for missing records or the settler "
                    "is behind; **Halted** means an operator must `qldb-settle resolve` a block."
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
                title="Buffer depth (blocks) and oldest pending age (ms)",
                left=[self._settler(m.BUFFER_DEPTH, "Maximum")],
                right=[self._settler(m.OLDEST_PENDING_AGE, "Maximum")],
                right_annotations=[cw.HorizontalAnnotation(value=lag_ms, label="lag alarm")],
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
                title="Duplicates, conflicts, rejected records",
                left=[
                    self._ingest(m.DUPLICATES),
                    self._ingest(m.CONFLICTS),
                    self._ingest(m.REJECTED_RECORDS),
                ],
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
                title="Ingest iterator age (ms)",
                left=[iterator_age(PERIOD)],
                left_annotations=[
                    cw.HorizontalAnnotation(
                        value=iterator_age_alarm_seconds * 1000, label="iterator age alarm"
                    )
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
                title="Settler cycle (ms), digests unverified",
                left=[
                    self._settler(m.CYCLE_DURATION, "p50"),
                    self._settler(m.CYCLE_DURATION, "Maximum"),
                ],
                right=[self._settler(m.DIGESTS_UNVERIFIED)],
                width=6,
            ),
            cw.GraphWidget(
                title="Function errors and throttles",
                left=[
                    ingest_function.metric_errors(period=PERIOD, label="ingest errors"),
                    settler_function.metric_errors(period=PERIOD, label="settler errors"),
                ],
                right=[
                    ingest_function.metric_throttles(period=PERIOD, label="ingest throttles"),
                    settler_function.metric_throttles(period=PERIOD, label="settler throttles"),
                ],
                width=6,
            ),
            cw.GraphWidget(
                title="Failed ranges queue (DLQ depth): run qldb-settle redrive",
                left=[dlq_depth(PERIOD)],
                width=6,
            ),
        )

        # Alarms: each on a condition that needs an operator.
        def alarm(
            name: str,
            metric: cw.IMetric,
            threshold: float,
            description: str,
            *,
            comparison: cw.ComparisonOperator = (
                cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
            ),
            evaluation_periods: int = 1,
            datapoints: int = 1,
        ) -> cw.Alarm:
            return cw.Alarm(
                self,
                name,
                alarm_name=f"{alarm_prefix}-{name}",
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                evaluation_periods=evaluation_periods,
                datapoints_to_alarm=datapoints,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )

        self.alarms = [
            alarm(
                m.HALTED,
                self._settler(m.HALTED, "Maximum", period=ALARM_PERIOD),
                1,
                "The settler halted at a block that failed verification or replay: see "
                "`qldb-settle blocks --state quarantined` and resolve it.",
            ),
            alarm(
                m.QUARANTINED_BLOCKS,
                self._settler(m.QUARANTINED_BLOCKS, period=ALARM_PERIOD),
                1,
                "A block was quarantined (conflict, redacted revision, verification): "
                "`qldb-settle blocks --state quarantined`.",
            ),
            alarm(
                m.LATE_BLOCKS,
                self._settler(m.LATE_BLOCKS, period=ALARM_PERIOD),
                1,
                "A block arrived after a later one was replayed or inside a passed gap: "
                "`qldb-settle blocks --state late`; consider a longer window.",
            ),
            alarm(
                m.REPLAY_LAG,
                self._settler(m.REPLAY_LAG, "Maximum", period=ALARM_PERIOD),
                lag_ms,
                f"Replay lag above {lag_alarm_seconds}s (the window plus a margin): blocks "
                "wait for missing revisions or the settler is behind.",
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                datapoints=2,
            ),
            alarm(
                "IteratorAge",
                iterator_age(ALARM_PERIOD),
                iterator_age_alarm_seconds * 1000,
                f"The ingest function is more than {iterator_age_alarm_seconds}s behind the "
                "stream.",
                comparison=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=3,
                datapoints=2,
            ),
            alarm(
                "FailedRanges",
                dlq_depth(ALARM_PERIOD),
                1,
                "Stream ranges failed ingest and wait in the on-failure queue: run "
                "`qldb-settle redrive --queue URL` before the stream's retention drops them.",
            ),
        ]
        if alarm_topic_arn:
            topic = sns.Topic.from_topic_arn(self, "AlarmTopic", alarm_topic_arn)
            for a in self.alarms:
                a.add_alarm_action(cw_actions.SnsAction(topic))

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
        self, name: str, statistic: str = "Sum", *, period: Duration = PERIOD
    ) -> cw.Metric:
        return self._metric(self._settler_service, name, statistic, period=period)

    def _ingest(
        self,
        name: str,
        statistic: str = "Sum",
        *,
        record_type: str | None = None,
        label: str | None = None,
    ) -> cw.Metric:
        return self._metric(
            self._ingest_service, name, statistic, record_type=record_type, label=label
        )

    def _distribution(self, service: str, name: str) -> list[cw.IMetric]:
        return [
            self._metric(service, name, stat, label=f"{name} {stat}")
            for stat in ("p50", "p99", "Maximum")
        ]
