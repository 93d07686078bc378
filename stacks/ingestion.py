"""Ingestion: the probe stream, Ingest_probe_events, incident_update_queue, write_incident_to_S3."""

from aws_cdk import Duration
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from constructs import Construct

from feedback_loop.contract import PROBE_STREAM
from stacks.config import FeedbackLoopConfig
from stacks.data_lake import DataLake
from stacks.dependency_layer import PROTOBUF_ENVIRONMENT
from stacks.functions import FunctionFactory
from stacks.nag import acknowledge
from stacks.queues import (
    LAKE_QUEUE_BATCH,
    LAKE_WRITER_TIMEOUT,
    LAKE_WRITER_WINDOW,
    FailureQueue,
    dead_letter_queue,
    queue_with_dlq,
    subscribe,
)
from stacks.subscriber_state import SubscriberState

# A batch of 500 KPL aggregates can hold 20-25k probe records (~200 s in the bench's model,
# docs/SCALE.md); ingest stops starting subscribers near the end and reports the rest failed.
INGEST_TIMEOUT = Duration.seconds(300)
# What ingest_probe_events/store.py calls: profiles are read in bulk then updated
# conditionally; counters are only ever updated (ReturnValues gives the window).
PROFILE_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:UpdateItem")
COUNTER_ACTIONS = ("dynamodb:UpdateItem",)


class Ingestion(Construct):
    """Probe records in; incidents on the subscriber table, on the queue and in the lake out."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
    ) -> None:
        super().__init__(scope, construct_id)
        self.stream = kinesis.Stream(
            self,
            "ProbeEvents",
            stream_name=PROBE_STREAM,
            stream_mode=kinesis.StreamMode.ON_DEMAND,
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=lake.key,
        )
        acknowledge(
            self.stream,
            "AwsSolutions-KDS3",
            "Encrypted with the stack's customer-managed key (rotation on) so one key policy "
            "governs every store holding subscriber data, instead of the AWS-managed key.",
        )
        incidents = queue_with_dlq(
            self,
            "IncidentUpdate",
            name="incident_update_queue",
            key=lake.key,
            consumer_timeout=LAKE_WRITER_TIMEOUT,
            consumer_window=LAKE_WRITER_WINDOW,
        )
        self._incidents = incidents
        self.incident_queue, self.incident_dlq = incidents.queue, incidents.dlq
        self.failures_dlq = dead_letter_queue(
            self, "IngestFailures", name="ingest_failures_dlq", key=lake.key
        )
        self.ingest = self._build_ingest(config, factory, lake, state)
        self.write_incident = self._build_write_incident(factory, lake)

    def _build_ingest(
        self,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
    ) -> lambda_.Function:
        function = factory.create(
            self,
            name="Ingest_probe_events",
            folder="ingest_probe_events",
            timeout=INGEST_TIMEOUT,
            memory_size=512,
            invoked_by="the probe_events Kinesis event source mapping",
            environment={
                "SUBSCRIBER_TABLE": state.subscribers.table_name,
                "COUNTERS_TABLE": state.counters.table_name,
                "INCIDENT_QUEUE_URL": self.incident_queue.queue_url,
                "LAKE_BUCKET": lake.bucket.bucket_name,
                "PSEUDONYM_SECRET_ARN": lake.pseudonym_secret.secret_arn,
                # Above 1, aggregates carrying other partition keys than their own are an
                # error and a metric (docs/PRODUCERS.md): Lambda keeps order per key only.
                "PARALLELIZATION_FACTOR": str(config.ingest_parallelization_factor),
                # aws-kinesis-agg parses KPL aggregates with protobuf (pure Python in the layer).
                **PROTOBUF_ENVIRONMENT,
            },
        )
        function.add_event_source(
            sources.KinesisEventSource(
                self.stream,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=500,
                max_batching_window=Duration.seconds(5),
                # Batches of one shard in flight at once. Lambda keeps the records of one
                # partition key (a subscriber, docs/PRODUCERS.md) in order across them
                # ("Using Lambda to process records from Amazon Kinesis Data Streams"),
                # which is the order the counters' replay guard relies on.
                parallelization_factor=config.ingest_parallelization_factor,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=3,
                on_failure=FailureQueue(self.failures_dlq, lake.key),
            )
        )
        state.grant_items(function, state.subscribers, *PROFILE_ACTIONS)
        state.grant_items(function, state.counters, *COUNTER_ACTIONS)
        # sqs:SendMessage also authorises SendMessageBatch (there is no separate IAM action).
        self.incident_queue.grant(function, "sqs:SendMessage")
        lake.key.grant(function, "kms:GenerateDataKey", "kms:Decrypt")
        lake.grant_write(function, "rejected")
        lake.grant_pseudonym_read(function)
        return function

    def _build_write_incident(self, factory: FunctionFactory, lake: DataLake) -> lambda_.Function:
        function = factory.create(
            self,
            name="write_incident_to_S3",
            folder="write_incident_to_s3",
            timeout=LAKE_WRITER_TIMEOUT,
            invoked_by="the incident_update_queue event source mapping",
            environment={
                "LAKE_BUCKET": lake.bucket.bucket_name,
                "PSEUDONYM_SECRET_ARN": lake.pseudonym_secret.secret_arn,
            },
        )
        subscribe(
            function,
            self._incidents,
            batch_size=LAKE_QUEUE_BATCH,
            max_batching_window=LAKE_WRITER_WINDOW,
        )
        lake.grant_write(function, "incidents")
        lake.grant_pseudonym_read(function)
        return function
