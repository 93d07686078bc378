"""Monitoring: an encrypted alarm topic and the alarms an operator must act on."""

from collections.abc import Sequence

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

from stacks.nag import acknowledge

# Records older than this on the probe stream mean ingestion is falling behind.
ITERATOR_AGE_ALARM = Duration.minutes(5)


class Monitoring(Construct):
    """Alarms on every DLQ, on function errors and throttles, and on the stream's iterator age."""

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
    ) -> None:
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
        for queue in dead_letter_queues:
            self._alarm(
                f"{queue.node.id}Visible",
                queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=0,
                description=f"{queue.node.path}: messages waiting in a dead-letter queue.",
            )
        for function in functions:
            name = function.node.id
            self._alarm(
                f"{name}Errors",
                function.metric_errors(period=Duration.minutes(5)),
                threshold=0,
                description=f"{name} reported invocation errors.",
            )
            self._alarm(
                f"{name}Throttles",
                function.metric_throttles(period=Duration.minutes(5)),
                threshold=0,
                description=f"{name} was throttled.",
            )
        self._alarm(
            "ProbeEventsIteratorAge",
            stream.metric_get_records_iterator_age_milliseconds(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=ITERATOR_AGE_ALARM.to_milliseconds(),
            description="Ingest_probe_events is falling behind the probe_events stream.",
        )

    def _alarm(
        self, construct_id: str, metric: cloudwatch.Metric, *, threshold: float, description: str
    ) -> None:
        alarm = metric.create_alarm(
            self,
            construct_id,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(self._action)
        self.alarms.append(alarm)
