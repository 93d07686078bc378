"""Monitoring: an encrypted alarm topic, the alarms an operator must act on (each with its
runbook entry in docs/OPERATIONS.md), and the loop's CloudWatch dashboard.

Every dashboard widget reads a metric that exists: the handlers' own metrics (Powertools EMF,
namespace ``SubscriberFeedbackLoop``, dimension ``service`` = the function name; the names are
checked against the handler code by tests/infra/test_monitoring.py) or AWS's service metrics.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from feedback_loop.contract import METRICS_NAMESPACE, PROBE_STREAM
from stacks.nag import acknowledge

# Records older than this on the probe stream mean ingestion is falling behind.
ITERATOR_AGE_ALARM = Duration.minutes(5)
# Engagements held on the FIFO trigger queue (deferred, paced, awaiting answers) are
# in-flight messages: SQS serves a FIFO queue's first 120,000 of them only.
HELD_ENGAGEMENTS_ALARM = 100_000
DASHBOARD_NAME = "SubscriberFeedbackLoop"
ALARM_PREFIX = "FeedbackLoop"
RUNBOOK = "docs/OPERATIONS.md"
PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class HandlerMetric:
    """A metric a handler emits: its service (function name), name and the graph's label."""

    service: str
    name: str
    label: str


@dataclass(frozen=True)
class HandlerSearch:
    """Every dimension value of a handler metric (e.g. each rejection reason), via SEARCH; each
    series is labelled by its dimension values."""

    service: str
    name: str
    dimensions: tuple[str, ...]


INGEST, WRITE_INCIDENT = "Ingest_probe_events", "write_incident_to_S3"
READ, WRITE_ENGAGEMENT = "Read_after_incident", "write_engagement_to_S3"
TRIGGER, FEEDBACK = "Trigger_Connect", "Collect_feedback_from_Connect"
WRITE_FEEDBACK = "write_feedback_to_S3"
# Functions fed by a stream (Kinesis, DynamoDB): their IteratorAge is the lag.
STREAM_CONSUMERS = (INGEST, READ, WRITE_FEEDBACK)

# The loop's own metrics, graph by graph (title -> what it plots).
LOOP_GRAPHS: dict[str, tuple[HandlerMetric | HandlerSearch, ...]] = {
    "Probe records and incidents": (
        HandlerMetric(INGEST, "ProbeRecords", "probe records"),
        HandlerMetric(INGEST, "Incidents", "incidents recorded"),
        HandlerMetric(WRITE_INCIDENT, "IncidentsWritten", "incidents written to the lake"),
        HandlerMetric(WRITE_ENGAGEMENT, "EngagementsWritten", "decisions written to the lake"),
        HandlerMetric(WRITE_FEEDBACK, "FeedbackWritten", "answers written to the lake"),
    ),
    "Rejections by reason": (
        HandlerSearch(INGEST, "RejectedRecords", ("reason",)),
        HandlerMetric(READ, "MalformedStreamRecords", "malformed stream records"),
        HandlerMetric(WRITE_INCIDENT, "RejectedMessages", "incident messages rejected"),
        HandlerMetric(WRITE_ENGAGEMENT, "RejectedMessages", "engagement messages rejected"),
        HandlerMetric(WRITE_FEEDBACK, "RejectedMessages", "answers not writable (dropped)"),
        HandlerMetric(FEEDBACK, "FeedbackRejected", "feedback requests rejected"),
    ),
    "Decisions by reason": (HandlerSearch(READ, "Decisions", ("decision", "reason")),),
    "Contact steps by reason (deferred, contacted, closed, suppressed at dial time)": (
        HandlerSearch(TRIGGER, "ContactSteps", ("decision", "reason")),
    ),
    "Cell outages declared": (HandlerMetric(READ, "CellOutages", "outages (one per cell window)"),),
    "Calls started, throttled, failed; texts sent": (
        HandlerMetric(TRIGGER, "CallsStarted", "started"),
        HandlerMetric(TRIGGER, "CallsThrottled", "throttled by Connect (retried)"),
        HandlerMetric(TRIGGER, "CallsFailed", "failed"),
        HandlerMetric(TRIGGER, "TextsSent", "texts sent"),
    ),
    "Feedback by outcome": (
        HandlerMetric(FEEDBACK, "FeedbackRated", "rated"),
        HandlerMetric(FEEDBACK, "FeedbackOptedOut", "opted out"),
        HandlerMetric(FEEDBACK, "FeedbackNoResponse", "no response"),
        HandlerMetric(FEEDBACK, "FeedbackInvalid", "invalid input"),
        HandlerMetric(FEEDBACK, "FeedbackReplayed", "replayed contact (not counted twice)"),
    ),
}


def runbook_anchor(alarm_name: str) -> str:
    """The GitHub anchor of the runbook heading ``### <alarm name>``."""
    return "".join(c for c in alarm_name.lower() if c.isalnum() or c in "-_ ").replace(" ", "-")


class Monitoring(Construct):
    """Alarms on every DLQ, on function errors and throttles, and on the stream's iterator age;
    the dashboard of the whole loop."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        alarm_email: str | None,
        dead_letter_queues: Sequence[sqs.IQueue],
        functions: Sequence[lambda_.IFunction],
        stream: kinesis.IStream,
        trigger_queue: sqs.IQueue,
        other_alarms: Sequence[cloudwatch.Alarm] = (),
    ) -> None:
        """``other_alarms``: built by other constructs (the probe archive's); they notify the
        topic and show on the dashboard like these."""
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Alarms",
            display_name="Subscriber Feedback Loop alarms",
            master_key=key,
            enforce_ssl=True,
        )
        if alarm_email:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            acknowledge(
                subscription,
                "Serverless-SNSRedrivePolicy",
                "An alarm e-mail that cannot be delivered is not lost: the alarm stays in ALARM in "
                "CloudWatch and SNS reports NumberOfNotificationsFailed; a DLQ would add a queue "
                "nobody reads.",
            )
        self._action = actions.SnsAction(self.topic)
        self.alarms: list[cloudwatch.Alarm] = []
        self._dlq_depths = {_queue_name(queue): _depth(queue) for queue in dead_letter_queues}
        for name, depth in self._dlq_depths.items():
            self._alarm(
                f"DLQ-{name}",
                depth,
                threshold=0,
                description=f"{name}: messages waiting in a dead-letter queue.",
            )
        self._functions = {function.node.id: function for function in functions}
        for name, function in self._functions.items():
            self._alarm(
                f"Errors-{name}",
                function.metric_errors(period=PERIOD),
                threshold=0,
                description=f"{name} reported invocation errors.",
            )
            self._alarm(
                f"Throttles-{name}",
                function.metric_throttles(period=PERIOD),
                threshold=0,
                description=f"{name} was throttled.",
            )
        self._iterator_age = stream.metric_get_records_iterator_age_milliseconds(
            period=Duration.minutes(1), statistic="Maximum"
        )
        self._alarm(
            f"IteratorAge-{PROBE_STREAM}",
            self._iterator_age,
            threshold=ITERATOR_AGE_ALARM.to_milliseconds(),
            description="Ingest_probe_events is falling behind the probe_events stream.",
        )
        self._alarm(
            "UnorderedAggregateRecords",
            _handler_metric(HandlerMetric(INGEST, "UnorderedAggregateRecords", "records")),
            threshold=0,
            description="KPL aggregates carry probe records under another partition key while "
            "Lambda processes several batches per shard: sessions may be missing from the "
            "failure rates.",
        )
        self._alarm(
            "CellOutage",
            _handler_metric(HandlerMetric(READ, "CellOutages", "outages")),
            threshold=0,
            description="Many subscribers of one cell crossed a threshold within one window.",
        )
        self._alarm(
            "HeldEngagements",
            trigger_queue.metric_approximate_number_of_messages_not_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=HELD_ENGAGEMENTS_ALARM,
            description="engagement_trigger_queue.fifo holds close to SQS's 120,000 in-flight "
            "FIFO messages.",
        )
        for alarm in other_alarms:
            alarm.add_alarm_action(self._action)
            self.alarms.append(alarm)
        self.dashboard = self._build_dashboard()

    def _alarm(
        self, name: str, metric: cloudwatch.Metric, *, threshold: float, description: str
    ) -> None:
        alarm_name = f"{ALARM_PREFIX}-{name}"
        alarm = metric.create_alarm(
            self,
            name.replace("-", "").replace(".", ""),
            alarm_name=alarm_name,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description} Runbook: {RUNBOOK}#{runbook_anchor(alarm_name)}",
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)

    def _build_dashboard(self) -> cloudwatch.Dashboard:
        loop = [
            _graph(title, [_metric(item) for item in items]) for title, items in LOOP_GRAPHS.items()
        ]
        dlqs = _graph(
            "Dead-letter queue depths",
            [depth.with_(label=name) for name, depth in self._dlq_depths.items()],
        )
        lag = _graph(
            "Stream lag (iterator age, ms)",
            [
                self._iterator_age.with_(label=f"{PROBE_STREAM} (Kinesis)"),
                *(
                    function.metric("IteratorAge", statistic="Maximum", period=PERIOD, label=name)
                    for name, function in self._functions.items()
                    if name in STREAM_CONSUMERS
                ),
            ],
        )
        errors = _graph(
            "Function errors and throttles",
            [
                metric
                for name, function in self._functions.items()
                for metric in (
                    function.metric_errors(period=PERIOD, label=f"{name} errors"),
                    function.metric_throttles(period=PERIOD, label=f"{name} throttles"),
                )
            ],
        )
        widgets = [*loop, dlqs, lag, errors]
        rows = [widgets[i : i + 2] for i in range(0, len(widgets), 2)]
        alarms = cloudwatch.AlarmStatusWidget(
            title="Alarms (runbook: docs/OPERATIONS.md)", alarms=self.alarms, width=24
        )
        return cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=DASHBOARD_NAME,
            widgets=[[alarms], *rows],
        )


def _queue_name(queue: sqs.IQueue) -> str:
    """The fixed name the stacks gave the queue (``queue_name`` itself is a token)."""
    cfn = queue.node.default_child
    if not isinstance(cfn, sqs.CfnQueue) or not isinstance(cfn.queue_name, str):
        raise ValueError(f"{queue.node.path}: dead-letter queues need a fixed name")
    return cfn.queue_name


def _depth(queue: sqs.IQueue) -> cloudwatch.Metric:
    return queue.metric_approximate_number_of_messages_visible(
        period=Duration.minutes(1), statistic="Maximum"
    )


def _handler_metric(item: HandlerMetric) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=item.name,
        dimensions_map={"service": item.service},
        statistic="Sum",
        period=PERIOD,
        label=item.label,
    )


def _metric(item: HandlerMetric | HandlerSearch) -> cloudwatch.IMetric:
    if isinstance(item, HandlerMetric):
        return _handler_metric(item)
    schema = ",".join((METRICS_NAMESPACE, *item.dimensions, "service"))
    return cloudwatch.MathExpression(
        expression=(
            f'SEARCH(\'{{{schema}}} MetricName="{item.name}" service="{item.service}"\', '
            f"'Sum', {int(PERIOD.to_seconds())})"
        ),
        using_metrics={},
        # CloudWatch dynamic labels: one series per reason (decision), named after it.
        label=" ".join(f"${{PROP('Dim.{dimension}')}}" for dimension in item.dimensions),
        period=PERIOD,
    )


def _graph(title: str, metrics: Sequence[cloudwatch.IMetric]) -> cloudwatch.GraphWidget:
    return cloudwatch.GraphWidget(title=title, left=list(metrics), width=12, height=6)
