"""One factory for the defaults all six functions share.

Runtime, architecture, Powertools layer, tracing, an encrypted log group with the
configured retention and a role of its own: every function gets them the same way,
so each construct only states what differs (name, handler folder, environment, grants).
"""

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import ArnFormat, CfnResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from feedback_loop.contract import METRICS_NAMESPACE
from stacks.config import REPO_ROOT, FeedbackLoopConfig
from stacks.nag import acknowledge, logical_id

LAMBDA_SOURCE = REPO_ROOT / "lambdas"
POWERTOOLS_LAYER = "AWSLambdaPowertoolsPythonV3-python312-arm64"
POWERTOOLS_LAYER_VERSION = 27
POWERTOOLS_ACCOUNT = "017000801446"
DEFAULT_TIMEOUT = Duration.seconds(60)
ASSET_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache", "tests"]

_R = logs.RetentionDays
# config.LOG_RETENTION_DAYS -> the CDK enum member with that many days.
RETENTION = {
    1: _R.ONE_DAY, 3: _R.THREE_DAYS, 5: _R.FIVE_DAYS, 7: _R.ONE_WEEK, 14: _R.TWO_WEEKS,
    30: _R.ONE_MONTH, 60: _R.TWO_MONTHS, 90: _R.THREE_MONTHS, 120: _R.FOUR_MONTHS,
    150: _R.FIVE_MONTHS, 180: _R.SIX_MONTHS, 365: _R.ONE_YEAR, 400: _R.THIRTEEN_MONTHS,
    545: _R.EIGHTEEN_MONTHS, 731: _R.TWO_YEARS, 1096: _R.THREE_YEARS, 1827: _R.FIVE_YEARS,
    2192: _R.SIX_YEARS, 2557: _R.SEVEN_YEARS, 2922: _R.EIGHT_YEARS, 3288: _R.NINE_YEARS,
    3653: _R.TEN_YEARS,
}  # fmt: skip

# Reasons given with the cdk-nag acknowledgements every function needs.
XRAY_REASON = (
    "xray:PutTraceSegments/PutTelemetryRecords (and, for the table-stream consumer, "
    "dynamodb:ListStreams) support no resource-level permissions."
)
RUNTIME_REASON = (
    "Pinned to Python 3.12: the public Powertools v3 layer used is the python312-arm64 build, "
    "and the handlers are tested on that pair."
)


class FunctionFactory(Construct):
    """Creates the stack's Lambda functions with the shared defaults."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: FeedbackLoopConfig,
        key: kms.IKey,
        source: Path = LAMBDA_SOURCE,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._key = key
        self._code = lambda_.Code.from_asset(str(source), exclude=ASSET_EXCLUDES)
        self._layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            Stack.of(self).format_arn(
                service="lambda",
                account=POWERTOOLS_ACCOUNT,
                resource="layer",
                resource_name=f"{POWERTOOLS_LAYER}:{POWERTOOLS_LAYER_VERSION}",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            ),
        )

    def create(
        self,
        scope: Construct,
        *,
        name: str,
        folder: str,
        environment: Mapping[str, str],
        timeout: Duration = DEFAULT_TIMEOUT,
        memory_size: int = 256,
        invoked_by: str = "its event source mapping",
    ) -> lambda_.Function:
        """A function ``name`` running ``lambdas/<folder>/app.py:handler``.

        ``invoked_by`` explains, in the cdk-nag acknowledgements, why the function needs
        no asynchronous-invocation DLQ or failure destination.
        """
        log_group = logs.LogGroup(
            scope,
            f"{name}Logs",
            log_group_name=f"/aws/lambda/{name}",
            retention=RETENTION[self._config.log_retention_days],
            encryption_key=self._key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(
            scope,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {name}: only what its handler calls.",
        )
        log_group.grant(role, "logs:CreateLogStream", "logs:PutLogEvents")
        function = lambda_.Function(
            scope,
            name,
            function_name=name,
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"{folder}.app.handler",
            code=self._code,
            layers=[self._layer],
            role=role,
            timeout=timeout,
            memory_size=memory_size,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                "LOG_LEVEL": "INFO",
                "POLICY_JSON": self._config.policy.to_json(),
                **environment,
            },
        )
        self._depend_on_policy_only(function, role)
        self._acknowledge(function, role, invoked_by)
        return function

    @staticmethod
    def _depend_on_policy_only(function: lambda_.Function, role: iam.Role) -> None:
        """Keep the DependsOn that matters (the role's policy must exist before the function
        runs) and drop the one on the role itself, which ``Role: !GetAtt`` already implies
        (cfn-lint W3005)."""
        cfn_function = function.node.default_child
        if not isinstance(cfn_function, CfnResource):
            raise TypeError(f"{function.node.path} has no CloudFormation resource")
        cfn_function.add_override("DependsOn", [logical_id(role.node.find_child("DefaultPolicy"))])

    @staticmethod
    def _acknowledge(function: lambda_.Function, role: iam.Role, invoked_by: str) -> None:
        policy = role.node.find_child("DefaultPolicy")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::*]", XRAY_REASON)
        for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion"):
            acknowledge(function, rule, RUNTIME_REASON)
        for rule in ("Serverless-LambdaDLQ", "Serverless-LambdaAsyncFailureDestination"):
            acknowledge(
                function,
                rule,
                f"Invoked synchronously by {invoked_by}, never asynchronously; failed "
                "records go to that source's dead-letter queue or failure destination.",
            )
