"""The ``SubscriberFeedbackLoop`` stack: one construct per concern, wired together."""

from pathlib import Path

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from stacks.analytics import SQL_DIR, WORKGROUP, Analytics
from stacks.config import FeedbackLoopConfig
from stacks.contact_centre import FLOW_FILE, ContactCentre
from stacks.data_lake import DataLake
from stacks.engagement import Engagement
from stacks.functions import FunctionFactory
from stacks.ingestion import Ingestion
from stacks.monitoring import Monitoring
from stacks.probe_archive import WHATIF_WORKGROUP, ProbeArchive
from stacks.subscriber_state import SubscriberState

STACK_NAME = "SubscriberFeedbackLoop"


class FeedbackLoopStack(Stack):
    """Detect, decide, engage, listen, prioritise: the whole loop in one deployable stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str = STACK_NAME,
        *,
        config: FeedbackLoopConfig,
        flow_file: Path = FLOW_FILE,
        sql_dir: Path = SQL_DIR,
    ) -> None:
        super().__init__(
            scope,
            construct_id,
            description="Subscriber Feedback Loop: probe incidents, IVR feedback, cell priority.",
        )
        lake = DataLake(self, "DataLake", config=config)
        state = SubscriberState(
            self, "SubscriberState", key=lake.key, counters_capacity=config.counters_capacity
        )
        factory = FunctionFactory(self, "Functions", config=config, key=lake.key)
        ingestion = Ingestion(
            self, "Ingestion", config=config, factory=factory, lake=lake, state=state
        )
        contact = ContactCentre(
            self,
            "ContactCentre",
            config=config,
            factory=factory,
            lake=lake,
            state=state,
            flow_file=flow_file,
        )
        engagement = Engagement(
            self,
            "Engagement",
            config=config,
            factory=factory,
            lake=lake,
            state=state,
            contact=contact,
        )
        analytics = Analytics(self, "Analytics", config=config, lake=lake, sql_dir=sql_dir)
        archive = ProbeArchive(
            self,
            "ProbeArchive",
            config=config,
            factory=factory,
            lake=lake,
            stream=ingestion.stream,
            database=analytics.database,
        )
        Monitoring(
            self,
            "Monitoring",
            key=lake.key,
            alarm_email=config.alarm_email,
            dead_letter_queues=[
                ingestion.incident_dlq,
                ingestion.failures_dlq,
                engagement.update_dlq,
                engagement.trigger_dlq,
                engagement.failures_dlq,
                contact.feedback_failures_dlq,
                *([contact.sms_failures_dlq] if contact.sms_failures_dlq else []),
            ],
            functions=[
                ingestion.ingest,
                ingestion.write_incident,
                engagement.read_after_incident,
                engagement.write_engagement,
                engagement.trigger_connect,
                contact.feedback,
                contact.feedback_writer,
                *([contact.sms_feedback] if contact.sms_feedback else []),
                archive.transform,
            ],
            stream=ingestion.stream,
            trigger_queue=engagement.trigger_queue,
            other_alarms=archive.alarms,
        )
        outputs = {
            "ProbeStreamName": ingestion.stream.stream_name,
            "IncidentQueueUrl": ingestion.incident_queue.queue_url,
            "IncidentDlqUrl": ingestion.incident_dlq.queue_url,
            "IngestFailuresDlqUrl": ingestion.failures_dlq.queue_url,
            "EngagementUpdateQueueUrl": engagement.update_queue.queue_url,
            "EngagementUpdateDlqUrl": engagement.update_dlq.queue_url,
            "EngagementTriggerQueueUrl": engagement.trigger_queue.queue_url,
            "EngagementTriggerDlqUrl": engagement.trigger_dlq.queue_url,
            "ReadAfterIncidentFailuresDlqUrl": engagement.failures_dlq.queue_url,
            "FeedbackWriterFailuresDlqUrl": contact.feedback_failures_dlq.queue_url,
            "LakeBucketName": lake.bucket.bucket_name,
            "SubscriberTableName": state.subscribers.table_name,
            "PseudonymSecretArn": lake.pseudonym_secret.secret_arn,
            "ConnectInstanceId": contact.instance_id,
            "ConnectInstanceArn": contact.instance_arn,
            "ContactFlowId": contact.flow_id,
            "FeedbackFunctionArn": contact.feedback.function_arn,
            "AthenaWorkGroup": WORKGROUP,
            "WhatIfWorkGroup": WHATIF_WORKGROUP,
            "ProbeArchiveDeliveryStream": archive.delivery_stream.ref,
        }
        if contact.sms_replies is not None and contact.sms_failures_dlq is not None:
            # Two-way SMS on the origination number publishes replies to this topic.
            outputs["SmsRepliesTopicArn"] = contact.sms_replies.topic_arn
            outputs["SmsRepliesDlqUrl"] = contact.sms_failures_dlq.queue_url
        for name, value in outputs.items():
            CfnOutput(self, name, value=value)
