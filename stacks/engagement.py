"""Engagement: Read_after_incident on the table stream, the two engagement queues,
write_engagement_to_S3 and Trigger_Connect."""

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from feedback_loop.contract import LastChange
from stacks.config import FeedbackLoopConfig
from stacks.contact_centre import ContactCentre
from stacks.data_lake import DataLake
from stacks.functions import FunctionFactory
from stacks.queues import (
    LAKE_QUEUE_BATCH,
    LAKE_WRITER_TIMEOUT,
    LAKE_WRITER_WINDOW,
    dead_letter_queue,
    queue_with_dlq,
    subscribe,
)
from stacks.subscriber_state import SubscriberState

READ_TIMEOUT = Duration.seconds(30)
TRIGGER_TIMEOUT = Duration.seconds(30)
# An engagement's message stays on the queue for its whole episode: Trigger_Connect hides
# it (ChangeMessageVisibility) while it gathers, waits for calling hours, the pacing
# budget or an answer, and after each throttle's back-off. Every receive counts: enough
# for an episode with two calls and a text through a saturated budget, while a message
# that keeps failing still reaches the DLQ.
TRIGGER_MAX_RECEIVE_COUNT = 50
# The longest episode (max_incident_age_hours 168 + an SMS reply wait of 72 h) fits the
# queue's retention with days to spare; SQS's maximum.
TRIGGER_RETENTION = Duration.days(14)


class Engagement(Construct):
    """Decide on each incident, record every decision, call each subscriber in order."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
        contact: ContactCentre,
    ) -> None:
        super().__init__(scope, construct_id)
        key = lake.key
        updates = queue_with_dlq(
            self,
            "EngagementUpdate",
            name="engagement_update_queue",
            key=key,
            consumer_timeout=LAKE_WRITER_TIMEOUT,
            consumer_window=LAKE_WRITER_WINDOW,
        )
        triggers = queue_with_dlq(
            self,
            "EngagementTrigger",
            name="engagement_trigger_queue.fifo",
            key=key,
            consumer_timeout=TRIGGER_TIMEOUT,
            fifo=True,
            max_receive_count=TRIGGER_MAX_RECEIVE_COUNT,
            retention=TRIGGER_RETENTION,
        )
        self._updates, self._triggers = updates, triggers
        self.update_queue, self.update_dlq = updates.queue, updates.dlq
        self.trigger_queue, self.trigger_dlq = triggers.queue, triggers.dlq
        self.failures_dlq = dead_letter_queue(
            self, "ReadFailures", name="read_after_incident_failures_dlq", key=key
        )
        self.read_after_incident = self._build_read_after_incident(config, factory, lake, state)
        self.write_engagement = self._build_write_engagement(factory, lake)
        self.trigger_connect = self._build_trigger_connect(config, factory, lake, state, contact)

    def _build_read_after_incident(
        self,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
    ) -> lambda_.Function:
        function = factory.create(
            self,
            name="Read_after_incident",
            folder="read_after_incident",
            timeout=READ_TIMEOUT,
            invoked_by="the Subscriber_table stream event source mapping",
            environment={
                "SUBSCRIBER_TABLE": state.subscribers.table_name,
                "CONTACT_STATE_TABLE": state.contact_state.table_name,
                "ENGAGEMENT_UPDATE_QUEUE_URL": self.update_queue.queue_url,
                "ENGAGEMENT_TRIGGER_QUEUE_URL": self.trigger_queue.queue_url,
            },
        )
        # Only records whose latest change is an incident wake it (docs/ARCHITECTURE.md).
        state.consume_changes(function, LastChange.INCIDENT, on_failure=self.failures_dlq)
        state.grant_items(function, state.subscribers, "dynamodb:UpdateItem")
        # The rating budget in measure mode reads the cells' tallies; otherwise nothing is read.
        reads = ("dynamodb:GetItem",) if config.policy.rating_budget.suppresses else ()
        state.grant_items(function, state.contact_state, *reads, "dynamodb:UpdateItem")
        # sqs:SendMessage also authorises SendMessageBatch (there is no separate IAM action).
        for queue in (self.update_queue, self.trigger_queue):
            queue.grant(function, "sqs:SendMessage")
        lake.key.grant(function, "kms:GenerateDataKey", "kms:Decrypt")
        return function

    def _build_write_engagement(self, factory: FunctionFactory, lake: DataLake) -> lambda_.Function:
        function = factory.create(
            self,
            name="write_engagement_to_S3",
            folder="write_engagement_to_s3",
            timeout=LAKE_WRITER_TIMEOUT,
            invoked_by="the engagement_update_queue event source mapping",
            environment={
                "LAKE_BUCKET": lake.bucket.bucket_name,
                "PSEUDONYM_SECRET_ARN": lake.pseudonym_secret.secret_arn,
            },
        )
        subscribe(
            function,
            self._updates,
            batch_size=LAKE_QUEUE_BATCH,
            max_batching_window=LAKE_WRITER_WINDOW,
        )
        lake.grant_write(function, "engagement", "outages", "decision_counts")
        lake.grant_pseudonym_read(function)
        return function

    def _build_trigger_connect(
        self,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
        contact: ContactCentre,
    ) -> lambda_.Function:
        function = factory.create(
            self,
            name="Trigger_Connect",
            folder="trigger_connect",
            timeout=TRIGGER_TIMEOUT,
            invoked_by="the engagement_trigger_queue.fifo event source mapping",
            environment={
                "CONNECT_INSTANCE_ID": contact.instance_id,
                "CONTACT_FLOW_ID": contact.flow_id,
                "SOURCE_PHONE_NUMBER": contact.source_phone_number,
                "IDEMPOTENCY_TABLE": state.idempotency.table_name,
                "SUBSCRIBER_TABLE": state.subscribers.table_name,
                "CONTACT_STATE_TABLE": state.contact_state.table_name,
                "ENGAGEMENT_TRIGGER_QUEUE_URL": self.trigger_queue.queue_url,
                "ENGAGEMENT_UPDATE_QUEUE_URL": self.update_queue.queue_url,
                **contact.sms_environment,
            },
        )
        # The event source's MaximumConcurrency bounds how many invocations dial at once,
        # without reserving account concurrency (a reservation fails to deploy on accounts
        # whose unreserved concurrency would drop below 100, new accounts among them).
        subscribe(
            function, self._triggers, batch_size=10, max_concurrency=config.max_concurrent_calls
        )
        # Every step of an episode is recorded in the lake.
        self.update_queue.grant(function, "sqs:SendMessage")
        # The contact policy, again, before each contact.
        state.grant_items(function, state.subscribers, "dynamodb:GetItem", "dynamodb:UpdateItem")
        state.grant_items(function, state.contact_state, "dynamodb:GetItem", "dynamodb:UpdateItem")
        contact.grant_send_text(function)
        state.grant_items(
            function,
            state.idempotency,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        )
        contact.grant_start_outbound_call(function)
        return function
