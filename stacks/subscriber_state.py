"""Subscriber state: the subscriber table (with its stream), windowed counters, idempotency."""

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from feedback_loop.contract import (
    CONTACT_STATE_TABLE,
    COUNTERS_TABLE,
    IDEMPOTENCY_TABLE,
    LAST_CHANGE,
    SUBSCRIBER_TABLE,
    LastChange,
)
from stacks.config import CountersCapacity
from stacks.queues import FailureQueue

# What a caller of a table encrypted with a customer-managed key needs from KMS.
KMS_TABLE_ACTIONS = ("kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey")


class SubscriberState(Construct):
    """The DynamoDB tables of docs/ARCHITECTURE.md: PITR and KMS, on-demand unless
    ``counters_capacity`` puts the counters table on provisioned writes with auto scaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        key: kms.IKey,
        counters_capacity: CountersCapacity | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._key = key
        self.subscribers = self._build_table(
            "Subscribers",
            SUBSCRIBER_TABLE,
            partition_key="PhoneNumber",
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.counters = self._build_table(
            "Counters",
            COUNTERS_TABLE,
            partition_key="PhoneNumber",
            sort_key="Kpi",
            time_to_live_attribute="ExpiresAt",
            capacity=counters_capacity,
        )
        self.idempotency = self._build_table(
            "Idempotency",
            IDEMPOTENCY_TABLE,
            partition_key="id",
            time_to_live_attribute="expiration",
        )
        # The contact policy's shared counters: outages per cell, the pacing budget.
        self.contact_state = self._build_table(
            "ContactState",
            CONTACT_STATE_TABLE,
            partition_key="Key",
            sort_key="Window",
            time_to_live_attribute="ExpiresAt",
        )

    def consume_changes(
        self,
        function: lambda_.IFunction,
        change: LastChange,
        *,
        on_failure: sqs.IQueue,
        batch_size: int = 100,
        max_batching_window: Duration | None = None,
    ) -> None:
        """``function`` consumes the subscriber table's stream, filtered to ``change``.

        Lambda event filtering drops the other writers' changes before they cost an
        invocation (``LastChange`` says which writer it was); a failing record is retried,
        its batch bisected, and after the retries its range goes to ``on_failure``.
        """
        function.add_event_source(
            sources.DynamoEventSource(
                self.subscribers,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=batch_size,
                max_batching_window=max_batching_window,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=3,
                on_failure=FailureQueue(on_failure, self._key),
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                            "dynamodb": {
                                "NewImage": {
                                    LAST_CHANGE: {"S": lambda_.FilterRule.is_equal(change.value)}
                                }
                            },
                        }
                    )
                ],
            )
        )

    def grant_items(self, grantee: iam.IGrantable, table: dynamodb.Table, *actions: str) -> None:
        """Exactly ``actions`` on ``table`` (and its key); the L2 grants add more than we use."""
        table.grant(grantee, *actions)
        self._key.grant(grantee, *KMS_TABLE_ACTIONS)

    def _build_table(
        self,
        construct_id: str,
        table_name: str,
        *,
        partition_key: str,
        sort_key: str | None = None,
        stream: dynamodb.StreamViewType | None = None,
        time_to_live_attribute: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.DESTROY,
        capacity: CountersCapacity | None = None,
    ) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            construct_id,
            table_name=table_name,
            partition_key=dynamodb.Attribute(
                name=partition_key, type=dynamodb.AttributeType.STRING
            ),
            sort_key=(
                dynamodb.Attribute(name=sort_key, type=dynamodb.AttributeType.STRING)
                if sort_key
                else None
            ),
            billing_mode=(
                dynamodb.BillingMode.PROVISIONED
                if capacity
                else dynamodb.BillingMode.PAY_PER_REQUEST
            ),
            read_capacity=capacity.read_units if capacity else None,
            write_capacity=capacity.min_write_units if capacity else None,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self._key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            stream=stream,
            time_to_live_attribute=time_to_live_attribute,
            removal_policy=removal_policy,
        )
        if capacity:
            table.auto_scale_write_capacity(
                min_capacity=capacity.min_write_units, max_capacity=capacity.max_write_units
            ).scale_on_utilization(target_utilization_percent=capacity.target_utilization_percent)
        return table
