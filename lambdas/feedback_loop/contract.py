"""The contract every part of the repo shares: names, shapes, reasons, the E.164 rule.

Handlers, the stacks (stream filter, Glue columns), the twin (DuckDB columns), the
operator tools and the tests import these instead of retyping them, so a name changed
here is changed everywhere (docs/ARCHITECTURE.md explains each one).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# --- service KPIs --------------------------------------------------------------------------

EVENT_TYPES = ("CALL_DROP", "CALL_QUALITY", "LOW_BITRATE", "VIDEO_STALLING")

# --- resource names (fixed by the design; the stacks create them with these names) ---------

PROBE_STREAM = "probe_events"
PROBE_ARCHIVE_DELIVERY_STREAM = "probe_archive"  # Firehose: probe_events -> probes/
SUBSCRIBER_TABLE = "Subscriber_table"
COUNTERS_TABLE = "Subscriber_counters"
IDEMPOTENCY_TABLE = "Idempotency_table"
CONTACT_STATE_TABLE = "Contact_state"
METRICS_NAMESPACE = "SubscriberFeedbackLoop"

# --- phone numbers ---------------------------------------------------------------------------

# E.164: "+", then 8 to 15 ASCII digits, the first not 0. ``[0-9]`` and ``\Z`` on purpose:
# ``\d`` also matches full-width and Arabic-Indic digits, and ``$`` matches before a final
# newline. No numbering-plan library decides validity: a number of this shape is never
# rejected because a library's metadata does not know its range.
E164 = re.compile(r"\+[1-9][0-9]{7,14}")


def is_e164(value: object) -> bool:
    """True for a string that is an E.164 number by the rule above, and nothing else."""
    return isinstance(value, str) and E164.fullmatch(value) is not None


# --- Subscriber_table ------------------------------------------------------------------------


class LastChange(StrEnum):
    """Who wrote a ``Subscriber_table`` item last (``LastChange``); the stream filters on it."""

    INCIDENT = "incident"
    ENGAGEMENT = "engagement"
    FEEDBACK = "feedback"
    OPERATOR = "operator"  # contact preferences set by ops.contact_preferences


LAST_CHANGE = "LastChange"
PHONE_NUMBER = "PhoneNumber"
# The incidents the last ingest write added (what ``Read_after_incident`` decides on), and
# the short ids of the recent ones (so a replayed batch adds nothing).
NEW_INCIDENTS = "NewIncidents"
SEEN_INCIDENTS = "SeenIncidents"
INCIDENTS_VERSION = "IncidentsVersion"
# An incident on the profile: message field → item attribute (the phone number is the key).
# Only what the decision and the engagement record need: the failure rate follows from
# sessions and failures, the window from the policy, and the record id stays in the lake.
INCIDENT_ATTRIBUTES = {
    "incident_id": "IncidentId",
    "event_type": "EventType",
    "timestamp": "Timestamp",
    "cell": "Cell",
    "device": "Device",
    "vendor": "Vendor",
    "sessions": "Sessions",
    "failures": "Failures",
}
# The dimensions an incident entry leaves out when they equal the write's own (top level).
INCIDENT_DIMENSIONS = ("cell", "device", "vendor")
# The last answer recorded on the profile (``LastFeedback``): field → map key. The table's
# stream takes it to the lake, so every answer reaches ``feedback/`` (and a rating
# ``sentiment/``) even when the lake was unreachable during the call.
LAST_FEEDBACK = "LastFeedback"
FEEDBACK_CONTACTS = "FeedbackContacts"
# Short keys: the map sits on a profile that must stay within one DynamoDB write unit
# ("DynamoDB item sizes and formats": map keys count like attribute names). Maps written
# with the earlier, long keys (``LEGACY_FEEDBACK_ATTRIBUTES``) are still read. The incident
# id is not kept: no lake record of an answer has it (the engagement record links them).
FEEDBACK_ATTRIBUTES = {
    "contact_id": "Contact",
    "engagement_id": "Eng",
    "incident_type": "Kpi",
    "incident_time": "Time",
    "cell": "Cell",
    "outcome": "Out",
    "rating": "Rating",
    "previous_sentiment": "Was",
    "sentiment": "Is",
    "change_sentiment": "Change",
    "received_at": "Received",
}
LEGACY_FEEDBACK_ATTRIBUTES = {
    "contact_id": "ContactId",
    "engagement_id": "EngagementId",
    "incident_id": "IncidentId",
    "incident_type": "IncidentType",
    "incident_time": "IncidentTime",
    "cell": "Cell",
    "outcome": "Outcome",
    "rating": "Rating",
    "previous_sentiment": "PreviousSentiment",
    "sentiment": "Sentiment",
    "change_sentiment": "ChangeSentiment",
    "received_at": "At",
}

# --- reasons ---------------------------------------------------------------------------------


class Reason(StrEnum):
    """Why an input was rejected: the ``reason`` logged, counted and kept with it."""

    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    TOO_LARGE = "too_large"
    TOO_LONG = "too_long"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_PHONE_NUMBER = "bad_phone_number"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    BAD_TIMESTAMP = "bad_timestamp"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    UNKNOWN_SCHEMA = "unknown_schema"
    NOT_AN_ENGAGEMENT = "not_an_engagement"
    MISSING_PARAMETER = "missing_parameter"
    UNKNOWN_INCIDENT_TYPE = "unknown_incident_type"
    BAD_INCIDENT_TIME = "bad_incident_time"
    BAD_CELL = "bad_cell"
    ENGAGEMENT_MISMATCH = "engagement_mismatch"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"
    MALFORMED_EVENT = "malformed_event"
    MALFORMED_IMAGE = "malformed_image"


class Verdict(StrEnum):
    """The ``decision`` of an engagement record: what was decided about an incident."""

    ENGAGE = "engage"  # a new episode: the subscriber will be contacted
    SUPPRESS = "suppress"  # not contacted (reason: the rule)
    MERGED = "merged"  # joined the subscriber's open episode: one contact asks about both
    DEFERRED = "deferred"  # the contact waits until a later moment (reason: the rule)
    CONTACTED = "contacted"  # an attempt was made (reason: voice | sms)
    CLOSED = "closed"  # the episode ended (reason: answered | no_answer | no_reply)
    FAILED = "failed"  # the channel refused the contact for good (reason: its error code)


# Decisions recorded as counts (``decision_counts/``: per stream record, decision date, cell
# and KPI) instead of one ``engagement/`` record each: an incident without enough
# sessions to judge is most decisions at scale and nobody acts on it one by one.
COUNTED_DECISIONS = frozenset({(Verdict.SUPPRESS.value, "min_sessions")})


# --- the lake --------------------------------------------------------------------------------

# Logical column types and their names in each engine that reads the lake.
_ENGINE_TYPES = {
    "string": {"glue": "string", "duckdb": "VARCHAR"},
    "double": {"glue": "double", "duckdb": "DOUBLE"},
    "int": {"glue": "int", "duckdb": "BIGINT"},
    "bigint": {"glue": "bigint", "duckdb": "BIGINT"},
    "boolean": {"glue": "boolean", "duckdb": "BOOLEAN"},
}
STORAGE_FORMATS = ("jsonl.gz", "csv", "parquet")


@dataclass(frozen=True)
class LakeTable:
    """One lake prefix: its records' columns (in order) and the field that dates them.

    Objects live under ``<name>/dt=<date of time_field>/``; the Glue table of the same
    name and the twin's DuckDB view are generated from ``columns``.
    """

    name: str
    time_field: str
    columns: tuple[tuple[str, str], ...]
    # "jsonl.gz": written by the handlers under ``<name>/dt=<date>/`` (one partition a day);
    # "csv": uploaded by operators under ``<name>/`` (header row, no partitions);
    # "parquet": written by Amazon Data Firehose under ``<name>/dt=<date>/`` (the probe archive).
    storage: str = "jsonl.gz"

    def __post_init__(self) -> None:
        unknown = {kind for _, kind in self.columns} - set(_ENGINE_TYPES)
        if unknown:
            raise ValueError(f"{self.name}: unknown column types {sorted(unknown)}")
        if self.storage not in STORAGE_FORMATS:
            raise ValueError(f"{self.name}: storage must be one of {STORAGE_FORMATS}")

    @property
    def column_names(self) -> tuple[str, ...]:
        """The record keys, in schema order."""
        return tuple(name for name, _ in self.columns)

    def engine_columns(self, engine: str) -> tuple[tuple[str, str], ...]:
        """``(name, type)`` pairs in ``engine``'s type names (``glue`` or ``duckdb``)."""
        return tuple((name, _ENGINE_TYPES[kind][engine]) for name, kind in self.columns)

    def record(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` as a record of this table; a missing or extra key is a programming error."""
        missing = set(self.column_names) - set(values)
        extra = set(values) - set(self.column_names)
        if missing or extra:
            raise KeyError(f"{self.name} record: missing {sorted(missing)}, extra {sorted(extra)}")
        return {name: values[name] for name in self.column_names}


def _table(name: str, time_field: str, columns: str, storage: str = "jsonl.gz") -> LakeTable:
    """``columns`` as ``"name:type name:type ..."`` (type defaults to string)."""
    pairs = tuple(
        (column.partition(":")[0], column.partition(":")[2] or "string")
        for column in columns.split()
    )
    return LakeTable(name, time_field, pairs, storage)


LAKE_TABLES: dict[str, LakeTable] = {
    table.name: table
    for table in (
        _table(
            "incidents",
            "timestamp",
            "incident_id subscriber_id event_type timestamp cell device vendor "
            "failure_rate:double sessions:int failures:int window_minutes:int record_id",
        ),
        _table(
            "engagement",
            "decided_at",
            "engagement_id incident_id subscriber_id incident_type incident_time cell device "
            "vendor failure_rate:double threshold:double decision reason decided_at",
        ),
        _table(
            "feedback",
            "received_at",
            "contact_id engagement_id subscriber_id incident_type incident_time cell outcome "
            "rating:int score:double incident_weight:double received_at",
        ),
        _table(
            "sentiment",
            "updated_at",
            "contact_id engagement_id subscriber_id cell device vendor incident_type "
            "previous_sentiment:double sentiment:double change_sentiment:double updated_at",
        ),
        _table(
            "outages",
            "detected_at",
            "cell window_start detected_at subscribers:int min_subscribers:int sample_size:int",
        ),
        _table(
            "decision_counts",
            "decided_at",
            "count_id cell incident_type decision reason incidents:int decided_at",
        ),
        _table("rejected", "received_at", "source record_id reason received_at payload"),
        # Operators' remediation events (a fix on a cell), fixed_at as YYYY-MM-DDTHH:MM:SSZ.
        _table("remediation", "fixed_at", "cell fixed_at note", storage="csv"),
        # The probe archive: every valid probe record as it arrived (section-4 fields,
        # pseudonymised), ``record_id`` = its stream position, ``timestamp_epoch`` = its
        # ``timestamp`` in epoch seconds so SQL does no date parsing (sql/detect_incidents.sql).
        _table(
            "probes",
            "timestamp",
            "record_id arrival subscriber_id timestamp timestamp_epoch:bigint cell event_type "
            "success:boolean device vendor",
            storage="parquet",
        ),
    )
}
PROBE_ARCHIVE = "probes"
# Tables the analytics query (``rejected/`` holds free-form payloads for diagnosis only).
ANALYTICS_TABLES = (
    "incidents",
    "engagement",
    "feedback",
    "sentiment",
    "outages",
    "decision_counts",
)
REMEDIATION_TABLE = "remediation"
# The one ``sql/`` file the what-if runs over ``probes/``; every other one is a named query
# of the dashboard's workgroup.
WHATIF_SQL = "detect_incidents.sql"
# Prefixes the handlers write (JSON Lines, which ops.erase_subscriber rewrites);
# ``remediation/`` holds operators' uploads only; the Parquet archive ``probes/`` expires
# instead (``probe_archive_retention_days``).
LAKE_PREFIXES = tuple(name for name, table in LAKE_TABLES.items() if table.storage == "jsonl.gz")
