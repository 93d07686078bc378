"""Wiring read from the template: which function consumes which source, and who calls the rest.

Every ``AWS::Lambda::EventSourceMapping`` becomes a poller (SQS, Kinesis or DynamoDB
stream, by the source it names) after the check Lambda makes when the mapping is
created: the function's role may poll the source and send to its on-failure destination.
The contact flow's ``InvokeLambdaFunction`` blocks name the function Connect invokes. A
function with neither is a wiring error: nothing would ever run it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from simulator.clock import SimClock
from simulator.event_sources import Poller
from simulator.firehose import DeliveryStream, guarded_trim
from simulator.iam import IamModel, check_event_source_permissions
from simulator.moto_internals import (
    moto_kinesis_latest,
    moto_kinesis_trim,
    moto_queue_depth,
    moto_stream_latest,
)
from simulator.provision import ContactFlowSpec, Estate
from simulator.runtime import Runtime
from simulator.sqs_poller import SqsPoller, VisibilityChanges
from simulator.stream_pollers import DynamoDbStreamPoller, KinesisPoller
from simulator.template import Template, WiringError


def contact_flow(estate: Estate) -> ContactFlowSpec:
    """The one contact flow of the template."""
    if len(estate.contact_flows) != 1:
        raise WiringError(
            f"expected one AWS::Connect::ContactFlow, found {len(estate.contact_flows)}"
        )
    return estate.contact_flows[0]


def flow_target(flow: ContactFlowSpec, runtime: Runtime) -> str:
    """The function the flow invokes (exactly one, and one of the template's)."""
    targets = {
        action["Parameters"]["LambdaFunctionARN"]
        for action in flow.content.get("Actions", [])
        if action.get("Type") == "InvokeLambdaFunction"
    }
    if len(targets) != 1:
        raise WiringError(f"the contact flow must invoke one function, it invokes {targets}")
    (target,) = targets
    runtime.function(target)  # fails loudly when the ARN is not a template function
    return target


def sns_subscribers(template: Template) -> list[tuple[str, str]]:
    """``(topic logical id, function name)`` of each Lambda subscription of an SNS topic
    (the replies topic of the second channel, when the template has one)."""
    found = []
    for _, properties in template.of_type("AWS::SNS::Subscription"):
        if properties.get("Protocol") != "lambda":
            continue
        endpoint, topic = properties.get("Endpoint"), properties.get("TopicArn")
        if not (isinstance(endpoint, dict) and "Fn::GetAtt" in endpoint):
            raise WiringError(f"an SNS subscription's Endpoint must name a function: {endpoint}")
        if not (isinstance(topic, dict) and "Ref" in topic):
            raise WiringError(f"an SNS subscription's TopicArn must reference a topic: {topic}")
        function = template.resources[endpoint["Fn::GetAtt"][0]]["Properties"]["FunctionName"]
        found.append((topic["Ref"], str(function)))
    return found


def build_pollers(
    estate: Estate,
    runtime: Runtime,
    clock: SimClock,
    iam: IamModel,
    clients: Callable[[str], Any],
    duplicate: Callable[[], bool],
    visibility: VisibilityChanges,
    deliveries: Sequence[DeliveryStream] = (),
) -> list[Poller]:
    """One poller per event source mapping, after Lambda's permission check.

    Firehose delivery streams read the probe stream too: they come first in the list, and
    the Lambda poller's early trim spares what they have not read (firehose.py)."""
    region = runtime.region
    sqs = clients("sqs")
    pollers: list[Poller] = [*deliveries]  # type: ignore[list-item]
    for spec in estate.event_sources:
        queue = estate.queue_by_arn(spec.source_arn)
        stream = next((s for s in estate.streams.values() if s.arn == spec.source_arn), None)
        if queue is not None:
            check_event_source_permissions(iam, spec, "sqs")
            pollers.append(
                SqsPoller(spec, queue, runtime, clock, sqs, moto_queue_depth, duplicate, visibility)
            )
        elif stream is not None:
            check_event_source_permissions(iam, spec, "kinesis")
            pollers.append(
                KinesisPoller(
                    spec,
                    runtime,
                    clock,
                    sqs,
                    clients("kinesis"),
                    stream.name,
                    moto_kinesis_latest(region),
                    guarded_trim(moto_kinesis_trim(region), deliveries),
                )
            )
        else:
            check_event_source_permissions(iam, spec, "dynamodb")
            pollers.append(
                DynamoDbStreamPoller(
                    spec,
                    runtime,
                    clock,
                    sqs,
                    clients("dynamodbstreams"),
                    moto_stream_latest(region),
                )
            )
    return pollers


def check_every_function_runs(
    runtime: Runtime, pollers: list[Poller], flows: list[str], topics: Sequence[str] = ()
) -> None:
    """A function no source triggers, no flow invokes and no topic notifies is a wiring error."""
    triggered = {p.spec.function_name for p in pollers} | set(topics)
    called = {runtime.function(target).spec.name for target in flows}
    orphans = sorted(set(runtime.functions) - triggered - called)
    if orphans:
        raise WiringError(f"functions with no event source and no caller: {orphans}")


def inject_clock(runtime: Runtime) -> None:
    """A handler exposing an injectable ``clock`` (its event has no time) gets the twin's:
    the simulated time of the invocation that reads it."""

    def now() -> datetime:
        return datetime.fromtimestamp(runtime.now(), UTC)

    for function in runtime.functions.values():
        module = function.modules.get(function.spec.handler.rpartition(".")[0])
        if module is not None and callable(getattr(module, "clock", None)):
            module.clock = now
