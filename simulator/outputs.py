"""What a run leaves behind: the lake copy, dead-letter depths and the figures of ``summary.json``.

Every figure is counted from what happened (lake objects the handlers wrote, messages
waiting in dead-letter queues, the contact centre's log, the hooks' records of AWS
answers), never recomputed from the same inputs the product used.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer

from feedback_loop.calls import client_token
from feedback_loop.contact_policy import subscriber_zones
from feedback_loop.decision import own_engagement_id
from feedback_loop.episodes import SubscriberView
from feedback_loop.errors import InvalidRecord
from feedback_loop.incidents import new_incidents
from feedback_loop.lake import decode_jsonl_gz
from feedback_loop.policy import Policy, load_policy
from feedback_loop.timeutil import parse_utc
from simulator.firehose import DeliveryStream
from simulator.moto_internals import dead_letter_bodies, moto_object_body
from simulator.provision import Estate
from simulator.scenario import Subscriber
from simulator.stream_pollers import DynamoDbStreamPoller

if TYPE_CHECKING:
    from simulator.twin import Twin


def copy_lake(s3: Any, estate: Estate, out_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Copy every lake object to ``out_dir/lake/`` (same keys); the records by prefix."""
    lake_dir = out_dir / "lake"
    records: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bucket in estate.lake_buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = moto_object_body(bucket, item["Key"])
                target = lake_dir / item["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)
                if item["Key"].endswith(".jsonl.gz"):
                    records[item["Key"].split("/", 1)[0]].extend(decode_jsonl_gz(body))
    return records


def dead_letter_depths(sqs: Any, estate: Estate) -> dict[str, int]:
    """Messages waiting in each dead-letter queue and on-failure destination."""
    targets = {q.dlq_arn for q in estate.queues.values() if q.dlq_arn}
    targets |= {s.on_failure_arn for s in estate.event_sources if s.on_failure_arn}
    depths: dict[str, int] = {}
    for queue in estate.queues.values():
        if queue.arn in targets:
            attributes = sqs.get_queue_attributes(
                QueueUrl=queue.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            depths[queue.name] = int(attributes["ApproximateNumberOfMessages"]) + int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            )
    return depths


def _engagement_id(body: str) -> str | None:
    try:
        message = json.loads(body)
    except ValueError:
        return None
    value = message.get("engagement_id") if isinstance(message, dict) else None
    return value if isinstance(value, str) and value else None


_deserializer = TypeDeserializer()

# Decisions that end an episode in ``engagement/`` (a dial-time suppression ends it too).
EPISODE_ENDS = ("closed", "failed", "suppress")


def parked_engagements(pollers: Sequence[Any], policy: Policy) -> set[str]:
    """Engagements whose decision waits in a stream's on-failure queue.

    Such an entry holds only a range of the subscriber table's stream (what
    ``ops/redrive.py`` replays); the twin kept the records behind it. Each parked record's
    new incidents are decided again on redrive, as the engagement of the open episode or
    their own.
    """
    parked: set[str] = set()
    for poller in pollers:
        if not isinstance(poller, DynamoDbStreamPoller):
            continue
        for record in poller.parked_records:
            image = {
                name: _deserializer.deserialize(value)
                for name, value in record["dynamodb"].get("NewImage", {}).items()
            }
            phone = image.get("PhoneNumber")
            if not isinstance(phone, str):
                continue
            try:
                incidents = new_incidents(phone, image, policy.windows_minutes)
                episode = SubscriberView.from_profile(phone, image).contact.episode
            except InvalidRecord:
                continue
            parked.update(own_engagement_id(phone, incident) for incident in incidents)
            if episode is not None:
                parked.add(episode.engagement_id)
    return parked


def exactly_once_figures(
    calls: Sequence[Mapping[str, Any]],
    engagement: Sequence[Mapping[str, Any]],
    dead_letters: Mapping[str, list[str]],
    parked_in_streams: set[str] | None = None,
) -> dict[str, int]:
    """``duplicate_calls`` and ``engagements_lost``, counted from what the run left behind.

    ``calls`` is the contact centre's log (``calls.jsonl``, one line per contact attempt),
    ``engagement`` the lake's ``engagement/`` records. A duplicate is a second line for
    the same attempt of an engagement on the same channel. An engagement is lost when the
    lake says "engage" but its episode never ended (closed, failed or suppressed before
    the contact) and it is not waiting in a dead-letter queue for an operator (a queue
    message naming it, or a parked stream range holding its decision:
    :func:`parked_engagements`).
    """
    attempts = Counter(
        (
            str(call.get("engagement_id")),
            str(call.get("channel", "voice")),
            str((call.get("attributes") or {}).get("attempt", "1")),
        )
        for call in calls
    )
    engaged = {
        str(record.get("engagement_id"))
        for record in engagement
        if record.get("decision") == "engage"
    }
    ended = {
        str(record.get("engagement_id"))
        for record in engagement
        if record.get("decision") in EPISODE_ENDS
    }
    parked = {
        engagement_id
        for bodies in dead_letters.values()
        for engagement_id in map(_engagement_id, bodies)
        if engagement_id is not None
    } | (parked_in_streams or set())
    return {
        "duplicate_calls": sum(1 for count in attempts.values() if count > 1),
        "engagements_lost": len(engaged - ended - parked),
    }


def throttles_absorbed(
    refusals: Sequence[tuple[str, float]], calls: Sequence[Mapping[str, Any]]
) -> int:
    """Connect throttle/limit answers whose engagement was placed afterwards.

    ``refusals`` are ``(ClientToken, simulated time)`` of every such answer, whatever
    refused it (the quotas, an injected throttle); a call is placed when its
    ``calls.jsonl`` line starts at or after the refusal.
    """
    last_start: dict[str, float] = {}
    for call in calls:
        attempt = int((call.get("attributes") or {}).get("attempt", 1))
        token = client_token(str(call.get("engagement_id")), attempt)
        started = parse_utc(str(call["time"])).timestamp()
        last_start[token] = max(last_start.get(token, started), started)
    return sum(1 for token, at in refusals if token in last_start and last_start[token] >= at)


def calls_in_local_quiet_hours(
    calls: Sequence[Mapping[str, Any]], subscribers: Sequence[Subscriber], policy: Policy
) -> int:
    """Contacts that started when the subscriber may not be contacted (quiet hours, blocked
    days) in their own time zone: the scenario's ``timezone`` for them where given (where
    they really are), else the zone the handlers would find (the number's, else the
    policy's)."""
    zones = {s.phone_number: s.timezone for s in subscribers if s.timezone}
    hours = policy.contact_rules.hours
    count = 0
    for call in calls:
        phone = str(call.get("phone_number"))
        where = subscriber_zones(zones.get(phone), phone, policy.timezone, hours)
        count += not hours.allows(parse_utc(str(call["time"])), where)
    return count


def decision_reasons(lake: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, int]:
    """Decisions and contact steps by ``decision:reason``: every ``engagement/`` record, plus
    the decisions ``decision_counts/`` counts (each count once by ``count_id``: the lake
    receives it at least once)."""
    reasons = Counter(f"{r.get('decision')}:{r.get('reason')}" for r in lake.get("engagement", []))
    counts = {r.get("count_id"): r for r in lake.get("decision_counts", [])}
    for count in counts.values():
        reasons[f"{count.get('decision')}:{count.get('reason')}"] += int(
            count.get("incidents") or 0
        )
    return dict(sorted(reasons.items()))


def run_summary(
    twin: Twin, lake: dict[str, list[dict[str, Any]]], wall_seconds: float
) -> dict[str, Any]:
    """``summary.json``: counted from what happened (lake, DLQs, calls, the hooks' records)."""
    engagement = lake.get("engagement", [])
    answers = {r.get("contact_id"): r for r in lake.get("feedback", [])}
    dead = twin.dead_lettered()
    calls = twin.contact_centre.records
    denied, denied_calls = twin.iam.summary()
    return {
        "probe_events": twin.producer.put_count,
        "rejected_records": len({r.get("record_id") for r in lake.get("rejected", [])}),
        "incidents": len({r.get("incident_id") for r in lake.get("incidents", [])}),
        "engagements": len(
            {r.get("engagement_id") for r in engagement if r.get("decision") == "engage"}
        ),
        "outages": sorted(
            (
                {"cell": cell, "window_start": window}
                for cell, window in {
                    (str(r.get("cell")), str(r.get("window_start")))
                    for r in lake.get("outages", [])
                }
            ),
            key=lambda o: (o["window_start"], o["cell"]),
        ),
        "engagement_decisions": decision_reasons(lake),
        "calls_started": len(calls),
        "calls": twin.contact_centre.counters,
        "peak_concurrent_calls": twin.contact_centre.peak_concurrent,
        "connect_refusals": len(twin.connect_refusals),
        "throttles_absorbed": throttles_absorbed(twin.connect_refusals, calls),
        "calls_in_local_quiet_hours": calls_in_local_quiet_hours(
            calls, twin.scenario.subscribers, load_policy(twin.scenario.config)
        ),
        # The lake receives answers at least once: count them by contact.
        "feedback_received": len(answers),
        "feedback_outcomes": dict(
            sorted(Counter(r.get("outcome") for r in answers.values()).items())
        ),
        "sentiment_updates": len({r.get("contact_id") for r in lake.get("sentiment", [])}),
        "dead_lettered": sum(dead.values()),
        "dead_letter_queues": dead,
        "access_denied": denied,
        "access_denied_calls": denied_calls,
        "api_calls": twin.hooks.summary(),
        "invocations": {
            name: {"invocations": f.invocations, "errors": f.errors}
            for name, f in sorted(twin.runtime.functions.items())
        },
        "event_sources": {
            p.spec.function_name: vars(p.stats)
            | ({"lost_records": p.lost_records} if hasattr(p, "lost_records") else {})
            for p in twin.pollers
            if not isinstance(p, DeliveryStream)
        },
        "delivery_streams": {d.spec.name: vars(d.stats) for d in twin.deliveries},
        "faults_injected": dict(sorted(twin.faults.injected.items())),
        "faults_surfaced": dict(sorted(twin.faults.surfaced.items())),
        **exactly_once_figures(
            calls,
            engagement,
            dead_letter_bodies(twin.estate),
            parked_engagements(twin.pollers, load_policy(twin.scenario.config)),
        ),
        "simulated_end": twin.clock.iso(),
        "wall_seconds": round(wall_seconds, 1),
    }
