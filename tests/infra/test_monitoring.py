"""Alarms on every DLQ, every function's errors and throttles, and the stream's lag, each with a
runbook entry; the loop's dashboard, whose every metric is one the handlers really emit."""

import ast
import json
import re
from collections import defaultdict
from typing import Any

import pytest
from infra_lookup import FUNCTION_NAMES, function_id, function_props, of_type, referenced_id

from stacks.config import REPO_ROOT

pytestmark = [pytest.mark.xdist_group("synth"), pytest.mark.slow]

LAMBDAS = REPO_ROOT / "lambdas"
SHARED_METRICS_MODULE = LAMBDAS / "feedback_loop" / "observability.py"


def _dead_letter_queues(resources: dict) -> set[str]:
    """Queues that are some queue's redrive target or some mapping's failure destination."""
    dlqs = {
        referenced_id(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in of_type(resources, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
    }
    for mapping in of_type(resources, "AWS::Lambda::EventSourceMapping").values():
        destination = mapping["Properties"].get("DestinationConfig")
        if destination:
            dlqs.add(referenced_id(destination["OnFailure"]["Destination"]))
    return dlqs


def _alarms(resources: dict) -> list[dict]:
    return [a["Properties"] for a in of_type(resources, "AWS::CloudWatch::Alarm").values()]


def _dimension(alarm: dict, name: str):
    return next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == name), None)


def test_every_dead_letter_queue_alarms_on_its_first_message(default) -> None:
    dlqs = _dead_letter_queues(default.resources)
    assert len(dlqs) == 6
    for dlq in dlqs:
        matching = [
            a
            for a in _alarms(default.resources)
            if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
            and referenced_id(_dimension(a, "QueueName")) == dlq
        ]
        assert len(matching) == 1, dlq
        assert matching[0]["Threshold"] == 0
        assert matching[0]["ComparisonOperator"] == "GreaterThanThreshold"
        queue_name = default.resources[dlq]["Properties"]["QueueName"]
        assert matching[0]["AlarmName"] == f"FeedbackLoop-DLQ-{queue_name}"


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(default, metric) -> None:
    watched = {
        referenced_id(_dimension(a, "FunctionName"))
        for a in _alarms(default.resources)
        if a.get("MetricName") == metric
    }
    assert watched == {function_id(default.resources, n) for n in FUNCTION_NAMES}


def test_probe_stream_iterator_age_is_watched(default) -> None:
    (stream,) = of_type(default.resources, "AWS::Kinesis::Stream")
    ages = [
        a
        for a in _alarms(default.resources)
        if a.get("MetricName") == "GetRecords.IteratorAgeMilliseconds"
    ]
    assert [referenced_id(_dimension(a, "StreamName")) for a in ages] == [stream]


def test_alarms_notify_the_encrypted_topic(variant) -> None:
    (topic_id,) = of_type(variant.resources, "AWS::SNS::Topic")
    (key_id,) = of_type(variant.resources, "AWS::KMS::Key")
    topic = variant.resources[topic_id]["Properties"]
    assert referenced_id(topic["KmsMasterKeyId"]) == key_id
    for alarm in _alarms(variant.resources):
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]


def test_email_subscription_only_when_configured(default, configured) -> None:
    assert not of_type(default.resources, "AWS::SNS::Subscription")
    (subscription,) = of_type(configured.resources, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == configured.config.alarm_email


def _github_anchor(heading: str) -> str:
    """How GitHub names a heading's anchor: lower case, punctuation but - and _ dropped."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alarm_has_a_runbook_entry_its_description_links_to(default) -> None:
    runbook = (REPO_ROOT / "docs" / "OPERATIONS.md").read_text()
    headings = {_github_anchor(h): h for h in re.findall(r"^### (.+)$", runbook, re.MULTILINE)}

    for alarm in _alarms(default.resources):
        name = alarm["AlarmName"]
        link = re.search(r"Runbook: docs/OPERATIONS\.md#(\S+)$", alarm["AlarmDescription"])
        assert link, name
        assert headings.get(link.group(1), "").strip("` ") == name, name
        entry = runbook.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        for part in ("**Means**", "**Look**", "**Do**"):
            assert part in entry, f"{name}: {part}"


# --- the dashboard -------------------------------------------------------------------------------


def _dashboard(resources: dict) -> dict[str, Any]:
    """The dashboard body, tokens written as ``<logical id>``."""
    (dashboard,) = of_type(resources, "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "SubscriberFeedbackLoop"
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    return json.loads(
        "".join(part if isinstance(part, str) else f"<{referenced_id(part)}>" for part in parts)
    )


def _graphs(resources: dict) -> dict[str, list[list[Any]]]:
    return {
        w["properties"]["title"]: w["properties"]["metrics"]
        for w in _dashboard(resources)["widgets"]
        if w["type"] == "metric"
    }


def _loop_metrics(resources: dict) -> list[tuple[str, str, tuple[str, ...]]]:
    """(service, metric name, extra dimensions) of every SubscriberFeedbackLoop series."""
    found = []
    for metrics in _graphs(resources).values():
        for metric in metrics:
            if metric[0] == "SubscriberFeedbackLoop":
                dimensions = dict(zip(metric[2:-1:2], metric[3:-1:2], strict=True))
                assert set(dimensions) == {"service"}, metric
                found.append((dimensions["service"], metric[1], ()))
            elif isinstance(metric[0], dict) and "expression" in metric[0]:
                search = re.fullmatch(
                    r"SEARCH\('\{SubscriberFeedbackLoop,([\w,]+)\} MetricName=\"(\w+)\" "
                    r"service=\"(\w+)\"', 'Sum', \d+\)",
                    metric[0]["expression"],
                )
                assert search, metric
                dimensions = tuple(search.group(1).split(","))
                assert dimensions[-1] == "service"
                found.append((search.group(3), search.group(2), dimensions[:-1]))
    return found


class _Emitted(ast.NodeVisitor):
    """The metric names (and dimension names) a handler's code can emit.

    Follows what the handlers do: ``add_metric(name=...)`` / ``single_metric(name=...)`` with a
    literal, a conditional of literals, a module-level ``*_METRICS`` dict, a local variable
    holding one of those, or a parameter of a shared helper given a literal by the handler.
    """

    def __init__(self, trees: list[ast.Module]) -> None:
        self.trees = trees
        self.dicts = {
            target.id: node.value
            for tree in trees
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        self.functions = {
            node.name: node
            for tree in trees
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
        }
        self.names: dict[str, set[str]] = defaultdict(set)  # metric -> dimension names

    def values(self, node: ast.AST, scope: ast.FunctionDef | None) -> set[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return {node.value}
        if isinstance(node, ast.IfExp):
            return self.values(node.body, scope) | self.values(node.orelse, scope)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            table = self.dicts.get(node.value.id)
            return {
                v for value in (table.values if table else []) for v in self.values(value, None)
            }
        if isinstance(node, ast.Name) and scope is not None:
            assigned = [
                n.value
                for n in ast.walk(scope)
                if isinstance(n, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == node.id for t in n.targets)
            ]
            if assigned:
                return {v for value in assigned for v in self.values(value, scope)}
            return self.arguments(scope, node.id)
        return set()

    def arguments(self, function: ast.FunctionDef, parameter: str) -> set[str]:
        """Literal values callers pass to ``function``'s ``parameter``."""
        position = [a.arg for a in function.args.args].index(parameter)
        found: set[str] = set()
        for tree in self.trees:
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and _called(call) == function.name:
                    given = [k.value for k in call.keywords if k.arg == parameter]
                    given += call.args[position : position + 1]
                    for value in given:
                        found |= self.values(value, None)
        return found

    def collect(self) -> dict[str, set[str]]:
        for scope in self.functions.values():
            for node in ast.walk(scope):
                if isinstance(node, ast.With):
                    self._with(node, scope)
                elif isinstance(node, ast.Call) and _called(node) == "add_metric":
                    for keyword in (k for k in node.keywords if k.arg == "name"):
                        for name in self.values(keyword.value, scope):
                            self.names[name]
        return dict(self.names)

    def _with(self, node: ast.With, scope: ast.FunctionDef) -> None:
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call) and _called(call) == "single_metric":
                names = {
                    v for k in call.keywords if k.arg == "name" for v in self.values(k.value, scope)
                }
                dimensions = {
                    k.value.value
                    for inner in ast.walk(node)
                    if isinstance(inner, ast.Call) and _called(inner) == "add_dimension"
                    for k in inner.keywords
                    if k.arg == "name" and isinstance(k.value, ast.Constant)
                }
                for name in names:
                    self.names[name] |= dimensions


def _called(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _emitted_by(resources: dict, function_name: str) -> dict[str, set[str]]:
    """Metric -> dimension names, read from the function's handler module and the shared
    metrics helpers it calls."""
    folder = function_props(resources, function_name)["Handler"].split(".")[0]
    handler = ast.parse((LAMBDAS / folder / "app.py").read_text())
    shared = ast.parse(SHARED_METRICS_MODULE.read_text())
    called = {_called(c) for c in ast.walk(handler) if isinstance(c, ast.Call)}
    shared.body = [
        node for node in shared.body if not isinstance(node, ast.FunctionDef) or node.name in called
    ]
    return _Emitted([handler, shared]).collect()


def test_every_loop_metric_on_the_dashboard_is_emitted_by_its_handler(default) -> None:
    used = _loop_metrics(default.resources)
    assert len(used) >= 15

    missing = []
    for service, name, dimensions in used:
        emitted = _emitted_by(default.resources, service)
        if name not in emitted or not set(dimensions) <= emitted[name]:
            missing.append((service, name, dimensions, sorted(emitted)))
    assert missing == []


def test_the_emitted_metric_check_is_not_vacuous(default) -> None:
    emitted = _emitted_by(default.resources, "Collect_feedback_from_Connect")
    assert {"FeedbackRated", "FeedbackOptedOut", "FeedbackReplayed", "FeedbackRejected"} <= set(
        emitted
    )
    assert "CallsStarted" not in emitted
    assert _emitted_by(default.resources, "Ingest_probe_events")["RejectedRecords"] == {"reason"}
    assert "IncidentsWritten" in _emitted_by(default.resources, "write_incident_to_S3")
    assert "FeedbackWritten" in _emitted_by(default.resources, "write_feedback_to_S3")


def test_dashboard_shows_each_part_of_the_loop(default) -> None:
    graphs = _graphs(default.resources)
    names = {(service, name) for service, name, _ in _loop_metrics(default.resources)}

    assert {
        ("Ingest_probe_events", "ProbeRecords"),
        ("Ingest_probe_events", "Incidents"),
        ("Ingest_probe_events", "RejectedRecords"),
        ("Read_after_incident", "Decisions"),
        ("Trigger_Connect", "CallsStarted"),
        ("Trigger_Connect", "CallsThrottled"),
        ("Trigger_Connect", "CallsFailed"),
        ("Collect_feedback_from_Connect", "FeedbackRated"),
        ("Collect_feedback_from_Connect", "FeedbackNoResponse"),
    } <= names
    # Rejections and decisions: one series per reason, labelled by it
    searches = [
        m[0]
        for title in ("Rejections by reason", "Decisions by reason")
        for m in graphs[title]
        if isinstance(m[0], dict)
    ]
    assert [s["label"] for s in searches] == [
        "${PROP('Dim.reason')}",
        "${PROP('Dim.decision')} ${PROP('Dim.reason')}",
    ]


def test_dashboard_shows_every_dlq_every_functions_errors_and_the_stream_lag(default) -> None:
    graphs = _graphs(default.resources)
    depths = {m[3] for m in graphs["Dead-letter queue depths"]}
    assert depths == {f"<{dlq}>" for dlq in _dead_letter_queues(default.resources)}
    errors = {(m[1], m[3]) for m in graphs["Function errors and throttles"]}
    assert errors == {
        (metric, f"<{function_id(default.resources, name)}>")
        for name in FUNCTION_NAMES
        for metric in ("Errors", "Throttles")
    }
    (stream,) = of_type(default.resources, "AWS::Kinesis::Stream")
    lag = graphs["Stream lag (iterator age, ms)"]
    assert ("GetRecords.IteratorAgeMilliseconds", f"<{stream}>") in {(m[1], m[3]) for m in lag}
    assert {m[3] for m in lag if m[1] == "IteratorAge"} == {
        f"<{function_id(default.resources, name)}>"
        for name in ("Ingest_probe_events", "Read_after_incident", "write_feedback_to_S3")
    }
    (status,) = [w for w in _dashboard(default.resources)["widgets"] if w["type"] == "alarm"]
    assert len(status["properties"]["alarms"]) == len(_alarms(default.resources))


def test_a_cell_outage_alarms_on_its_first_signal(default) -> None:
    (alarm,) = [a for a in _alarms(default.resources) if "CellOutages" in json.dumps(a)]
    (query,) = alarm["Metrics"]
    metric = query["MetricStat"]["Metric"]
    assert (metric["Namespace"], metric["MetricName"]) == ("SubscriberFeedbackLoop", "CellOutages")
    assert _dimension(metric, "service") == "Read_after_incident"
    assert query["MetricStat"]["Stat"] == "Sum"
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_held_engagements_alarm_before_the_fifo_in_flight_quota(default) -> None:
    # SQS serves at most 120,000 in-flight messages of a FIFO queue; every held engagement
    # (deferred, paced, awaiting an answer) is in flight on engagement_trigger_queue.fifo.
    (alarm,) = [
        a
        for a in _alarms(default.resources)
        if a.get("MetricName") == "ApproximateNumberOfMessagesNotVisible"
    ]
    queue = default.resources[referenced_id(_dimension(alarm, "QueueName"))]
    assert queue["Properties"]["QueueName"] == "engagement_trigger_queue.fifo"
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    assert alarm["Statistic"] == "Maximum"
    assert 0 < alarm["Threshold"] < 120_000


def test_aggregates_out_of_order_alarm_on_the_first_record_ingest_reports(default) -> None:
    # Ingest counts the records of KPL aggregates carried under another partition key while
    # Lambda runs several batches per shard; one is enough for sessions to go missing.
    (alarm,) = [
        a for a in _alarms(default.resources) if "UnorderedAggregateRecords" in json.dumps(a)
    ]
    assert alarm["AlarmName"] == "FeedbackLoop-UnorderedAggregateRecords"
    (query,) = alarm["Metrics"]
    metric = query["MetricStat"]["Metric"]
    assert (metric["Namespace"], metric["MetricName"]) == (
        "SubscriberFeedbackLoop",
        "UnorderedAggregateRecords",
    )
    assert _dimension(metric, "service") == "Ingest_probe_events"
    assert "UnorderedAggregateRecords" in _emitted_by(default.resources, "Ingest_probe_events")
    assert query["MetricStat"]["Stat"] == "Sum"
    assert alarm["Threshold"] == 0
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["TreatMissingData"] == "notBreaching"
