"""The data lake: the stack's customer-managed key, the lake bucket and its access-log bucket."""

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from feedback_loop.lake import PREFIXES
from stacks.config import FeedbackLoopConfig
from stacks.nag import acknowledge, acknowledge_grantee, logical_id

ATHENA_RESULTS_PREFIX = "athena-results/"
ATHENA_RESULTS_DAYS = 30
NONCURRENT_VERSION_DAYS = 30


class DataLake(Construct):
    """KMS key (shared by every encrypted resource), lake bucket and pseudonymisation secret."""

    prefixes = PREFIXES

    def __init__(self, scope: Construct, construct_id: str, *, config: FeedbackLoopConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = self._build_key()
        self.access_logs = self._build_access_logs_bucket(config)
        self.bucket = self._build_lake_bucket(config)
        self.pseudonym_secret = self._build_pseudonym_secret()

    def _build_key(self) -> kms.Key:
        key = kms.Key(
            self,
            "Key",
            alias="alias/subscriber-feedback-loop",
            description="Subscriber Feedback Loop: lake, tables, queues, stream, secret, logs.",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        stack = Stack.of(self)
        # CloudWatch Logs (the Lambda and Firehose log groups) encrypt with the key. No
        # kms:DescribeKey here: it carries no encryption context, so under this condition it
        # could never be allowed (the IAM catalogue check, tests/infra/test_iam_catalogue.py).
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        # CloudWatch alarms publish to the encrypted SNS topic.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        return key

    def _build_access_logs_bucket(self, config: FeedbackLoopConfig) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging cannot deliver to SSE-KMS buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(config.lake_retention_days),
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            bucket,
            "AwsSolutions-S1",
            "This is the server access log bucket of the lake; logging it to itself would "
            "loop and a third bucket would only move the finding.",
        )
        return bucket

    def _build_lake_bucket(self, config: FeedbackLoopConfig) -> s3.Bucket:
        return s3.Bucket(
            self,
            "Lake",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="lake/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="lake-retention",
                    expiration=Duration.days(config.lake_retention_days),
                    noncurrent_version_expiration=Duration.days(NONCURRENT_VERSION_DAYS),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
                s3.LifecycleRule(
                    id="athena-results",
                    prefix=ATHENA_RESULTS_PREFIX,
                    expiration=Duration.days(ATHENA_RESULTS_DAYS),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _build_pseudonym_secret(self) -> secretsmanager.Secret:
        secret = secretsmanager.Secret(
            self,
            "PseudonymKey",
            description="HMAC key that turns phone numbers into subscriber_id in the lake.",
            encryption_key=self.key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "The pseudonymisation key must stay stable: rotating it would split every "
            "subscriber's lake history into two unrelated subscriber_ids.",
        )
        return secret

    def object_arn(self, prefix: str) -> str:
        """ARN of every object under one lake prefix, for prefix-scoped grants."""
        if prefix not in self.prefixes:
            raise ValueError(f"unknown lake prefix {prefix!r}")
        return self.bucket.arn_for_objects(f"{prefix}/*")

    def grant_write(self, grantee: iam.IGrantable, *prefixes: str) -> None:
        """``s3:PutObject`` under ``prefixes`` only, plus the KMS calls SSE-KMS needs."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["s3:PutObject"],
            resource_arns=[self.object_arn(prefix) for prefix in prefixes],
        )
        self.key.grant(grantee, "kms:GenerateDataKey", "kms:Decrypt")
        self.acknowledge_prefixes(grantee, prefixes)

    def acknowledge_prefixes(self, grantee: iam.IGrantable, prefixes: Sequence[str]) -> None:
        """Object keys are generated per batch, so a grant can only name the prefix."""
        bucket_id = logical_id(self.bucket)
        for prefix in prefixes:
            acknowledge_grantee(
                grantee,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}/*]",
                f"Lake objects are named {prefix}/dt=<date>/<batch uuid>.jsonl.gz at run time; "
                f"the grant is limited to the {prefix}/ prefix.",
            )

    def grant_pseudonym_read(self, grantee: iam.IGrantable) -> None:
        """``secretsmanager:GetSecretValue`` on the pseudonymisation key, nothing more."""
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["secretsmanager:GetSecretValue"],
            resource_arns=[self.pseudonym_secret.secret_arn],
        )
        self.key.grant(grantee, "kms:Decrypt")
