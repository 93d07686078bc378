"""Alarms on every DLQ, every function's errors and throttles, and the stream's lag."""

import pytest
from infra_lookup import FUNCTION_NAMES, function_id, of_type, referenced_id

pytestmark = pytest.mark.xdist_group("synth")


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
            if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
            and referenced_id(_dimension(a, "QueueName")) == dlq
        ]
        assert len(matching) == 1, dlq
        assert matching[0]["Threshold"] == 0
        assert matching[0]["ComparisonOperator"] == "GreaterThanThreshold"


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_function_alarms_on_errors_and_throttles(default, metric) -> None:
    watched = {
        referenced_id(_dimension(a, "FunctionName"))
        for a in _alarms(default.resources)
        if a["MetricName"] == metric
    }
    assert watched == {function_id(default.resources, n) for n in FUNCTION_NAMES}


def test_probe_stream_iterator_age_is_watched(default) -> None:
    (stream,) = of_type(default.resources, "AWS::Kinesis::Stream")
    ages = [
        a
        for a in _alarms(default.resources)
        if a["MetricName"] == "GetRecords.IteratorAgeMilliseconds"
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
