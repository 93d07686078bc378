"""Read_after_incident under moto with a real DynamoDB stream record (NEW_AND_OLD_IMAGES)."""

import copy
import json
from collections import Counter

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from feedback_loop.episodes import Episode
from feedback_loop.ids import engagement_id, incident_id
from feedback_loop.messages import EngagementMessage, decode
from read_after_incident import app
from tests.integration.conftest import SendFaults

_serialize = TypeSerializer().serialize
_deserialize = TypeDeserializer().deserialize


def images(record):
    return record["dynamodb"]["OldImage"], record["dynamodb"]["NewImage"]


def stored_incident(phone, kpi, time, sessions, failures):
    record_id = f"shardId-000000000000:{time}"
    return _serialize(
        {
            "IncidentId": incident_id(phone, kpi, time, record_id),
            "RecordId": record_id,
            "WindowMinutes": 60,
            "EventType": kpi,
            "Timestamp": time,
            "Cell": "LDN-0042",
            "Device": "Pixel 8",
            "Vendor": "VendorA",
            "FailureRate": str(failures / sessions),
            "Sessions": sessions,
            "Failures": failures,
        }
    )


def with_new_incidents(template, *incidents, sequence="111100000000012345678999"):
    """A stream record whose NEW image was written by an ingest that added ``incidents``."""
    record = copy.deepcopy(template)
    _, new = images(record)
    new["NewIncidents"] = {"L": list(incidents)}
    record["dynamodb"]["SequenceNumber"] = sequence
    return record


def phone_of(record):
    return record["dynamodb"]["Keys"]["PhoneNumber"]["S"]


def put_profile(aws, record, **extra):
    """The table holds the NEW image, as it does when the stream record is delivered."""
    item = {**images(record)[1], **{k: _serialize(v) for k, v in extra.items()}}
    aws.dynamodb.put_item(TableName="Subscriber_table", Item=item)


def profile(aws, phone):
    item = aws.dynamodb.get_item(TableName="Subscriber_table", Key={"PhoneNumber": {"S": phone}})
    return {k: _deserialize(v) for k, v in item["Item"].items()}


class Calls:
    def __init__(self):
        self.calls: Counter[str] = Counter()
        deps = app._dependencies()
        for client in (deps.contacts._dynamodb, deps.update_queue._sqs):
            client.meta.events.register("before-parameter-build.*.*", self._count)

    def _count(self, model, **kwargs):
        self.calls[f"{model.service_model.service_name}.{model.name}"] += 1


def engagements(aws, queue):
    return [(m, decode(m["Body"], EngagementMessage)) for m in aws.messages(queue)]


def test_an_above_threshold_incident_is_engaged_on_both_queues(aws, event, lambda_context):
    stream = event("dynamodb_stream_incident.json")
    [record] = stream["Records"]
    put_profile(aws, record)
    phone = phone_of(record)
    newest = _deserialize(images(record)[1]["NewIncidents"])[-1]
    calls = Calls()

    response = app.handler(stream, lambda_context)

    assert response == {"batchItemFailures": []}
    [(raw, trigger)] = engagements(aws, "engagement_trigger_queue.fifo")
    expected_id = engagement_id(
        phone, newest["EventType"], newest["Timestamp"], newest["IncidentId"]
    )
    assert (trigger.decision, trigger.engagement_id) == ("engage", expected_id)
    assert raw["Attributes"]["MessageGroupId"] == phone
    assert raw["Attributes"]["MessageDeduplicationId"] == expected_id
    [(_, update)] = engagements(aws, "engagement_update_queue")
    assert update == trigger
    stored = profile(aws, phone)
    assert stored["LastChange"] == "engagement"
    episode = Episode.from_item(stored["Episode"], phone)
    assert (episode.engagement_id, episode.status) == (expected_id, "open")
    # No read: the stream image is enough. One write for the episode, one for the cell's count.
    assert calls.calls["dynamodb.GetItem"] == 0
    assert calls.calls["dynamodb.UpdateItem"] == 2


def test_a_below_threshold_incident_sends_nothing(aws, event, lambda_context):
    template = event("dynamodb_stream_incident.json")["Records"][0]
    phone = phone_of(template)
    record = with_new_incidents(
        template, stored_incident(phone, "CALL_DROP", "2026-11-25T10:30:00Z", 25, 4)
    )
    put_profile(aws, record)

    assert app.handler({"Records": [record]}, lambda_context) == {"batchItemFailures": []}

    assert aws.messages("engagement_update_queue") == []
    assert aws.messages("engagement_trigger_queue.fifo") == []
    assert "Episode" not in profile(aws, phone)


def test_an_opted_out_subscriber_gets_a_suppress_decision_and_no_call(aws, event, lambda_context):
    stream = event("dynamodb_stream_incident.json")
    for image in images(stream["Records"][0]):
        image["OptedOut"] = {"BOOL": True}
    put_profile(aws, stream["Records"][0])

    app.handler(stream, lambda_context)

    [(_, update)] = engagements(aws, "engagement_update_queue")
    assert (update.decision, update.reason) == ("suppress", "opted_out")
    assert aws.messages("engagement_trigger_queue.fifo") == []


def test_two_problems_within_minutes_become_one_engagement_asking_about_both(
    aws, event, lambda_context
):
    template = event("dynamodb_stream_incident.json")["Records"][0]
    phone = phone_of(template)
    first = stored_incident(phone, "LOW_BITRATE", "2026-11-25T10:16:00Z", 10, 2)
    second = stored_incident(phone, "VIDEO_STALLING", "2026-11-25T10:20:00Z", 10, 2)
    record = with_new_incidents(template, second, first)
    put_profile(aws, record)

    app.handler({"Records": [record]}, lambda_context)

    [(raw, trigger)] = engagements(aws, "engagement_trigger_queue.fifo")
    assert (trigger.incident_type, raw["Attributes"]["MessageGroupId"]) == ("LOW_BITRATE", phone)
    decisions = [
        (m.decision, m.incident_type) for _, m in engagements(aws, "engagement_update_queue")
    ]
    assert decisions == [("engage", "LOW_BITRATE"), ("merged", "VIDEO_STALLING")]
    episode = Episode.from_item(profile(aws, phone)["Episode"], phone)
    assert episode.incident_types == ("LOW_BITRATE", "VIDEO_STALLING")


def test_a_concurrent_engagement_wins_and_this_incident_joins_its_episode(
    aws, event, lambda_context
):
    # Given another delivery already opened an episode, after this image was captured
    stream = event("dynamodb_stream_incident.json")
    record = stream["Records"][0]
    other = {
        "EngagementId": "e" * 32,
        "IncidentId": "i" * 32,
        "IncidentType": "CALL_QUALITY",
        "IncidentTime": "2026-11-25T10:14:00Z",
        "Cell": "LDN-0042",
        "IncidentTypes": ["CALL_QUALITY"],
        "IncidentKeys": ["i" * 16],
        "Status": "open",
        "Attempts": 0,
    }
    put_profile(aws, record, Episode=other, ContactVersion=1)

    response = app.handler(stream, lambda_context)

    # Then this delivery re-reads and joins it: no second engagement for the subscriber
    assert response == {"batchItemFailures": []}
    [(_, update)] = engagements(aws, "engagement_update_queue")
    assert (update.decision, update.reason, update.engagement_id) == (
        "merged",
        "same_episode",
        "e" * 32,
    )
    assert aws.messages("engagement_trigger_queue.fifo") == []
    stored = profile(aws, phone_of(record))
    assert Episode.from_item(stored["Episode"], phone_of(record)).incident_types == (
        "CALL_QUALITY",
        "CALL_DROP",
    )
    assert stored["ContactVersion"] == 2


def test_a_redelivered_record_resends_the_same_engagement(aws, event, lambda_context):
    stream = event("dynamodb_stream_incident.json")
    put_profile(aws, stream["Records"][0])
    app.handler(stream, lambda_context)
    first = engagements(aws, "engagement_update_queue")

    response = app.handler(event("dynamodb_stream_incident.json"), lambda_context)

    assert response == {"batchItemFailures": []}
    again = engagements(aws, "engagement_update_queue")
    assert [m for _, m in again] == [m for _, m in first]
    assert again[0][1].decision == "engage"
    assert profile(aws, phone_of(stream["Records"][0]))["ContactVersion"] == 1


def test_a_malformed_image_is_dropped_and_its_neighbour_is_processed(aws, event, lambda_context):
    good = event("dynamodb_stream_incident.json")["Records"][0]
    bad = copy.deepcopy(good)
    bad["dynamodb"]["SequenceNumber"] = "111100000000012345678800"
    del images(bad)[1]["NewIncidents"]["L"][-1]["M"]["Sessions"]
    put_profile(aws, good)

    response = app.handler({"Records": [bad, good]}, lambda_context)

    assert response == {"batchItemFailures": []}
    assert len(engagements(aws, "engagement_trigger_queue.fifo")) == 1


def test_changes_other_than_incidents_are_ignored(aws, event, lambda_context):
    stream = event("dynamodb_stream_incident.json")
    images(stream["Records"][0])[1]["LastChange"] = {"S": "feedback"}
    put_profile(aws, stream["Records"][0])

    assert app.handler(stream, lambda_context) == {"batchItemFailures": []}
    assert aws.messages("engagement_update_queue") == []


def test_a_failed_write_fails_that_record_and_the_ones_after_it(aws, event, lambda_context):
    template = event("dynamodb_stream_incident.json")["Records"][0]
    phone = phone_of(template)
    other = copy.deepcopy(template)
    other_phone = "+447700900456"
    for image in images(other):
        image["PhoneNumber"] = {"S": other_phone}
    other["dynamodb"]["Keys"]["PhoneNumber"]["S"] = other_phone
    other["dynamodb"]["SequenceNumber"] = "111100000000012345679999"
    put_profile(aws, template)
    put_profile(aws, other)
    dynamodb = app._dependencies().contacts._dynamodb

    def throttle(params, **kwargs):
        if params["Key"]["PhoneNumber"]["S"] == phone:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "U")

    dynamodb.meta.events.register("before-parameter-build.dynamodb.UpdateItem", throttle)

    response = app.handler({"Records": [template, other]}, lambda_context)

    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        template["dynamodb"]["SequenceNumber"],
        other["dynamodb"]["SequenceNumber"],
    ]
    assert aws.messages("engagement_trigger_queue.fifo") == []
    assert "Episode" not in profile(aws, other_phone)


def _second_subscriber(template, phone="+447700900456", sequence="111100000000012345679999"):
    other = copy.deepcopy(template)
    for image in images(other):
        image["PhoneNumber"] = {"S": phone}
    other["dynamodb"]["Keys"]["PhoneNumber"]["S"] = phone
    other["dynamodb"]["SequenceNumber"] = sequence
    return other


def test_a_refused_trigger_message_fails_its_record_and_the_later_ones_and_the_retry_calls_once(
    aws, event, lambda_context
):
    # Given two subscribers' records and SQS refusing the first one's trigger message
    first = event("dynamodb_stream_incident.json")["Records"][0]
    second = _second_subscriber(first)
    put_profile(aws, first)
    put_profile(aws, second)
    faults = SendFaults(app._dependencies().trigger_queue._sqs)
    faults.refuse = lambda entry: entry.get("MessageGroupId") == phone_of(first)

    # When
    response = app.handler({"Records": [first, second]}, lambda_context)

    # Then Lambda retries from the first record (stream order), both records included
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        first["dynamodb"]["SequenceNumber"],
        second["dynamodb"]["SequenceNumber"],
    ]

    # When the retry arrives with SQS healthy again
    faults.refuse = lambda entry: False
    assert app.handler({"Records": [first, second]}, lambda_context) == {"batchItemFailures": []}

    # Then each subscriber has exactly one engagement on the trigger queue (FIFO dedup on the
    # engagement id absorbs the resend of the second one) and one engage decision recorded
    triggers = engagements(aws, "engagement_trigger_queue.fifo")
    assert sorted(raw["Attributes"]["MessageGroupId"] for raw, _ in triggers) == sorted(
        [phone_of(first), phone_of(second)]
    )
    assert profile(aws, phone_of(first))["ContactVersion"] == 1


def test_a_failed_send_call_fails_every_record_whose_messages_were_in_it(
    aws, event, lambda_context
):
    first = event("dynamodb_stream_incident.json")["Records"][0]
    second = _second_subscriber(first)
    put_profile(aws, first)
    put_profile(aws, second)
    SendFaults(app._dependencies().update_queue._sqs).failing_calls = 1

    response = app.handler({"Records": [first, second]}, lambda_context)

    assert len(response["batchItemFailures"]) == 2
    assert aws.messages("engagement_update_queue") == []


def test_no_subscriber_is_triggered_whose_decision_could_not_be_recorded(
    aws, event, lambda_context
):
    # Given SQS refusing the first subscriber's decision for the lake
    first = event("dynamodb_stream_incident.json")["Records"][0]
    second = _second_subscriber(first)
    put_profile(aws, first)
    put_profile(aws, second)
    faults = SendFaults(app._dependencies().update_queue._sqs)
    faults.refuse = lambda entry: phone_of(first) in entry["MessageBody"]

    # When
    response = app.handler({"Records": [first, second]}, lambda_context)

    # Then the record fails and nobody is queued for a call it could not record: a call
    # always has its engage decision in the lake (or its record waits in the DLQ)
    assert response["batchItemFailures"]
    triggers = engagements(aws, "engagement_trigger_queue.fifo")
    assert [raw["Attributes"]["MessageGroupId"] for raw, _ in triggers] == [phone_of(second)]


def _cell_records(template, phones, minute=10):
    """One stream record per subscriber, each with an above-threshold drop on LDN-0042."""
    records = []
    for n, phone in enumerate(phones):
        record = copy.deepcopy(template)
        record["dynamodb"]["Keys"]["PhoneNumber"] = {"S": phone}
        _, new = images(record)
        new["PhoneNumber"] = {"S": phone}
        time = f"2026-11-25T10:{minute:02d}:{n % 60:02d}Z"
        records.append(
            with_new_incidents(
                record,
                stored_incident(phone, "CALL_DROP", time, 8, 4),
                sequence=f"2222000000000{n:011d}",
            )
        )
    return records


def _outage_signals(aws):
    bodies = [json.loads(m["Body"]) for m in aws.messages("engagement_update_queue")]
    return [body for body in bodies if body["schema"] == "outage"]


def test_a_cell_outage_is_signalled_once_however_often_its_subscribers_are_counted(
    aws, event, lambda_context
):
    template = event("dynamodb_stream_incident.json")["Records"][0]
    phones = [f"+4477009{n:05d}" for n in range(25)]
    records = _cell_records(template, phones)
    for record in records:
        put_profile(aws, record)

    first = app.handler({"Records": records[:15]}, lambda_context)
    assert first == {"batchItemFailures": []} and _outage_signals(aws) == []
    app.handler({"Records": records[15:]}, lambda_context)
    [signal] = _outage_signals(aws)
    # The whole batch is replayed (a retried stream batch): counted again, signalled no more.
    app.handler({"Records": records}, lambda_context)

    assert _outage_signals(aws) == []
    assert (signal["cell"], signal["window_start"]) == ("LDN-0042", "2026-11-25T10:00:00Z")
    assert signal["subscribers"] >= signal["min_subscribers"] == 20
    item = aws.dynamodb.get_item(
        TableName="Contact_state",
        Key={"Key": {"S": "cell#LDN-0042"}, "Window": {"S": "2026-11-25T10:00:00Z"}},
    )["Item"]
    assert len(item["Subscribers"]["SS"]) == 25 and "Declared" in item

    # Later subscribers of the declared outage are decided as before but not added: the
    # item stays the size it had, so every later count costs what the first ones did.
    later = _cell_records(template, [f"+4477009{n:05d}" for n in range(25, 60)])
    for record in later:
        put_profile(aws, record)
    assert app.handler({"Records": later}, lambda_context) == {"batchItemFailures": []}
    assert _outage_signals(aws) == []
    after = aws.dynamodb.get_item(
        TableName="Contact_state",
        Key={"Key": {"S": "cell#LDN-0042"}, "Window": {"S": "2026-11-25T10:00:00Z"}},
    )["Item"]
    assert after["Subscribers"] == item["Subscribers"]


def _thin_records(template, cells):
    """One subscriber per cell in ``cells``, each with a drop rate of 1.0 over 2 sessions."""
    records = []
    for n, cell in enumerate(cells):
        phone = f"+4477009005{n:02d}"
        record = copy.deepcopy(template)
        record["dynamodb"]["Keys"]["PhoneNumber"] = {"S": phone}
        images(record)[1]["PhoneNumber"] = {"S": phone}
        incident = stored_incident(phone, "CALL_DROP", f"2026-11-25T10:20:{n:02d}Z", 2, 2)
        incident["M"]["Cell"] = {"S": cell}
        records.append(with_new_incidents(record, incident, sequence=f"3333000000000{n:011d}"))
    return records


def _update_bodies(aws):
    """The update queue's messages by schema (receiving hides them: read once)."""
    bodies: dict[str, list] = {}
    for message in aws.messages("engagement_update_queue"):
        body = json.loads(message["Body"])
        bodies.setdefault(body["schema"], []).append(body)
    return bodies


def test_incidents_without_enough_sessions_are_counted_per_cell_in_one_message(
    aws, event, lambda_context
):
    # Given three subscribers on LDN-0042 and one on LDN-0007, each above threshold on two
    # sessions (min_sessions is 3), and one subscriber with enough sessions
    template = event("dynamodb_stream_incident.json")["Records"][0]
    thin = _thin_records(template, ["LDN-0042", "LDN-0042", "LDN-0007", "LDN-0042"])
    for record in [template, *thin]:
        put_profile(aws, record)

    # When
    response = app.handler({"Records": [template, *thin]}, lambda_context)

    # Then the engaged incident has its own decision and trigger, while the four thin ones
    # travel as counts in a single message: no message and no record each
    assert response == {"batchItemFailures": []}
    sent = _update_bodies(aws)
    decisions = [decode(body, EngagementMessage) for body in sent["engagement"]]
    assert [(d.decision, d.reason) for d in decisions] == [("engage", "above_threshold")]
    [message] = sent["decision_counts"]
    per_cell: Counter[tuple[str, str]] = Counter()
    for c in message["counts"]:
        per_cell[(c["cell"], c["incident_type"])] += c["incidents"]
    assert per_cell == {("LDN-0042", "CALL_DROP"): 3, ("LDN-0007", "CALL_DROP"): 1}
    assert {(c["decision"], c["reason"]) for c in message["counts"]} == {
        ("suppress", "min_sessions")
    }
    assert len({c["count_id"] for c in message["counts"]}) == len(message["counts"])
    assert len(engagements(aws, "engagement_trigger_queue.fifo")) == 1


def test_a_refused_count_is_retried_and_each_thin_incident_is_counted_once(
    aws, event, lambda_context
):
    # Given SQS refusing the batch's counts the first time
    template = event("dynamodb_stream_incident.json")["Records"][0]
    thin = _thin_records(template, ["LDN-0042", "LDN-0042"])
    for record in [template, *thin]:
        put_profile(aws, record)
    faults = SendFaults(app._dependencies().update_queue._sqs)
    faults.refuse = lambda entry: '"decision_counts"' in entry["MessageBody"]

    # When
    response = app.handler({"Records": [template, *thin]}, lambda_context)

    # Then Lambda retries from the first counted record; the engaged one before it is done
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert failed == [r["dynamodb"]["SequenceNumber"] for r in thin]
    assert "decision_counts" not in _update_bodies(aws)

    # When the retry (the failed records only) arrives with SQS healthy again
    faults.refuse = lambda entry: False
    assert app.handler({"Records": thin}, lambda_context) == {"batchItemFailures": []}

    # Then both thin incidents are counted, once
    [message] = _update_bodies(aws)["decision_counts"]
    assert [(c["cell"], c["incidents"]) for c in message["counts"]] == [("LDN-0042", 1)] * 2


def test_a_record_retried_in_another_batch_gives_the_same_count_ids(aws, event, lambda_context):
    # Given two thin records (too few sessions to judge) on LDN-0042
    template = event("dynamodb_stream_incident.json")["Records"][0]
    first, second = _thin_records(template, ["LDN-0042", "LDN-0042"])
    for record in (first, second):
        put_profile(aws, record)

    # When they are handled in one batch, then the second again on its own (Lambda
    # bisecting a failed batch regroups its records)
    assert app.handler({"Records": [first, second]}, lambda_context) == {"batchItemFailures": []}
    [together] = _update_bodies(aws)["decision_counts"]
    assert app.handler({"Records": [second]}, lambda_context) == {"batchItemFailures": []}
    [alone] = _update_bodies(aws)["decision_counts"]

    # Then the second record's count has the same id both times, so summing incidents over
    # distinct count_id counts each incident once
    [again] = alone["counts"]
    assert again in together["counts"]
    distinct = {c["count_id"]: c["incidents"] for c in [*together["counts"], *alone["counts"]]}
    assert sum(distinct.values()) == 2
