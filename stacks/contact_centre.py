"""Contact centre: the Amazon Connect instance (or an existing one), the Subscriber_engagement
flow, Collect_feedback_from_Connect and the glue between them (L1: Connect has no L2)."""

import json
from pathlib import Path
from typing import Any

from aws_cdk import Aws, Duration, Fn, Stack
from aws_cdk import aws_connect as connect
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from feedback_loop.contract import LastChange
from feedback_loop.errors import ConfigError
from stacks.config import REPO_ROOT, FeedbackLoopConfig
from stacks.data_lake import DataLake
from stacks.functions import FunctionFactory
from stacks.nag import acknowledge_grantee
from stacks.queues import (
    LAKE_STREAM_BATCH,
    LAKE_WRITER_TIMEOUT,
    LAKE_WRITER_WINDOW,
    QueueDestination,
    dead_letter_queue,
)
from stacks.subscriber_state import SubscriberState

FLOW_FILE = REPO_ROOT / "connect_flows" / "Subscriber_engagement.json"
FLOW_NAME = "Subscriber_engagement"
FUNCTION_PLACEHOLDER = "__FEEDBACK_FUNCTION_ARN__"
# The Amazon Polly voice of the flow's Set voice block (config ``tts_voice``).
VOICE_PLACEHOLDER = "__TTS_VOICE__"
# Amazon Connect waits at most 8 s for a Lambda invoked from a flow.
FEEDBACK_TIMEOUT = Duration.seconds(8)


def flow_content(flow_file: Path, function_arn: str, voice: str) -> Any:
    """The flow document with the feedback function's ARN and the text-to-speech voice in
    place of their placeholders."""
    text = flow_file.read_text(encoding="utf-8")
    for placeholder in (FUNCTION_PLACEHOLDER, VOICE_PLACEHOLDER):
        if placeholder not in text:
            raise ConfigError(f"{flow_file} does not reference {placeholder}")
    return _substitute(
        json.loads(text), {FUNCTION_PLACEHOLDER: function_arn, VOICE_PLACEHOLDER: voice}
    )


def _substitute(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, str):
        for placeholder, value in values.items():
            node = node.replace(placeholder, value)
        return node
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    return node


class ContactCentre(Construct):
    """Everything the outbound IVR needs; exposes the ids Trigger_Connect calls with."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
        flow_file: Path = FLOW_FILE,
    ) -> None:
        super().__init__(scope, construct_id)
        self.feedback = self._build_feedback_function(factory, lake, state)
        self.feedback_failures_dlq = dead_letter_queue(
            self, "FeedbackWriterFailures", name="write_feedback_failures_dlq", key=lake.key
        )
        self.feedback_writer = self._build_feedback_writer(config, factory, lake, state)
        self._sms_identity = config.sms_origination_identity if config.policy.sms.enabled else None
        self.sms_environment = (
            {"SMS_ORIGINATION_IDENTITY": self._sms_identity} if self._sms_identity else {}
        )
        self.sms_replies: sns.Topic | None = None
        self.sms_feedback: lambda_.Function | None = None
        self.sms_failures_dlq: sqs.Queue | None = None
        if self._sms_identity:
            self._build_sms_replies(factory, lake, state)
        self.instance_arn, self.instance_id = self._build_instance(config)
        self.contacts_arn = f"{self.instance_arn}/contact/*"
        association = connect.CfnIntegrationAssociation(
            self,
            "FeedbackIntegration",
            instance_id=self.instance_arn,
            integration_type="LAMBDA_FUNCTION",
            integration_arn=self.feedback.function_arn,
        )
        self.feedback.add_permission(
            "InvokedByConnect",
            principal=iam.ServicePrincipal("connect.amazonaws.com"),
            source_arn=self.instance_arn,
            source_account=Aws.ACCOUNT_ID,
        )
        self.flow = connect.CfnContactFlow(
            self,
            "SubscriberEngagementFlow",
            instance_arn=self.instance_arn,
            name=FLOW_NAME,
            type="CONTACT_FLOW",
            description="Explains the recent problem, asks for a 1-5 rating, records it.",
            content=Stack.of(self).to_json_string(
                flow_content(flow_file, self.feedback.function_arn, config.tts_voice)
            ),
        )
        # Connect rejects a flow that invokes a Lambda not yet associated with the instance.
        self.flow.node.add_dependency(association)
        self.flow_arn = self.flow.attr_contact_flow_arn
        # arn:...:instance/<instance id>/contact-flow/<flow id>
        self.flow_id = Fn.select(3, Fn.split("/", self.flow_arn))
        self.source_phone_number = self._source_phone_number(config)

    def _build_feedback_function(
        self, factory: FunctionFactory, lake: DataLake, state: SubscriberState
    ) -> lambda_.Function:
        function = factory.create(
            self,
            name="Collect_feedback_from_Connect",
            folder="collect_feedback_from_connect",
            timeout=FEEDBACK_TIMEOUT,
            invoked_by="the Subscriber_engagement contact flow (synchronous InvokeLambdaFunction)",
            environment={"SUBSCRIBER_TABLE": state.subscribers.table_name},
        )
        state.grant_items(function, state.subscribers, "dynamodb:GetItem", "dynamodb:UpdateItem")
        return function

    def _build_feedback_writer(
        self,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        state: SubscriberState,
    ) -> lambda_.Function:
        """``write_feedback_to_S3``: every recorded answer, from the table's stream to the lake
        (and, with the rating budget on, to its cell's tally)."""
        budget = config.policy.rating_budget.enabled
        tally = {"CONTACT_STATE_TABLE": state.contact_state.table_name} if budget else {}
        function = factory.create(
            self,
            name="write_feedback_to_S3",
            folder="write_feedback_to_s3",
            timeout=LAKE_WRITER_TIMEOUT,
            invoked_by="the Subscriber_table stream event source mapping",
            environment={
                "LAKE_BUCKET": lake.bucket.bucket_name,
                "PSEUDONYM_SECRET_ARN": lake.pseudonym_secret.secret_arn,
                **tally,
            },
        )
        if budget:
            # TransactWriteItems is authorised per action it holds: two UpdateItem here
            # (Amazon DynamoDB Developer Guide, "Using IAM with DynamoDB transactions").
            state.grant_items(function, state.contact_state, "dynamodb:UpdateItem")
        state.consume_changes(
            function,
            LastChange.FEEDBACK,
            on_failure=self.feedback_failures_dlq,
            batch_size=LAKE_STREAM_BATCH,
            max_batching_window=LAKE_WRITER_WINDOW,
        )
        lake.grant_write(function, "feedback", "sentiment")
        lake.grant_pseudonym_read(function)
        return function

    def _build_sms_replies(
        self, factory: FunctionFactory, lake: DataLake, state: SubscriberState
    ) -> None:
        """The second channel's way back: two-way SMS replies → ``Collect_feedback_from_SMS``.

        AWS End User Messaging SMS publishes each reply to this topic (enable two-way SMS on
        the origination number with the ``SmsRepliesTopicArn`` output); the function records
        the answer like the voice path does. A reply the function cannot take is retried by
        Lambda's asynchronous invocation, then kept in ``sms_replies_dlq``.
        """
        stack = Stack.of(self)
        topic = sns.Topic(
            self,
            "SmsReplies",
            display_name="Subscriber Feedback Loop SMS replies",
            master_key=lake.key,
            enforce_ssl=True,
        )
        # The service publishes with the key, so the key must let it (and only for this use).
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sms-voice.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        lake.key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("sms-voice.amazonaws.com")],
                actions=["kms:GenerateDataKey", "kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        dlq = dead_letter_queue(self, "SmsRepliesFailures", name="sms_replies_dlq", key=lake.key)
        function = factory.create(
            self,
            name="Collect_feedback_from_SMS",
            folder="collect_feedback_from_sms",
            timeout=FEEDBACK_TIMEOUT,
            invoked_by="the sms_replies SNS topic (asynchronous, with an on-failure queue)",
            environment={"SUBSCRIBER_TABLE": state.subscribers.table_name},
        )
        function.configure_async_invoke(
            retry_attempts=2, on_failure=QueueDestination(dlq, lake.key)
        )
        topic.add_subscription(subscriptions.LambdaSubscription(function, dead_letter_queue=dlq))
        state.grant_items(function, state.subscribers, "dynamodb:GetItem", "dynamodb:UpdateItem")
        self.sms_replies, self.sms_feedback, self.sms_failures_dlq = topic, function, dlq

    def grant_send_text(self, grantee: iam.IGrantable) -> None:
        """``sms-voice:SendTextMessage`` from the configured number or pool, when SMS is on."""
        if self._sms_identity:
            iam.Grant.add_to_principal(
                grantee=grantee,
                actions=["sms-voice:SendTextMessage"],
                resource_arns=[self._sms_identity],
            )

    def _build_instance(self, config: FeedbackLoopConfig) -> tuple[str, str]:
        if config.connect_instance_arn and config.connect_instance_id:
            self._instance_nag_name = config.connect_instance_arn
            return config.connect_instance_arn, config.connect_instance_id
        instance = connect.CfnInstance(
            self,
            "Instance",
            identity_management_type="CONNECT_MANAGED",
            # The alias is part of the instance's global URL, so default to one per account.
            instance_alias=config.connect_instance_alias
            or Fn.join("-", ["feedback-loop", Aws.ACCOUNT_ID]),
            attributes=connect.CfnInstance.AttributesProperty(
                inbound_calls=False,
                outbound_calls=True,
                contactflow_logs=True,
            ),
        )
        self._instance_nag_name = f"<{Stack.of(self).get_logical_id(instance)}.Arn>"
        return instance.attr_arn, instance.attr_id

    def _source_phone_number(self, config: FeedbackLoopConfig) -> str:
        """The configured caller id, else a number claimed here (config guarantees one)."""
        if config.source_phone_number:
            return config.source_phone_number
        number = connect.CfnPhoneNumber(
            self,
            "OutboundNumber",
            target_arn=self.instance_arn,
            country_code=str(config.phone_number_country_code),
            type="DID",
            description="Caller id of the Subscriber Feedback Loop's outbound calls.",
        )
        return number.attr_address

    def grant_start_outbound_call(self, grantee: iam.IGrantable) -> None:
        """``connect:StartOutboundVoiceContact`` on the contacts of this instance only.

        The Service Authorization Reference (Amazon Connect, "Actions defined by Amazon
        Connect") authorises this action on the ``contact`` resource type alone,
        ``arn:${Partition}:connect:${Region}:${Account}:instance/${InstanceId}/contact/*``:
        a grant on the instance or flow ARN matches nothing and every call is denied.
        """
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["connect:StartOutboundVoiceContact"],
            resource_arns=[self.contacts_arn],
        )
        acknowledge_grantee(
            grantee,
            f"AwsSolutions-IAM5[Resource::{self._instance_nag_name}/contact/*]",
            "A contact id exists only once the call is placed, so the grant can name only "
            "the contacts of this instance (the resource type the action is authorised on).",
        )
