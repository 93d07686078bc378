"""Versioned JSON queue messages (never positional CSV).

Every message carries ``schema`` and ``version``; a consumer rejects what it
does not understand instead of guessing, so the record ends in a DLQ where an
operator can find it.
"""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from feedback_loop.contract import Reason
from feedback_loop.errors import InvalidRecord, UnknownSchema

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class IncidentMessage:
    """A failed session recorded as an incident (``incident_update_queue``).

    This is the one definition of an incident: ingest builds it, the profile stores it
    (``feedback_loop.incidents``), the queue carries it and the lake records it.
    ``record_id`` is the failed session's position on the probe stream.
    """

    incident_id: str
    phone_number: str
    event_type: str
    timestamp: str
    cell: str
    device: str | None
    vendor: str | None
    failure_rate: float
    sessions: int
    failures: int
    window_minutes: int
    record_id: str

    SCHEMA = "incident"


@dataclass(frozen=True)
class EngagementMessage:
    """A decision taken on an above-threshold incident (engagement queues)."""

    engagement_id: str
    incident_id: str
    phone_number: str
    incident_type: str
    incident_time: str
    cell: str
    device: str | None
    vendor: str | None
    failure_rate: float
    threshold: float
    decision: str
    reason: str
    decided_at: str

    SCHEMA = "engagement"


@dataclass(frozen=True)
class OutageMessage:
    """An outage declared on a cell (``engagement_update_queue``, to ``outages/``)."""

    cell: str
    window_start: str
    detected_at: str
    subscribers: int
    min_subscribers: int
    sample_size: int

    SCHEMA = "outage"


@dataclass(frozen=True)
class DecisionCount:
    """Decisions of one kind about one cell's incidents of one KPI, counted, not listed.

    ``count_id`` hashes the stream record's sequence number and the count's group, so the
    same count sent twice (a retried record, in whatever batch) is recognisably the same;
    ``decided_at`` is the latest decision counted.
    """

    count_id: str
    cell: str
    incident_type: str
    decision: str
    reason: str
    incidents: int
    decided_at: str


@dataclass(frozen=True)
class DecisionCountsMessage:
    """A batch's counted decisions (``engagement_update_queue``, to ``decision_counts/``)."""

    counts: list[dict[str, Any]]

    SCHEMA = "decision_counts"


Message = TypeVar(
    "Message", IncidentMessage, EngagementMessage, OutageMessage, DecisionCountsMessage
)


def schema_of(body: str) -> object:
    """The ``schema`` a message body names, if it is a JSON object (else ``None``)."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return None
    return data.get("schema") if isinstance(data, dict) else None


def encode(
    message: IncidentMessage | EngagementMessage | OutageMessage | DecisionCountsMessage,
) -> str:
    """JSON body with the schema header first."""
    body = {"schema": message.SCHEMA, "version": SCHEMA_VERSION, **asdict(message)}
    return json.dumps(body, sort_keys=True)


def decode(body: str | Mapping[str, Any], kind: type[Message]) -> Message:
    """Parse and check a message body; raises :class:`InvalidRecord` naming the problem."""
    if isinstance(body, str):
        try:
            data = json.loads(body)
        except json.JSONDecodeError as error:
            raise InvalidRecord(Reason.NOT_JSON, str(error)) from error
    else:
        data = dict(body)
    if not isinstance(data, dict):
        raise InvalidRecord(Reason.NOT_AN_OBJECT, type(data).__name__)
    if data.get("schema") != kind.SCHEMA or data.get("version") != SCHEMA_VERSION:
        raise UnknownSchema(
            Reason.UNKNOWN_SCHEMA,
            f"expected {kind.SCHEMA} v{SCHEMA_VERSION}, "
            f"got {data.get('schema')!r} v{data.get('version')!r}",
        )
    names = [f.name for f in fields(kind)]
    missing = [name for name in names if name not in data]
    if missing:
        raise InvalidRecord(Reason.MISSING_FIELD, ", ".join(missing))
    return kind(**{name: data[name] for name in names})
