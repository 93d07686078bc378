"""The probe archive: Firehose from probe_events to Parquet in probes/, its table, the what-if."""

import pytest
from infra_lookup import find_one, function_id, of_type, referenced_id
from test_iam import granted

from feedback_loop.contract import LAKE_TABLES, PROBE_ARCHIVE
from simulator.cost.measure import template_counts
from stacks.analytics import SQL_DIR

pytestmark = pytest.mark.xdist_group("synth")


def _delivery(resources: dict) -> dict:
    (stream,) = of_type(resources, "AWS::KinesisFirehose::DeliveryStream").values()
    return stream["Properties"]


def _table_id(resources: dict) -> str:
    return next(
        lid
        for lid, r in of_type(resources, "AWS::Glue::Table").items()
        if r["Properties"]["TableInput"]["Name"] == PROBE_ARCHIVE
    )


def test_firehose_reads_the_probe_stream_and_transforms_with_the_archive_function(default) -> None:
    resources = default.resources
    props = _delivery(resources)
    assert props["DeliveryStreamName"] == "probe_archive"
    assert props["DeliveryStreamType"] == "KinesisStreamAsSource"
    (stream,) = of_type(resources, "AWS::Kinesis::Stream")
    assert props["KinesisStreamSourceConfiguration"]["KinesisStreamARN"] == {
        "Fn::GetAtt": [stream, "Arn"]
    }
    (processor,) = props["ExtendedS3DestinationConfiguration"]["ProcessingConfiguration"][
        "Processors"
    ]
    parameters = {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]}
    assert processor["Type"] == "Lambda"
    assert parameters["LambdaArn"] == {
        "Fn::GetAtt": [function_id(resources, "Archive_probe_records"), "Arn"]
    }
    # well under the 6 MB a Lambda response may carry, rows being larger than records
    assert float(parameters["BufferSizeInMBs"]) <= 2


def test_the_cost_model_counts_the_archives_buffering_and_the_streams_two_readers(
    default,
) -> None:
    counts = template_counts(default.json)
    assert counts["kinesis_consumers"] == 2  # Ingest_probe_events' mapping and this Firehose
    hints = _delivery(default.resources)["ExtendedS3DestinationConfiguration"]["BufferingHints"]
    assert (counts["archive_buffer_mb"], counts["archive_buffer_seconds"]) == (
        hints["SizeInMBs"],
        hints["IntervalInSeconds"],
    )
    assert hints == {"SizeInMBs": 128, "IntervalInSeconds": 900}


def test_rows_become_parquet_per_business_day_with_the_contract_schema(default) -> None:
    resources = default.resources
    destination = _delivery(resources)["ExtendedS3DestinationConfiguration"]
    assert destination["Prefix"] == "probes/dt=!{partitionKeyFromLambda:dt}/"
    assert "!{firehose:error-output-type}" in destination["ErrorOutputPrefix"]
    assert destination["ErrorOutputPrefix"].startswith("probes-errors/")
    assert destination["DynamicPartitioningConfiguration"]["Enabled"] is True
    # dynamic partitioning and format conversion both need a 64 MiB buffer or more
    assert destination["BufferingHints"]["SizeInMBs"] >= 64
    conversion = destination["DataFormatConversionConfiguration"]
    assert "OpenXJsonSerDe" in conversion["InputFormatConfiguration"]["Deserializer"]
    assert "ParquetSerDe" in conversion["OutputFormatConfiguration"]["Serializer"]
    schema = conversion["SchemaConfiguration"]
    assert schema["DatabaseName"] == "sentimentdb"
    assert schema["TableName"] == {"Ref": _table_id(resources)}
    key = next(iter(of_type(resources, "AWS::KMS::Key")))
    kms = destination["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"]
    assert referenced_id(kms) == key
    assert destination["CloudWatchLoggingOptions"]["Enabled"] is True


def test_the_glue_table_is_parquet_with_the_contract_columns_and_projected_days(default) -> None:
    table = default.resources[_table_id(default.resources)]["Properties"]["TableInput"]
    descriptor = table["StorageDescriptor"]
    assert [(c["Name"], c["Type"]) for c in descriptor["Columns"]] == list(
        LAKE_TABLES[PROBE_ARCHIVE].engine_columns("glue")
    )
    assert descriptor["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
    assert table["PartitionKeys"] == [{"Name": "dt", "Type": "string"}]
    assert table["Parameters"]["projection.enabled"] == "true"
    assert "/probes/dt=${dt}/" in str(table["Parameters"]["storage.location.template"])


def test_the_archive_expires_after_its_configured_retention(variant) -> None:
    rules = [
        rule
        for b in of_type(variant.resources, "AWS::S3::Bucket").values()
        for rule in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    ]
    by_prefix = {rule.get("Prefix"): rule for rule in rules}
    for prefix in ("probes/", "probes-errors/"):
        assert by_prefix[prefix]["ExpirationInDays"] == variant.config.probe_archive_retention_days
        assert by_prefix[prefix]["Status"] == "Enabled"
    assert variant.config.probe_archive_retention_days <= variant.config.lake_retention_days


def test_the_whatif_runs_the_repos_sql_in_a_workgroup_of_its_own(default) -> None:
    resources = default.resources
    group_id = find_one(resources, "AWS::Athena::WorkGroup", Name="subscriber_feedback_loop_whatif")
    config = resources[group_id]["Properties"]["WorkGroupConfiguration"]
    assert config["EnforceWorkGroupConfiguration"] is True
    assert config["BytesScannedCutoffPerQuery"] >= 10 * 1024**3
    encryption = config["ResultConfiguration"]["EncryptionConfiguration"]
    assert encryption["EncryptionOption"] == "SSE_KMS"
    queries = [
        q["Properties"]
        for q in of_type(resources, "AWS::Athena::NamedQuery").values()
        if q["Properties"].get("WorkGroup") == {"Ref": group_id}
    ]
    assert [q["Name"] for q in queries] == ["detect_incidents"]
    assert queries[0]["QueryString"] == (SQL_DIR / "detect_incidents.sql").read_text()


def test_firehose_role_can_read_the_stream_and_write_only_the_archive_prefixes(variant) -> None:
    resources = variant.resources
    role_id = referenced_id(_delivery(resources)["KinesisStreamSourceConfiguration"]["RoleARN"])
    assert resources[role_id]["Properties"].get("ManagedPolicyArns") is None
    log_group = next(
        lid
        for lid, r in of_type(resources, "AWS::Logs::LogGroup").items()
        if r["Properties"]["LogGroupName"] == "/aws/kinesisfirehose/probe_archive"
    )
    kinesis = {"kinesis:DescribeStream", "kinesis:GetShardIterator", "kinesis:GetRecords",
               "kinesis:ListShards"}  # fmt: skip
    glue = {"glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"}
    invoke = {"lambda:InvokeFunction", "lambda:GetFunctionConfiguration"}
    bucket = {"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"}
    objects = {"s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"}
    tables = ("glue catalog", "glue database/sentimentdb", "glue table/sentimentdb/probes")
    expected = (
        {(a, "stream probe_events") for a in kinesis}
        | {(a, "function Archive_probe_records") for a in invoke}
        | {(a, "lake bucket") for a in bucket}
        | {(a, p) for a in objects for p in ("lake probes/*", "lake probes-errors/*")}
        | {(a, t) for a in glue for t in tables}
        | {("kms:Decrypt", "stack key"), ("kms:GenerateDataKey", "stack key")}
        | {("logs:PutLogEvents", f"log group {log_group}")}
    )
    assert granted(resources, role_id) == expected
    trust = resources[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "firehose.amazonaws.com"}]
    assert "aws:SourceAccount" in trust[0]["Condition"]["StringEquals"]


def test_a_stuck_or_failing_archive_alarms_on_the_alarm_topic(default) -> None:
    (topic,) = of_type(default.resources, "AWS::SNS::Topic")
    alarms = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in of_type(default.resources, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("Namespace") == "AWS/Firehose"
    }
    assert set(alarms) == {"DeliveryToS3.DataFreshness", "DeliveryToS3.Success"}
    for alarm in alarms.values():
        assert alarm["Dimensions"] == [{"Name": "DeliveryStreamName", "Value": "probe_archive"}]
        assert alarm["AlarmActions"] == [{"Ref": topic}]
    freshness = alarms["DeliveryToS3.DataFreshness"]
    assert freshness["ComparisonOperator"] == "GreaterThanThreshold"
    assert freshness["Threshold"] >= 900  # beyond one full buffer interval
    assert alarms["DeliveryToS3.Success"]["ComparisonOperator"] == "LessThanThreshold"
