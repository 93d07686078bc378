"""Encrypted SQS queues with their dead-letter queues, sized for their consumer."""

from dataclasses import dataclass

import jsii
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.nag import acknowledge

MAX_RECEIVE_COUNT = 5
# AWS guidance for Lambda SQS triggers ("Creating and configuring an Amazon SQS event source
# mapping", Lambda developer guide): visibility timeout at least six times the function
# timeout. A consumer with a batching window also gets the window on top: a message can sit
# received in a gathering batch for that long before the function even starts.
VISIBILITY_FACTOR = 6
# The lake writers (write_incident_to_S3, write_engagement_to_S3, write_feedback_to_S3) gather
# large batches: one gzip object per batch and date, so a batch's records share one PUT and
# one Athena GET. Their sources are off the incident -> call path (that runs on the table's
# stream and the FIFO queue), so only the lake waits. Limits ("Lambda parameters for Amazon
# SQS event source mappings", "... for Amazon DynamoDB event source mappings"): BatchSize up
# to 10,000 (standard queue, stream), MaximumBatchingWindowInSeconds up to 300, and a batch
# goes to the function "up to the payload limit for synchronous invocation (6 MB)" (Lambda
# API reference, CreateEventSourceMapping). Sized from the records measured: an SQS event
# record of an incident or engagement message is ~1.1 KB (a ~450-byte body, the rest
# Lambda's envelope), so 3,000 of them stay within 6 MB with room for longer receipt
# handles. Larger messages are safe too: a decision_counts message (up to 100 counts, ~22
# KB) is far larger, and as Lambda stops filling a batch at 6 MB, a batch holding such
# messages is delivered with fewer of them, not refused. A Subscriber_table stream record
# carries both images (~3 KB at most today), so 1,000. docs/SCALE.md has the figures and
# why not Amazon Data Firehose.
LAKE_WRITER_TIMEOUT = Duration.seconds(60)
LAKE_WRITER_WINDOW = Duration.seconds(300)
LAKE_QUEUE_BATCH = 3_000
LAKE_STREAM_BATCH = 1_000
DLQ_RETENTION = Duration.days(14)


@dataclass(frozen=True)
class QueuePair:
    """A work queue and the DLQ its failed messages end in."""

    queue: sqs.Queue
    dlq: sqs.Queue
    max_receive_count: int


def _queue(scope: Construct, construct_id: str, name: str, key: kms.IKey, **props) -> sqs.Queue:
    return sqs.Queue(
        scope,
        construct_id,
        queue_name=name,
        encryption=sqs.QueueEncryption.KMS,
        encryption_master_key=key,
        data_key_reuse=Duration.minutes(15),
        enforce_ssl=True,
        **props,
    )


def queue_with_dlq(
    scope: Construct,
    construct_id: str,
    *,
    name: str,
    key: kms.IKey,
    consumer_timeout: Duration,
    consumer_window: Duration | None = None,
    fifo: bool = False,
    max_receive_count: int = MAX_RECEIVE_COUNT,
    retention: Duration | None = None,
) -> QueuePair:
    """``name`` plus ``<name>_dlq`` (FIFO: ``<stem>_dlq.fifo``), by default maxReceiveCount 5.

    The visibility timeout is ``VISIBILITY_FACTOR`` times the consumer's timeout plus its
    batching window (``consumer_window``).
    """
    stem = name.removesuffix(".fifo").removesuffix("_queue")
    dlq_name = f"{stem}_dlq.fifo" if fifo else f"{name}_dlq"
    fifo_props = {"fifo": True} if fifo else {}
    dlq = dead_letter_queue(scope, f"{construct_id}Dlq", name=dlq_name, key=key, **fifo_props)
    queue = _queue(
        scope,
        construct_id,
        name,
        key,
        visibility_timeout=Duration.seconds(
            consumer_timeout.to_seconds() * VISIBILITY_FACTOR
            + (consumer_window.to_seconds() if consumer_window else 0)
        ),
        dead_letter_queue=sqs.DeadLetterQueue(queue=dlq, max_receive_count=max_receive_count),
        content_based_deduplication=True if fifo else None,
        retention_period=retention,
        **fifo_props,
    )
    return QueuePair(queue=queue, dlq=dlq, max_receive_count=max_receive_count)


def dead_letter_queue(
    scope: Construct, construct_id: str, *, name: str, key: kms.IKey, fifo: bool | None = None
) -> sqs.Queue:
    """A DLQ: kept 14 days for inspection and redrive."""
    queue = _queue(scope, construct_id, name, key, retention_period=DLQ_RETENTION, fifo=fifo)
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue / failure destination; it has no DLQ.",
    )
    acknowledge(
        queue,
        "Serverless-SQSRedrivePolicy",
        "This queue is itself a dead-letter queue / failure destination; it has no DLQ.",
    )
    return queue


@jsii.implements(lambda_.IEventSourceDlq)
class FailureQueue:
    """On-failure destination of a stream event source mapping.

    Like ``SqsDlq`` but grants only ``sqs:SendMessage`` and the two KMS actions sending to an
    encrypted queue needs (``SqsDlq`` grants ``kms:ReEncrypt*`` and ``kms:GenerateDataKey*``).
    """

    def __init__(self, queue: sqs.IQueue, key: kms.IKey) -> None:
        self._queue = queue
        self._key = key

    def bind(
        self, _target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction
    ) -> lambda_.DlqDestinationConfig:
        """Grant the function's role what Lambda needs to send failed batch metadata."""
        grantee: iam.IGrantable = target_handler
        self._queue.grant(grantee, "sqs:SendMessage")
        self._key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
        return lambda_.DlqDestinationConfig(destination=self._queue.queue_arn)


@jsii.implements(lambda_.IDestination)
class QueueDestination:
    """On-failure destination of a function's asynchronous invocations.

    Like ``SqsDestination`` but grants only ``sqs:SendMessage`` and the two KMS actions
    sending to an encrypted queue needs (``SqsDestination`` grants wildcard KMS actions).
    """

    def __init__(self, queue: sqs.IQueue, key: kms.IKey) -> None:
        self._queue = queue
        self._key = key

    def bind(
        self,
        _scope: Construct,
        fn: lambda_.IFunction,
        *,
        type: lambda_.DestinationType | None = None,
    ) -> lambda_.DestinationConfig:
        """Grant the function's role what Lambda needs to send the failed event."""
        self._queue.grant(fn, "sqs:SendMessage")
        self._key.grant(fn, "kms:GenerateDataKey", "kms:Decrypt")
        return lambda_.DestinationConfig(destination=self._queue.queue_arn)


def subscribe(
    function: lambda_.IFunction,
    pair: QueuePair,
    *,
    batch_size: int,
    max_batching_window: Duration | None = None,
    max_concurrency: int | None = None,
) -> lambda_.EventSourceMapping:
    """``function`` consumes ``pair.queue`` and reports partial batch failures."""
    mapping = function.add_event_source_mapping(
        f"From{pair.queue.node.id}",
        event_source_arn=pair.queue.queue_arn,
        batch_size=batch_size,
        max_batching_window=max_batching_window,
        max_concurrency=max_concurrency,
        report_batch_item_failures=True,
    )
    pair.queue.grant_consume_messages(function)
    acknowledge(
        mapping,
        "Serverless-LambdaEventSourceMappingDestination",
        f"SQS event sources take no on-failure destination: a message that fails "
        f"{pair.max_receive_count} times moves to {pair.dlq.node.id} by the queue's redrive "
        "policy.",
    )
    return mapping
