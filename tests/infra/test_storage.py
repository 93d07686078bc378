"""Lake, tables, stream, queues and secret: names, keys, encryption, retention."""

import pytest
from aws_cdk.assertions import Match
from infra_lookup import FUNCTION_NAMES, find_one, of_type, queue_id, referenced_id, table_id

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]


def _stack_key(resources: dict) -> str:
    (key_id,) = of_type(resources, "AWS::KMS::Key")
    return key_id


def _lake_bucket(resources: dict) -> str:
    kms_buckets = [
        lid
        for lid, r in of_type(resources, "AWS::S3::Bucket").items()
        if "KMS" in str(r["Properties"].get("BucketEncryption"))
    ]
    assert len(kms_buckets) == 1
    return kms_buckets[0]


def test_customer_managed_key_rotates(default) -> None:
    default.template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_lake_bucket_is_private_encrypted_versioned_logged_and_expires(variant) -> None:
    resources = variant.resources
    bucket = resources[_lake_bucket(resources)]["Properties"]
    key_id = _stack_key(resources)
    rule = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert referenced_id(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == key_id
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    log_bucket = referenced_id(bucket["LoggingConfiguration"]["DestinationBucketName"])
    assert resources[log_bucket]["Type"] == "AWS::S3::Bucket"
    expirations = [r.get("ExpirationInDays") for r in bucket["LifecycleConfiguration"]["Rules"]]
    assert variant.config.lake_retention_days in expirations


def test_every_bucket_denies_plain_http(variant) -> None:
    for bucket_id in of_type(variant.resources, "AWS::S3::Bucket"):
        variant.template.has_resource_properties(
            "AWS::S3::BucketPolicy",
            {
                "Bucket": {"Ref": bucket_id},
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_subscriber_table_keys_stream_pitr_and_kms(default) -> None:
    key_id = _stack_key(default.resources)
    props = default.resources[table_id(default.resources, "Subscriber_table")]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "PhoneNumber", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert referenced_id(props["SSESpecification"]["KMSMasterKeyId"]) == key_id


@pytest.mark.parametrize(
    ("name", "keys", "ttl"),
    [
        ("Subscriber_counters", [("PhoneNumber", "HASH"), ("Kpi", "RANGE")], "ExpiresAt"),
        ("Idempotency_table", [("id", "HASH")], "expiration"),
    ],
)
def test_helper_tables_have_their_keys_and_ttl(default, name, keys, ttl) -> None:
    props = default.resources[table_id(default.resources, name)]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": a, "KeyType": k} for a, k in keys]
    assert props["TimeToLiveSpecification"] == {"AttributeName": ttl, "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert "StreamSpecification" not in props


def test_counters_table_on_provisioned_writes_scales_with_utilization(configured) -> None:
    # Given counters_capacity {"min_write_units": 50, "max_write_units": 5000}
    counters = table_id(configured.resources, "Subscriber_counters")
    props = configured.resources[counters]["Properties"]
    # Then the table is provisioned at the minimum, the other tables stay on-demand
    assert props.get("BillingMode", "PROVISIONED") == "PROVISIONED"  # CloudFormation's default
    assert props["ProvisionedThroughput"] == {"ReadCapacityUnits": 5, "WriteCapacityUnits": 50}
    subscribers = table_id(configured.resources, "Subscriber_table")
    assert configured.resources[subscribers]["Properties"]["BillingMode"] == "PAY_PER_REQUEST"
    # And Application Auto Scaling moves its write units between 50 and 5000 at 70 %
    target = find_one(
        configured.resources,
        "AWS::ApplicationAutoScaling::ScalableTarget",
        ScalableDimension="dynamodb:table:WriteCapacityUnits",
    )
    target_props = configured.resources[target]["Properties"]
    assert (target_props["MinCapacity"], target_props["MaxCapacity"]) == (50, 5000)
    assert referenced_id(target_props["ResourceId"]["Fn::Join"][1][1]) == counters
    policy = find_one(configured.resources, "AWS::ApplicationAutoScaling::ScalingPolicy")
    props = configured.resources[policy]["Properties"]
    tracking = props["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 70
    assert tracking["PredefinedMetricSpecification"] == {
        "PredefinedMetricType": "DynamoDBWriteCapacityUtilization"
    }


def test_default_deployment_has_no_provisioned_capacity(default) -> None:
    assert not [
        r for r in default.resources.values() if r["Type"].startswith("AWS::ApplicationAutoScaling")
    ]


def test_probe_stream_is_on_demand_and_kms_encrypted(default) -> None:
    stream = find_one(default.resources, "AWS::Kinesis::Stream", Name="probe_events")
    props = default.resources[stream]["Properties"]
    assert props["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert props["StreamEncryption"]["EncryptionType"] == "KMS"
    assert referenced_id(props["StreamEncryption"]["KeyId"]) == _stack_key(default.resources)


def test_every_queue_is_kms_encrypted_and_tls_only(default) -> None:
    key_id = _stack_key(default.resources)
    queues = of_type(default.resources, "AWS::SQS::Queue")
    assert len(queues) >= 8
    for lid, queue in queues.items():
        assert referenced_id(queue["Properties"]["KmsMasterKeyId"]) == key_id, lid
        default.template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": Match.array_with([{"Ref": lid}]),
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


@pytest.mark.parametrize(
    ("queue", "dlq", "receives"),
    [
        ("incident_update_queue", "incident_update_queue_dlq", 5),
        ("engagement_update_queue", "engagement_update_queue_dlq", 5),
        # Throttled calls are received again after each back-off (see Trigger_Connect).
        ("engagement_trigger_queue.fifo", "engagement_trigger_dlq.fifo", 50),
    ],
)
def test_work_queues_redrive_to_their_dlq(default, queue, dlq, receives) -> None:
    props = default.resources[queue_id(default.resources, queue)]["Properties"]
    redrive = props["RedrivePolicy"]
    assert referenced_id(redrive["deadLetterTargetArn"]) == queue_id(default.resources, dlq)
    assert redrive["maxReceiveCount"] == receives


def test_trigger_queue_and_its_dlq_are_fifo_with_content_dedup(default) -> None:
    queue = default.resources[queue_id(default.resources, "engagement_trigger_queue.fifo")]
    dlq = default.resources[queue_id(default.resources, "engagement_trigger_dlq.fifo")]
    assert queue["Properties"]["FifoQueue"] is True
    assert queue["Properties"]["ContentBasedDeduplication"] is True
    assert dlq["Properties"]["FifoQueue"] is True


def test_queue_visibility_is_six_times_the_consumer_timeout_plus_its_window(default) -> None:
    resources = default.resources
    mappings = of_type(resources, "AWS::Lambda::EventSourceMapping").values()
    checked = 0
    for mapping in mappings:
        source = mapping["Properties"]["EventSourceArn"]
        source_id = referenced_id(source)
        if resources[source_id]["Type"] != "AWS::SQS::Queue":
            continue
        function = resources[referenced_id(mapping["Properties"]["FunctionName"])]
        visibility = resources[source_id]["Properties"]["VisibilityTimeout"]
        window = mapping["Properties"].get("MaximumBatchingWindowInSeconds", 0)
        assert visibility >= 6 * function["Properties"]["Timeout"] + window
        checked += 1
    assert checked == 3


def test_pseudonym_secret_is_generated_and_kms_encrypted(default) -> None:
    (secret_id,) = of_type(default.resources, "AWS::SecretsManager::Secret")
    props = default.resources[secret_id]["Properties"]
    assert "GenerateSecretString" in props
    assert referenced_id(props["KmsKeyId"]) == _stack_key(default.resources)


def test_every_log_group_is_encrypted_with_configured_retention(variant) -> None:
    groups = of_type(variant.resources, "AWS::Logs::LogGroup")
    # one per function, and the probe archive's delivery stream
    assert len(groups) == len(FUNCTION_NAMES) + 1
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == variant.config.log_retention_days
        assert referenced_id(group["Properties"]["KmsKeyId"]) == _stack_key(variant.resources)
