"""Build the CDK app in-process: used by ``app.py``, the infra tests and the local twin."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from stacks.analytics import SQL_DIR
from stacks.config import cdk_json_context, config_from_context
from stacks.contact_centre import FLOW_FILE
from stacks.feedback_loop_stack import STACK_NAME, FeedbackLoopStack


def build_app(
    overrides: Mapping[str, Any] | None = None,
    *,
    outdir: str | None = None,
    checks: bool = True,
    flow_file: Path = FLOW_FILE,
    sql_dir: Path = SQL_DIR,
) -> cdk.App:
    """An app holding the ``SubscriberFeedbackLoop`` stack, ready to ``synth()``.

    Config comes from ``cdk.json`` (or the CLI's context), then ``-c key=value``, then
    ``overrides`` (a twin scenario's ``config``). ``checks`` attaches the cdk-nag packs,
    which make ``synth()`` fail on any unacknowledged finding.
    """
    app = cdk.App(outdir=outdir, context=cdk_json_context())
    config, _ = config_from_context(app.node, overrides)
    FeedbackLoopStack(app, STACK_NAME, config=config, flow_file=flow_file, sql_dir=sql_dir)
    if checks:
        cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app


def synth_template(overrides: Mapping[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
    """The synthesized CloudFormation template of the stack, as a dict."""
    assembly = build_app(overrides, **kwargs).synth()
    return assembly.get_stack_by_name(STACK_NAME).template
