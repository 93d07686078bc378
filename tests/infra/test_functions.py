"""The functions: shared defaults, environment wiring and event sources."""

import json

import pytest
from infra_lookup import (
    FUNCTION_NAMES,
    find_one,
    function_props,
    mappings_of,
    of_type,
    queue_id,
    referenced_id,
    table_id,
)

from feedback_loop.policy import load_policy

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

HANDLER_FOLDERS = {
    "Ingest_probe_events": "ingest_probe_events",
    "write_incident_to_S3": "write_incident_to_s3",
    "Read_after_incident": "read_after_incident",
    "write_engagement_to_S3": "write_engagement_to_s3",
    "Trigger_Connect": "trigger_connect",
    "Collect_feedback_from_Connect": "collect_feedback_from_connect",
    "write_feedback_to_S3": "write_feedback_to_s3",
    "Archive_probe_records": "archive_probe_records",
}
# docs/ARCHITECTURE.md, "Environment variables" (beyond the four common ones).
ENVIRONMENT = {
    "Ingest_probe_events": {
        "SUBSCRIBER_TABLE", "COUNTERS_TABLE", "INCIDENT_QUEUE_URL", "LAKE_BUCKET",
        "PSEUDONYM_SECRET_ARN", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION",
        "PARALLELIZATION_FACTOR",
    },
    "write_incident_to_S3": {"LAKE_BUCKET", "PSEUDONYM_SECRET_ARN"},
    "Read_after_incident": {
        "SUBSCRIBER_TABLE", "CONTACT_STATE_TABLE", "ENGAGEMENT_UPDATE_QUEUE_URL",
        "ENGAGEMENT_TRIGGER_QUEUE_URL",
    },
    "write_engagement_to_S3": {"LAKE_BUCKET", "PSEUDONYM_SECRET_ARN"},
    "Trigger_Connect": {
        "CONNECT_INSTANCE_ID", "CONTACT_FLOW_ID", "SOURCE_PHONE_NUMBER", "IDEMPOTENCY_TABLE",
        "ENGAGEMENT_TRIGGER_QUEUE_URL", "ENGAGEMENT_UPDATE_QUEUE_URL", "SUBSCRIBER_TABLE",
        "CONTACT_STATE_TABLE",
    },
    "Collect_feedback_from_Connect": {"SUBSCRIBER_TABLE"},
    "write_feedback_to_S3": {"LAKE_BUCKET", "PSEUDONYM_SECRET_ARN"},
    "Archive_probe_records": {"PSEUDONYM_SECRET_ARN"},
}  # fmt: skip
COMMON = {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "LOG_LEVEL", "POLICY_JSON"}


def _env(resources: dict, name: str) -> dict:
    return function_props(resources, name)["Environment"]["Variables"]


def test_exactly_the_documented_functions_exist(default) -> None:
    names = {
        f["Properties"]["FunctionName"]
        for f in of_type(default.resources, "AWS::Lambda::Function").values()
    }
    assert names == set(FUNCTION_NAMES)


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_shared_defaults(default, name) -> None:
    props = function_props(default.resources, name)
    assert props["Runtime"] in ("python3.12", "python3.13")
    assert props["Architectures"] == ["arm64"]
    assert props["Handler"] == f"{HANDLER_FOLDERS[name]}.app.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    # the public Powertools layer by ARN, the dependency layer from this stack (by Ref)
    (dependencies,) = [layer for layer in props["Layers"] if "Ref" in layer]
    (powertools,) = [layer for layer in props["Layers"] if "Ref" not in layer]
    layer_arn = json.dumps(powertools)
    assert ":017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:" in layer_arn
    assert "AWS::Region" in layer_arn, "the layer ARN must follow the deployment region"
    layer = default.resources[referenced_id(dependencies)]
    assert layer["Type"] == "AWS::Lambda::LayerVersion"
    assert layer["Properties"]["CompatibleRuntimes"] == [props["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == props["Architectures"]
    log_group = default.resources[referenced_id(props["LoggingConfig"]["LogGroup"])]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{name}"


def test_all_functions_share_one_code_asset(default) -> None:
    codes = {
        json.dumps(f["Properties"]["Code"], sort_keys=True)
        for f in of_type(default.resources, "AWS::Lambda::Function").values()
    }
    assert len(codes) == 1


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_environment_names_are_exactly_the_contract(default, name) -> None:
    assert set(_env(default.resources, name)) == ENVIRONMENT[name] | COMMON


@pytest.mark.parametrize("name", FUNCTION_NAMES)
def test_policy_json_is_the_configured_policy(variant, name) -> None:
    env = _env(variant.resources, name)
    assert env["POLICY_JSON"] == load_policy(variant.raw).to_json()
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "SubscriberFeedbackLoop"


def test_policy_override_reaches_the_functions(configured) -> None:
    policy = json.loads(_env(configured.resources, "Read_after_incident")["POLICY_JSON"])
    assert policy["min_sessions"] == configured.raw["min_sessions"]


@pytest.mark.parametrize(
    ("name", "variable", "table"),
    [
        ("Ingest_probe_events", "SUBSCRIBER_TABLE", "Subscriber_table"),
        ("Ingest_probe_events", "COUNTERS_TABLE", "Subscriber_counters"),
        ("Read_after_incident", "SUBSCRIBER_TABLE", "Subscriber_table"),
        ("Trigger_Connect", "IDEMPOTENCY_TABLE", "Idempotency_table"),
        ("Collect_feedback_from_Connect", "SUBSCRIBER_TABLE", "Subscriber_table"),
    ],
)
def test_table_variables_point_at_their_table(default, name, variable, table) -> None:
    value = _env(default.resources, name)[variable]
    assert referenced_id(value) == table_id(default.resources, table)


@pytest.mark.parametrize(
    ("name", "variable", "queue"),
    [
        ("Ingest_probe_events", "INCIDENT_QUEUE_URL", "incident_update_queue"),
        ("Read_after_incident", "ENGAGEMENT_UPDATE_QUEUE_URL", "engagement_update_queue"),
        ("Read_after_incident", "ENGAGEMENT_TRIGGER_QUEUE_URL", "engagement_trigger_queue.fifo"),
    ],
)
def test_queue_url_variables_point_at_their_queue(default, name, variable, queue) -> None:
    value = _env(default.resources, name)[variable]
    assert value == {"Ref": queue_id(default.resources, queue)}, "Ref of a queue is its URL"


@pytest.mark.parametrize("name", [n for n, env in ENVIRONMENT.items() if "LAKE_BUCKET" in env])
def test_lake_and_secret_variables_point_at_the_lake(default, name) -> None:
    env = _env(default.resources, name)
    bucket = default.resources[referenced_id(env["LAKE_BUCKET"])]
    assert bucket["Type"] == "AWS::S3::Bucket"
    assert "aws:kms" in json.dumps(bucket["Properties"]["BucketEncryption"])
    secret = default.resources[referenced_id(env["PSEUDONYM_SECRET_ARN"])]
    assert secret["Type"] == "AWS::SecretsManager::Secret"


def test_trigger_connect_calls_the_stack_instance_and_flow(default) -> None:
    env = _env(default.resources, "Trigger_Connect")
    instance = find_one(default.resources, "AWS::Connect::Instance")
    flow = find_one(default.resources, "AWS::Connect::ContactFlow", Name="Subscriber_engagement")
    assert env["CONNECT_INSTANCE_ID"] == {"Fn::GetAtt": [instance, "Id"]}
    # The flow id is the last part of the flow ARN.
    select = env["CONTACT_FLOW_ID"]["Fn::Select"]
    assert select[0] == 3
    assert select[1]["Fn::Split"] == ["/", {"Fn::GetAtt": [flow, "ContactFlowArn"]}]
    number = find_one(default.resources, "AWS::Connect::PhoneNumber")
    assert env["SOURCE_PHONE_NUMBER"] == {"Fn::GetAtt": [number, "Address"]}


def test_trigger_connect_uses_the_existing_instance_and_claimed_number(configured) -> None:
    env = _env(configured.resources, "Trigger_Connect")
    assert env["CONNECT_INSTANCE_ID"] == configured.config.connect_instance_id
    number = find_one(configured.resources, "AWS::Connect::PhoneNumber", CountryCode="GB")
    assert env["SOURCE_PHONE_NUMBER"] == {"Fn::GetAtt": [number, "Address"]}


def test_configured_source_number_is_used_verbatim(tmp_path) -> None:
    from stacks.application import synth_template

    template = synth_template(
        {"source_phone_number": "+447700900999", "phone_number_country_code": "GB"},
        outdir=str(tmp_path),
        checks=False,
    )
    env = function_props(template["Resources"], "Trigger_Connect")["Environment"]["Variables"]
    assert env["SOURCE_PHONE_NUMBER"] == "+447700900999"
    assert not of_type(template["Resources"], "AWS::Connect::PhoneNumber")


def test_trigger_connect_concurrency_follows_config_without_reserving_account_concurrency(
    variant,
) -> None:
    props = function_props(variant.resources, "Trigger_Connect")
    assert "ReservedConcurrentExecutions" not in props
    (mapping,) = mappings_of(variant.resources, "Trigger_Connect")
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": variant.config.max_concurrent_calls}


def test_ingest_reads_each_shard_in_as_many_concurrent_batches_as_configured(variant) -> None:
    (mapping,) = mappings_of(variant.resources, "Ingest_probe_events")
    assert mapping["ParallelizationFactor"] == variant.config.ingest_parallelization_factor
    # and the function knows it, to tell whether mixed-key aggregates keep their order
    env = _env(variant.resources, "Ingest_probe_events")
    assert env["PARALLELIZATION_FACTOR"] == str(mapping["ParallelizationFactor"])


def test_ingest_reads_the_probe_stream_in_bisecting_batches(default) -> None:
    (mapping,) = mappings_of(default.resources, "Ingest_probe_events")
    stream = find_one(default.resources, "AWS::Kinesis::Stream", Name="probe_events")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [stream, "Arn"]}
    assert mapping["BatchSize"] == 500
    assert mapping["MaximumBatchingWindowInSeconds"] == 5
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 3
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert referenced_id(destination) == queue_id(default.resources, "ingest_failures_dlq")


@pytest.mark.parametrize(
    ("name", "change", "failures_dlq", "batch", "window"),
    [
        # Deciding is on the incident -> call path: no batching window.
        ("Read_after_incident", "incident", "read_after_incident_failures_dlq", 100, None),
        # The lake writer gathers up to five minutes of answers per object.
        ("write_feedback_to_S3", "feedback", "write_feedback_failures_dlq", 1000, 300),
    ],
)
def test_table_stream_consumers_wake_only_on_their_changes(
    default, name, change, failures_dlq, batch, window
) -> None:
    (mapping,) = mappings_of(default.resources, name)
    table = table_id(default.resources, "Subscriber_table")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [table, "StreamArn"]}
    assert mapping["BatchSize"] == batch
    assert mapping.get("MaximumBatchingWindowInSeconds") == window
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["MaximumRetryAttempts"] == 3
    destination = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    assert referenced_id(destination) == queue_id(default.resources, failures_dlq)
    (pattern,) = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {
        "eventName": ["INSERT", "MODIFY"],
        "dynamodb": {"NewImage": {"LastChange": {"S": [change]}}},
    }


@pytest.mark.parametrize(
    ("name", "queue", "batch", "window"),
    [
        # Lake writers: what fits Lambda's 6 MB payload, over its longest window.
        ("write_incident_to_S3", "incident_update_queue", 3_000, 300),
        ("write_engagement_to_S3", "engagement_update_queue", 3_000, 300),
        ("Trigger_Connect", "engagement_trigger_queue.fifo", 10, None),
    ],
)
def test_queue_consumers_batch_as_specified(default, name, queue, batch, window) -> None:
    (mapping,) = mappings_of(default.resources, name)
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id(default.resources, queue), "Arn"]}
    assert mapping["BatchSize"] == batch
    assert mapping.get("MaximumBatchingWindowInSeconds") == window
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_collect_feedback_is_not_triggered_by_a_mapping(default) -> None:
    assert mappings_of(default.resources, "Collect_feedback_from_Connect") == []
