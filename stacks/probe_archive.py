"""The probe archive: every valid probe record in the lake as Parquet, and the what-if's Athena.

Amazon Data Firehose reads ``probe_events`` (a second consumer next to
``Ingest_probe_events``), has ``Archive_probe_records`` validate and pseudonymise each
record and give it its stream position (``record_id``), converts the rows to Parquet
against the Glue table ``probes`` and writes them under ``probes/dt=<date>/`` of the lake
(dynamic partitioning on the key the function returns). Why Firehose and its cost:
docs/DEPLOY.md, "Probe archive". The what-if runs ``sql/detect_incidents.sql`` over the
table as a named query in a workgroup of its own, whose scan cut-off fits a month of
archive rather than the dashboards' queries.
"""

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_athena as athena
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from feedback_loop.contract import LAKE_TABLES, PROBE_ARCHIVE, PROBE_ARCHIVE_DELIVERY_STREAM
from stacks.analytics import DATABASE, PROJECTION_START, SQL_DIR, WHATIF_SQL
from stacks.config import FeedbackLoopConfig
from stacks.data_lake import ATHENA_RESULTS_PREFIX, NONCURRENT_VERSION_DAYS, DataLake
from stacks.functions import RETENTION, FunctionFactory
from stacks.monitoring import ALARM_PREFIX, RUNBOOK, runbook_anchor
from stacks.nag import acknowledge

TRANSFORM_FUNCTION = "Archive_probe_records"
ERRORS_PREFIX = "probes-errors"
WHATIF_WORKGROUP = "subscriber_feedback_loop_whatif"
WHATIF_QUERY = WHATIF_SQL.removesuffix(".sql")
# A month of a large operator's archive: 1 TB is $5 of Athena at most (docs/DEPLOY.md).
WHATIF_BYTES_SCANNED_CUTOFF = 1024**4
# Dynamic partitioning and record format conversion both need a buffer of 64 MiB or more;
# the longest interval keeps objects large (fewer S3 PUTs and Athena file opens).
S3_BUFFER_MB = 128
S3_BUFFER_SECONDS = 900
# Records are ~200 bytes, rows ~350: 1 MB of input keeps the response far below Lambda's 6 MB.
PROCESSOR_BUFFER_MB = 1
PROCESSOR_INTERVAL_SECONDS = 300
PROCESSOR_RETRIES = 3
TRANSFORM_TIMEOUT = Duration.seconds(60)
LOG_STREAM = "DestinationDelivery"
FILE_EXTENSION = ".parquet"
# What Firehose calls (Firehose developer guide, "Controlling access with Amazon Data
# Firehose"), split by resource type.
KINESIS_SOURCE_ACTIONS = [
    "kinesis:DescribeStream",
    "kinesis:GetShardIterator",
    "kinesis:GetRecords",
    "kinesis:ListShards",
]
LAMBDA_ACTIONS = ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"]
S3_BUCKET_ACTIONS = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
S3_OBJECT_ACTIONS = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
GLUE_SCHEMA_ACTIONS = ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
# Oldest record not yet in S3: two buffer intervals means deliveries are failing or stuck.
FRESHNESS_ALARM_SECONDS = 2 * S3_BUFFER_SECONDS


class ProbeArchive(Construct):
    """Glue table, transformation function, delivery stream, retention, what-if workgroup."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        factory: FunctionFactory,
        lake: DataLake,
        stream: kinesis.IStream,
        database: glue.CfnDatabase,
    ) -> None:
        super().__init__(scope, construct_id)
        self._lake = lake
        self.table = self._build_table(database)
        self.transform = self._build_transform(factory, lake)
        self.delivery_stream = self._build_delivery_stream(config, lake, stream)
        for prefix in (PROBE_ARCHIVE, ERRORS_PREFIX):
            lake.bucket.add_lifecycle_rule(
                id=f"{prefix}-retention",
                prefix=f"{prefix}/",
                expiration=Duration.days(config.probe_archive_retention_days),
                noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
            )
        self.workgroup = self._build_workgroup()
        self.named_query = self._build_named_query(database)
        self.alarms = self._build_alarms()

    def _build_alarms(self) -> list[cloudwatch.Alarm]:
        """Alarms on the delivery stream (its function's errors are watched with the others):
        records waiting too long for S3, and failed S3 deliveries (Firehose metrics, "Data
        delivery CloudWatch metrics"). Monitoring gives them the alarm topic."""
        dimensions = {"DeliveryStreamName": PROBE_ARCHIVE_DELIVERY_STREAM}
        checks = (
            ("ArchiveFreshness", "DeliveryToS3.DataFreshness", "Maximum", FRESHNESS_ALARM_SECONDS,
             cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
             "probe_archive: the oldest record has waited too long for S3."),
            ("ArchiveDelivery", "DeliveryToS3.Success", "Average", 1,
             cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
             "probe_archive: deliveries to S3 failed (see probes-errors/ and its log group)."),
        )  # fmt: skip
        alarms = []
        for name, metric, statistic, threshold, comparison, description in checks:
            alarm_name = f"{ALARM_PREFIX}-{name}-{PROBE_ARCHIVE_DELIVERY_STREAM}"
            alarm = cloudwatch.Metric(
                namespace="AWS/Firehose",
                metric_name=metric,
                dimensions_map=dimensions,
                statistic=statistic,
                period=Duration.minutes(5),
            ).create_alarm(
                self,
                f"{name}Alarm",
                alarm_name=alarm_name,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=comparison,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=f"{description} Runbook: {RUNBOOK}#{runbook_anchor(alarm_name)}",
            )
            alarms.append(alarm)
        return alarms

    def _build_table(self, database: glue.CfnDatabase) -> glue.CfnTable:
        location = f"s3://{self._lake.bucket.bucket_name}/{PROBE_ARCHIVE}/"
        table = glue.CfnTable(
            self,
            "Table",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=DATABASE,
            table_input=glue.CfnTable.TableInputProperty(
                name=PROBE_ARCHIVE,
                description="Every valid probe record as it arrived (Parquet, pseudonymised), "
                "one partition per business day; written by Firehose probe_archive.",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "parquet",
                    "projection.enabled": "true",
                    "projection.dt.type": "date",
                    "projection.dt.format": "yyyy-MM-dd",
                    "projection.dt.range": f"{PROJECTION_START},NOW",
                    "projection.dt.interval": "1",
                    "projection.dt.interval.unit": "DAYS",
                    "storage.location.template": location + "dt=${dt}/",
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name="dt", type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=location,
                    input_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    output_format="org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=(
                            "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                        )
                    ),
                    columns=[
                        glue.CfnTable.ColumnProperty(name=name, type=kind)
                        for name, kind in LAKE_TABLES[PROBE_ARCHIVE].engine_columns("glue")
                    ],
                ),
            ),
        )
        table.node.add_dependency(database)
        return table

    def _build_transform(self, factory: FunctionFactory, lake: DataLake) -> lambda_.Function:
        function = factory.create(
            self,
            name=TRANSFORM_FUNCTION,
            folder="archive_probe_records",
            timeout=TRANSFORM_TIMEOUT,
            invoked_by="Amazon Data Firehose (data transformation of probe_archive)",
            environment={"PSEUDONYM_SECRET_ARN": lake.pseudonym_secret.secret_arn},
        )
        lake.grant_pseudonym_read(function)
        return function

    def _build_delivery_stream(
        self, config: FeedbackLoopConfig, lake: DataLake, stream: kinesis.IStream
    ) -> firehose.CfnDeliveryStream:
        """The delivery stream (L1: the L2 S3 destination grants read, write and delete on the
        whole bucket, where Firehose needs to write two prefixes)."""
        role = self._build_delivery_role(lake, stream)
        log_group = logs.LogGroup(
            self,
            "DeliveryLogs",
            log_group_name=f"/aws/kinesisfirehose/{PROBE_ARCHIVE_DELIVERY_STREAM}",
            retention=RETENTION[config.log_retention_days],
            encryption_key=lake.key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        log_stream = logs.LogStream(
            self, "DeliveryLogStream", log_group=log_group, log_stream_name=LOG_STREAM
        )
        log_group.grant(role, "logs:PutLogEvents")
        cfn = firehose.CfnDeliveryStream
        processor = cfn.ProcessorProperty(
            type="Lambda",
            parameters=[
                cfn.ProcessorParameterProperty(parameter_name=name, parameter_value=value)
                for name, value in (
                    ("LambdaArn", self.transform.function_arn),
                    ("BufferSizeInMBs", str(PROCESSOR_BUFFER_MB)),
                    ("BufferIntervalInSeconds", str(PROCESSOR_INTERVAL_SECONDS)),
                    ("NumberOfRetries", str(PROCESSOR_RETRIES)),
                )
            ],
        )
        destination = cfn.ExtendedS3DestinationConfigurationProperty(
            bucket_arn=lake.bucket.bucket_arn,
            role_arn=role.role_arn,
            prefix=f"{PROBE_ARCHIVE}/dt=!{{partitionKeyFromLambda:dt}}/",
            error_output_prefix=(
                f"{ERRORS_PREFIX}/!{{firehose:error-output-type}}/dt=!{{timestamp:yyyy-MM-dd}}/"
            ),
            buffering_hints=cfn.BufferingHintsProperty(
                interval_in_seconds=S3_BUFFER_SECONDS, size_in_m_bs=S3_BUFFER_MB
            ),
            # Record format conversion writes Snappy-compressed Parquet; S3 compression stays off.
            compression_format="UNCOMPRESSED",
            file_extension=FILE_EXTENSION,
            encryption_configuration=cfn.EncryptionConfigurationProperty(
                kms_encryption_config=cfn.KMSEncryptionConfigProperty(
                    awskms_key_arn=lake.key.key_arn
                )
            ),
            cloud_watch_logging_options=cfn.CloudWatchLoggingOptionsProperty(
                enabled=True,
                log_group_name=log_group.log_group_name,
                log_stream_name=log_stream.log_stream_name,
            ),
            processing_configuration=cfn.ProcessingConfigurationProperty(
                enabled=True, processors=[processor]
            ),
            dynamic_partitioning_configuration=cfn.DynamicPartitioningConfigurationProperty(
                enabled=True, retry_options=cfn.RetryOptionsProperty(duration_in_seconds=300)
            ),
            data_format_conversion_configuration=cfn.DataFormatConversionConfigurationProperty(
                enabled=True,
                input_format_configuration=cfn.InputFormatConfigurationProperty(
                    deserializer=cfn.DeserializerProperty(
                        open_x_json_ser_de=cfn.OpenXJsonSerDeProperty()
                    )
                ),
                output_format_configuration=cfn.OutputFormatConfigurationProperty(
                    serializer=cfn.SerializerProperty(
                        parquet_ser_de=cfn.ParquetSerDeProperty(compression="SNAPPY")
                    )
                ),
                schema_configuration=cfn.SchemaConfigurationProperty(
                    catalog_id=Aws.ACCOUNT_ID,
                    database_name=DATABASE,
                    table_name=self.table.ref,
                    region=Aws.REGION,
                    role_arn=role.role_arn,
                    version_id="LATEST",
                ),
            ),
        )
        delivery = cfn(
            self,
            "DeliveryStream",
            delivery_stream_name=PROBE_ARCHIVE_DELIVERY_STREAM,
            delivery_stream_type="KinesisStreamAsSource",
            kinesis_stream_source_configuration=cfn.KinesisStreamSourceConfigurationProperty(
                kinesis_stream_arn=stream.stream_arn, role_arn=role.role_arn
            ),
            extended_s3_destination_configuration=destination,
        )
        # Firehose checks its role's grants when the stream is created: the policy comes first
        # (the role itself is already implied by the RoleARN references).
        delivery.node.add_dependency(role.node.find_child("DefaultPolicy"))
        acknowledge(
            delivery,
            "AwsSolutions-KDF1",
            "Firehose server-side encryption applies to Direct PUT sources only; this stream's "
            "source, probe_events, is encrypted with the stack key and the archive objects are "
            "written with the same key (S3 destination encryption).",
        )
        return delivery

    def _build_delivery_role(self, lake: DataLake, stream: kinesis.IStream) -> iam.Role:
        """Exactly what Firehose calls: read the stream, invoke the transformation, read the
        table's schema, write the two prefixes (Firehose developer guide, "Controlling access
        with Amazon Data Firehose")."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "DeliveryRole",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description="probe_archive: reads probe_events, writes probes/ of the lake.",
        )
        iam.Grant.add_to_principal(
            grantee=role, actions=KINESIS_SOURCE_ACTIONS, resource_arns=[stream.stream_arn]
        )
        iam.Grant.add_to_principal(
            grantee=role, actions=LAMBDA_ACTIONS, resource_arns=[self.transform.function_arn]
        )
        iam.Grant.add_to_principal(
            grantee=role, actions=S3_BUCKET_ACTIONS, resource_arns=[lake.bucket.bucket_arn]
        )
        iam.Grant.add_to_principal(
            grantee=role,
            actions=S3_OBJECT_ACTIONS,
            resource_arns=[
                lake.bucket.arn_for_objects(f"{prefix}/*")
                for prefix in (PROBE_ARCHIVE, ERRORS_PREFIX)
            ],
        )
        iam.Grant.add_to_principal(
            grantee=role,
            actions=GLUE_SCHEMA_ACTIONS,
            resource_arns=[
                stack.format_arn(service="glue", resource="catalog"),
                stack.format_arn(service="glue", resource="database", resource_name=DATABASE),
                stack.format_arn(
                    service="glue", resource="table", resource_name=f"{DATABASE}/{PROBE_ARCHIVE}"
                ),
            ],
        )
        # Decrypt the stream's records, encrypt the archive objects (SSE-KMS, bucket key).
        lake.key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        bucket_id = stack.get_logical_id(lake.bucket.node.default_child)  # type: ignore[arg-type]
        for prefix in (PROBE_ARCHIVE, ERRORS_PREFIX):
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]",
                f"Firehose names its objects at delivery time under {prefix}/ (dynamic "
                "partition, timestamp, random suffix); the grant is limited to that prefix.",
            )
        return role

    def _build_workgroup(self) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "WhatIfWorkGroup",
            name=WHATIF_WORKGROUP,
            description="What-if replays of the probe archive (python -m simulator whatif).",
            recursive_delete_option=True,
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=WHATIF_BYTES_SCANNED_CUTOFF,
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=(
                        f"s3://{self._lake.bucket.bucket_name}/{ATHENA_RESULTS_PREFIX}whatif/"
                    ),
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=self._lake.key.key_arn
                    ),
                ),
            ),
        )

    def _build_named_query(self, database: glue.CfnDatabase) -> athena.CfnNamedQuery:
        text = (SQL_DIR / WHATIF_SQL).read_text(encoding="utf-8")
        query = athena.CfnNamedQuery(
            self,
            "DetectIncidentsQuery",
            name=WHATIF_QUERY,
            database=DATABASE,
            work_group=self.workgroup.ref,
            description="Incidents from the probe archive, as Ingest_probe_events finds them.",
            query_string=text,
        )
        query.node.add_dependency(database)
        return query
