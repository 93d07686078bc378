"""``python -m simulator whatif``: replay a probe export against candidate configs.

An operator about to switch the loop on, or to change a threshold, asks how many calls a
day it would make, to whom, about which cells. This answers it before the first call:

1. **Detection** is ``sql/detect_incidents.sql``, the handler's failure-rate rule as SQL,
   run by DuckDB over a local export (once per distinct set of windows, every incident) or
   by Athena over the probe archive (``probes/``, one query per config, above-threshold
   incidents only, so fewer rows come back). The same file finds exactly the incidents
   ``Ingest_probe_events`` wrote (the parity test).
2. **The contact policy** is the handlers' own code: the threshold test is
   ``feedback_loop.decision.above_threshold``, and :func:`contact_plan` replays the
   above-threshold incidents through ``feedback_loop.decision`` and the dial-time checks
   (:mod:`simulator.contact_plan`, which states what it assumes: first contacts only,
   nobody opts out). Every rule that needs no answer from the subscriber (minimum
   sessions, one contact per episode across KPIs, gap, cap, calling hours in the
   subscriber's zone, staleness, outage sampling) is evaluated as the handlers evaluate it.
3. **Figures** per candidate config: incidents, engagements and calls (one first contact
   per engagement that is not dropped), distinct subscribers called, calls per local day
   and at the busiest hour, suppressions and deferrals by rule, outages, the cells that
   would lead the map by affected subscribers.

A local export (JSON Lines or Parquet, file or folder, section-4 records or archive rows)
is loaded into an on-disk DuckDB database first; section-4 records are validated by the
rules of ``feedback_loop.probe`` expressed in SQL (``_SECTION4_VALID``) and arrive in file
order. The Athena side is :mod:`simulator.whatif_athena`.
"""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TextIO
from zoneinfo import ZoneInfo

from feedback_loop.contract import EVENT_TYPES, LAKE_TABLES, PROBE_ARCHIVE, WHATIF_SQL, Verdict
from feedback_loop.decision import above_threshold
from feedback_loop.errors import ConfigError
from feedback_loop.ids import incident_id
from feedback_loop.incidents import Incident
from feedback_loop.policy import Policy
from feedback_loop.probe import MAX_CELL_LENGTH, MAX_DIMENSION_LENGTH, MAX_RECORD_BYTES
from simulator.contact_plan import ContactPlan, plan_contacts
from simulator.cost import connect_usd_per_episode
from simulator.cost.model import DAYS_PER_MONTH
from stacks.config import CONTEXT_KEY, cdk_json_context, load_config, merge_overrides

SQL_FILE = Path(__file__).resolve().parent.parent / "sql" / WHATIF_SQL
DEFAULTS_NAME = "deployed defaults"
TOP_CELLS = 10
# How far back a window can reach: the policy allows windows up to 7 days.
MAX_WINDOW_DAYS = 7


class WhatIfError(Exception):
    """An input the what-if cannot use; the message names it."""


# --- candidate configs ---------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One config to try: its name (the file), the overrides it sets, the policy they give."""

    name: str
    overrides: dict[str, Any]
    policy: Policy


def load_candidates(paths: Sequence[Path]) -> list[Candidate]:
    """The configs in the order given; none means the deployed defaults (``cdk.json``).

    Each file is a JSON object of ``feedback_loop`` keys merged over ``cdk.json`` exactly as
    ``cdk deploy -c`` and a twin scenario's ``config`` are (per-KPI maps merge key by key).
    """
    base = cdk_json_context()[CONTEXT_KEY]
    if not paths:
        return [Candidate(DEFAULTS_NAME, {}, load_config(base).policy)]
    candidates = []
    for path in paths:
        try:
            overrides = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise WhatIfError(f"{path}: cannot read a JSON config: {error}") from error
        if not isinstance(overrides, dict):
            raise WhatIfError(f"{path}: a config is a JSON object of cdk.json keys")
        try:
            config = load_config(merge_overrides(base, overrides))
        except ConfigError as error:
            raise WhatIfError(f"{path}: {error}") from error
        candidates.append(Candidate(Path(path).name, overrides, config.policy))
    return candidates


# --- detection -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Partitions to read (``scan_*``) and the first day whose incidents count."""

    scan_from: str
    scan_to: str
    report_from: str

    @classmethod
    def of_days(cls, first: str, last: str, *, lead_in: bool) -> Period:
        """``first``..``last``; with ``lead_in`` the scan starts a longest window earlier."""
        start = date.fromisoformat(first) - timedelta(days=MAX_WINDOW_DAYS if lead_in else 0)
        return cls(start.isoformat(), last, first)


@dataclass(frozen=True)
class IncidentRow:
    """One incident the SQL found (a row of ``sql/detect_incidents.sql``)."""

    subscriber_id: str
    event_type: str
    timestamp: str
    record_id: str
    cell: str
    device: str | None
    vendor: str | None
    failure_rate: float
    sessions: int
    failures: int


INCIDENT_COLUMNS = tuple(IncidentRow.__dataclass_fields__)


def detection_sql() -> str:
    """``sql/detect_incidents.sql`` as the named query holds it (no trailing semicolon)."""
    return SQL_FILE.read_text(encoding="utf-8").strip().rstrip(";")


def detection_parameters(
    policy: Policy, period: Period, *, every_incident: bool = False
) -> list[Any]:
    """The SQL's positional parameters, in the order its header lists them.

    Thresholds are decimals so ``failures > sessions * threshold`` is exact, as the
    handler's :func:`feedback_loop.decision.above_threshold` is.
    """
    thresholds = [
        Decimal(0) if every_incident else Decimal(str(policy.thresholds[kpi]))
        for kpi in EVENT_TYPES
    ]
    windows = [int(policy.windows_minutes[kpi]) for kpi in EVENT_TYPES]
    return [period.scan_from, period.scan_to, *windows, period.report_from, *thresholds]


def counting_sql(detection: str) -> str:
    """How many rows ``detection`` returns (with zero thresholds: every incident)."""
    return f"SELECT COUNT(*) AS incidents FROM (\n{detection}\n) AS found"


def selecting_sql(detection: str) -> str:
    """The columns of ``detection`` the what-if needs, in :class:`IncidentRow` order."""
    columns = ", ".join(f'"{name}"' if name == "timestamp" else name for name in INCIDENT_COLUMNS)
    return f"SELECT {columns} FROM (\n{detection}\n) AS found"


def incident_rows(rows: Iterable[Sequence[Any]]) -> list[IncidentRow]:
    """Typed rows (Athena returns every value as text)."""
    return [
        IncidentRow(
            subscriber_id=str(r[0]),
            event_type=str(r[1]),
            timestamp=str(r[2]),
            record_id=str(r[3]),
            cell=str(r[4]),
            device=r[5] or None,
            vendor=r[6] or None,
            failure_rate=float(r[7]),
            sessions=int(r[8]),
            failures=int(r[9]),
        )
        for r in rows
    ]


class ProbeSource(Protocol):
    """Where the probe records are: a local export (DuckDB) or the archive (Athena)."""

    def describe(self) -> dict[str, Any]:
        """Facts about the input for the report (records, rejected, days)."""
        ...

    def period(self) -> Period:
        """The days to report on."""
        ...

    def incidents(
        self, policies: Sequence[Policy], period: Period
    ) -> tuple[int, list[list[IncidentRow]]]:
        """Every incident of the period counted, and per policy its incidents: at least those
        above its thresholds (:func:`run_whatif` keeps exactly those, by the handler's rule).

        The count does not depend on the policy: every failed session is an incident.
        """
        ...


# --- local exports (DuckDB) ----------------------------------------------------------------

_ARCHIVE_COLUMNS = dict(LAKE_TABLES[PROBE_ARCHIVE].engine_columns("duckdb"))
_SECTION4_TYPES = {
    "timestamp": "VARCHAR",
    "phone_number": "VARCHAR",
    "cell": "VARCHAR",
    "event_type": "VARCHAR",
    "success": "BOOLEAN",
    "device": "VARCHAR",
    "vendor": "VARCHAR",
}
# A time of day followed by an explicit offset: parse_utc refuses a timestamp without one.
_OFFSET = r"[T ][0-9]{2}(:[0-9]{2}){0,2}([.,][0-9]+)?(Z|[+-][0-9]{2}(:?[0-9]{2}){0,2})$"
_KPIS = ", ".join(f"'{kpi}'" for kpi in EVENT_TYPES)
# feedback_loop.probe.parse_probe_record as SQL, for one row of ``fields`` (each field's text
# and whether its JSON type was right). Not here: the time-range check against the Kinesis
# arrival, which a file does not have.
_SECTION4_VALID = f"""
    is_object
    AND bytes <= {MAX_RECORD_BYTES}
    AND phone_ok AND regexp_full_match(phone_number, '\\+[1-9][0-9]{{7,14}}')
    AND event_ok AND event_type IN ({_KPIS})
    AND cell_ok AND length(trim(cell)) BETWEEN 1 AND {MAX_CELL_LENGTH}
    AND success IS NOT NULL
    AND timestamp_ok AND moment IS NOT NULL AND regexp_matches(timestamp_text, '{_OFFSET}')
    AND device_ok AND coalesce(length(device), 0) <= {MAX_DIMENSION_LENGTH}
    AND vendor_ok AND coalesce(length(vendor), 0) <= {MAX_DIMENSION_LENGTH}
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(path: Path) -> tuple[str, list[Path]]:
    """``("jsonl" | "parquet", files in name order)`` of a file or folder export."""
    if not path.exists():
        raise WhatIfError(f"{path}: no such file or folder")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    parquet = [p for p in files if p.suffix == ".parquet"]
    jsonl = [p for p in files if p.name.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson"))]
    if parquet and jsonl:
        raise WhatIfError(f"{path}: mixes Parquet and JSON Lines files; give one kind")
    if not parquet and not jsonl:
        raise WhatIfError(f"{path}: no .jsonl or .parquet files")
    return ("parquet", parquet) if parquet else ("jsonl", jsonl)


class LocalProbes:
    """A local export as the ``probes`` table of an on-disk DuckDB database."""

    def __init__(self, path: Path, workdir: Path, *, memory_limit: str = "4GB") -> None:
        import duckdb

        workdir.mkdir(parents=True, exist_ok=True)
        database = workdir / "whatif.duckdb"
        database.unlink(missing_ok=True)
        self.path = path
        self.con = duckdb.connect(str(database))
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET memory_limit = {_quote(memory_limit)}")
        self.con.execute(f"SET temp_directory = {_quote(str(workdir / 'spill'))}")
        self.con.execute("SET preserve_insertion_order = false")
        kind, files = _files(path)
        listed = "[" + ", ".join(_quote(str(f)) for f in files) + "]"
        if kind == "parquet" and self._is_archive(listed):
            self._load_archive(listed)
        else:
            self._load_section4(kind, listed)
        self.records, self.rejected, self.first_day, self.last_day = self._one(
            "SELECT (SELECT COUNT(*) FROM probes), (SELECT rejected FROM load_stats), "
            "(SELECT MIN(dt) FROM probes), (SELECT MAX(dt) FROM probes)"
        )
        if self.records == 0:
            raise WhatIfError(f"{path}: no valid probe records")

    def _one(self, sql: str) -> tuple[Any, ...]:
        row = self.con.execute(sql).fetchone()
        assert row is not None  # an aggregate always returns a row
        return tuple(row)

    def _is_archive(self, listed: str) -> bool:
        names = {
            row[0]
            for row in self.con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({listed}, union_by_name = true)"
            ).fetchall()
        }
        return {"record_id", "subscriber_id"} <= names

    def _load_archive(self, listed: str) -> None:
        """Rows of the probe archive (``probes/dt=.../*.parquet``), e.g. the twin's lake copy."""
        columns = ", ".join(
            f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind in _ARCHIVE_COLUMNS.items()
        )
        self.con.execute(
            f'CREATE TABLE probes AS SELECT {columns}, substr("timestamp", 1, 10) AS dt '
            f"FROM read_parquet({listed}, union_by_name = true)"
        )
        self.con.execute("CREATE TABLE load_stats AS SELECT 0 AS rejected")

    def _load_section4(self, kind: str, listed: str) -> None:
        """Section-4 records, validated; arrival order = file order (files by name)."""
        if kind == "parquet":
            described = dict(
                (row[0], row[1])
                for row in self.con.execute(
                    f"DESCRIBE SELECT * FROM read_parquet({listed}, union_by_name = true)"
                ).fetchall()
            )
            for name, wanted in _SECTION4_TYPES.items():
                if name in described and described[name] != wanted:
                    raise WhatIfError(
                        f"{self.path}: column {name} is {described[name]}, not {wanted}"
                    )
            present = {name: name in described for name in _SECTION4_TYPES}
            value = {n: (n if present[n] else "NULL") for n in _SECTION4_TYPES}
            # Arrival order = file order: files by name, rows by position (no sort needed).
            offsets = f"""
                SELECT filename, coalesce(sum(rows) OVER (ORDER BY filename ROWS BETWEEN
                    UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS first_row
                FROM (SELECT filename, COUNT(*) AS rows
                      FROM read_parquet({listed}, union_by_name = true, filename = true)
                      GROUP BY filename)
            """
            fields = f"""
                SELECT
                    o.first_row + r.file_row_number + 1 AS n,
                    true AS is_object, 0 AS bytes,
                    CAST({value["phone_number"]} AS VARCHAR) AS phone_number, true AS phone_ok,
                    CAST({value["event_type"]} AS VARCHAR) AS event_type, true AS event_ok,
                    CAST({value["cell"]} AS VARCHAR) AS cell, true AS cell_ok,
                    CAST({value["success"]} AS BOOLEAN) AS success,
                    CAST({value["timestamp"]} AS VARCHAR) AS timestamp_text, true AS timestamp_ok,
                    NULLIF(CAST({value["device"]} AS VARCHAR), '') AS device, true AS device_ok,
                    NULLIF(CAST({value["vendor"]} AS VARCHAR), '') AS vendor, true AS vendor_ok
                FROM read_parquet({listed}, union_by_name = true, filename = true,
                                  file_row_number = true) AS r
                JOIN ({offsets}) AS o ON o.filename = r.filename
            """
        else:
            fields = f"""
                SELECT
                    ordinality AS n,
                    json_type(j) = 'OBJECT' AS is_object,
                    strlen(CAST(j AS VARCHAR)) AS bytes,
                    j ->> '$.phone_number' AS phone_number,
                    json_type(j, '$.phone_number') = 'VARCHAR' AS phone_ok,
                    j ->> '$.event_type' AS event_type,
                    json_type(j, '$.event_type') = 'VARCHAR' AS event_ok,
                    j ->> '$.cell' AS cell,
                    json_type(j, '$.cell') = 'VARCHAR' AS cell_ok,
                    CASE WHEN json_type(j, '$.success') = 'BOOLEAN'
                         THEN CAST(j ->> '$.success' AS BOOLEAN) END AS success,
                    j ->> '$.timestamp' AS timestamp_text,
                    json_type(j, '$.timestamp') = 'VARCHAR' AS timestamp_ok,
                    NULLIF(j ->> '$.device', '') AS device,
                    coalesce(json_type(j, '$.device') IN ('VARCHAR', 'NULL'), true) AS device_ok,
                    NULLIF(j ->> '$.vendor', '') AS vendor,
                    coalesce(json_type(j, '$.vendor') IN ('VARCHAR', 'NULL'), true) AS vendor_ok
                FROM read_ndjson_objects({listed}, ignore_errors = true)
                    WITH ORDINALITY AS r (j, ordinality)
            """
        self.con.execute(
            f"""
            CREATE TEMP VIEW fields AS
            SELECT *, try_cast(CASE WHEN timestamp_ok THEN timestamp_text END AS TIMESTAMPTZ)
                AS moment
            FROM ({fields})
            """
        )
        self.con.execute(
            f"""
            CREATE TABLE probes AS
            SELECT
                'export:' || CAST(n AS VARCHAR) AS record_id,
                CAST(NULL AS VARCHAR) AS arrival,
                phone_number AS subscriber_id,
                strftime(moment, '%Y-%m-%dT%H:%M:%SZ') AS "timestamp",
                CAST(floor(epoch(moment)) AS BIGINT) AS timestamp_epoch,
                trim(cell) AS cell,
                event_type,
                success,
                device,
                vendor,
                strftime(moment, '%Y-%m-%d') AS dt,
                coalesce({_SECTION4_VALID}, false) AS valid
            FROM fields
            """
        )
        # One read of the source: the invalid rows are counted, then dropped.
        self.con.execute(
            "CREATE TABLE load_stats AS SELECT COUNT(*) AS rejected FROM probes WHERE NOT valid"
        )
        self.con.execute("DELETE FROM probes WHERE NOT valid")
        self.con.execute("ALTER TABLE probes DROP COLUMN valid")

    def describe(self) -> dict[str, Any]:
        return {
            "source": str(self.path),
            "probe_records": int(self.records),
            "rejected_records": int(self.rejected),
            "first_day": self.first_day,
            "last_day": self.last_day,
        }

    def period(self) -> Period:
        return Period.of_days(self.first_day, self.last_day, lead_in=False)

    def incidents(
        self, policies: Sequence[Policy], period: Period
    ) -> tuple[int, list[list[IncidentRow]]]:
        """One detection per distinct set of windows, every incident returned (the thresholds
        are applied by :func:`run_whatif`): configs that differ only in their thresholds or
        contact rules share one pass over the records."""
        found: dict[tuple[int, ...], list[IncidentRow]] = {}
        for policy in policies:
            windows = tuple(policy.windows_minutes[kpi] for kpi in EVENT_TYPES)
            if windows not in found:
                parameters = detection_parameters(policy, period, every_incident=True)
                result = self.con.execute(selecting_sql(detection_sql()), parameters)
                found[windows] = incident_rows(result.fetchall())
        rows = [found[tuple(p.windows_minutes[kpi] for kpi in EVENT_TYPES)] for p in policies]
        return len(rows[0]), rows

    def close(self) -> None:
        """Close the database (its file stays in the work folder until the next run)."""
        self.con.close()


# --- the contact policy, offline -----------------------------------------------------------


def as_incident(row: IncidentRow, policy: Policy) -> Incident:
    """The handler's incident for a row (the id over what the row has: in the archive, a
    pseudonym where the handler has the phone number)."""
    return Incident(
        incident_id=incident_id(row.subscriber_id, row.event_type, row.timestamp, row.record_id),
        phone_number=row.subscriber_id,
        event_type=row.event_type,
        timestamp=row.timestamp,
        cell=row.cell,
        device=row.device,
        vendor=row.vendor,
        failure_rate=row.failure_rate,
        sessions=row.sessions,
        failures=row.failures,
        window_minutes=policy.windows_minutes[row.event_type],
        record_id=row.record_id,
    )


def is_above_threshold(row: IncidentRow, policy: Policy) -> bool:
    """The handler's own threshold test (strict, exact) for a row."""
    threshold = float(policy.thresholds[row.event_type])
    return above_threshold(as_incident(row, policy), threshold)


def contact_plan(incidents: Iterable[IncidentRow], policy: Policy) -> ContactPlan:
    """Who the policy would contact, when, and why not, by the handlers' own rules.

    The above-threshold incidents go through :func:`simulator.contact_plan.plan_contacts`,
    which calls ``feedback_loop.decision.decide`` as ``Read_after_incident`` does and, at
    each planned contact, re-checks what ``Trigger_Connect`` re-checks (gap, cap, calling
    hours in the subscriber's zone, staleness, the outage sample). This is the one place the
    what-if calls into the policy, so a new rule there is a new rule here.
    """
    return plan_contacts((as_incident(row, policy) for row in incidents), policy)


# --- figures -------------------------------------------------------------------------------


def estimate_connect_cost(calls_per_day: Mapping[str, int]) -> float:
    """Monthly Amazon Connect cost at these calls' mean day, from the cost model's price of a
    contacted episode (which includes the measured share of second attempts, which the
    what-if does not count as calls)."""
    if not calls_per_day:
        return 0.0
    mean = sum(calls_per_day.values()) / len(calls_per_day)
    return round(mean * DAYS_PER_MONTH * _connect_price(), 2)


@functools.cache
def _connect_price() -> float:
    """The cost model's price of a contacted episode: the same for every config of a run."""
    return connect_usd_per_episode()


def figures(
    candidate: Candidate,
    incidents: int,
    above: Sequence[IncidentRow],
    plan: ContactPlan,
    top: int = TOP_CELLS,
) -> dict[str, Any]:
    """The whatif.json object of one config (days and hours in the deployment's zone)."""
    policy = candidate.policy
    zone = ZoneInfo(policy.timezone)
    calls = plan.contacts
    per_day: Counter[str] = Counter()
    per_hour: Counter[str] = Counter()
    for call in calls:
        local = call.at.astimezone(zone)
        per_day[local.date().isoformat()] += 1
        per_hour[local.strftime("%Y-%m-%dT%H:00")] += 1
    busiest = min(per_hour.items(), key=lambda item: (-item[1], item[0]), default=(None, 0))
    engagements = sum(1 for d in plan.decisions if d.decision == Verdict.ENGAGE)
    subscribers: dict[str, set[str]] = defaultdict(set)
    incidents_by_cell: Counter[str] = Counter()
    for row in above:
        subscribers[row.cell].add(row.subscriber_id)
        incidents_by_cell[row.cell] += 1
    ranked = sorted(
        subscribers, key=lambda cell: (-len(subscribers[cell]), -incidents_by_cell[cell], cell)
    )
    return {
        "config": candidate.name,
        "overrides": candidate.overrides,
        "incidents": incidents,
        "incidents_above_threshold": len(above),
        "engagements": engagements,
        "calls": len(calls),
        "distinct_subscribers_called": len({c.phone_number for c in calls}),
        "calls_in_local_quiet_hours": sum(
            1 for c in calls if not policy.contact_rules.hours.allows(c.at, c.zones)
        ),
        "calls_per_day": dict(sorted(per_day.items())),
        "busiest_hour": {"hour": busiest[0], "calls": busiest[1], "timezone": policy.timezone},
        "suppressed": dict(sorted(plan.not_contacted.items())),
        "deferred": dict(sorted(plan.deferred.items())),
        "outages": len(plan.outages),
        "top_cells": ranked[:top],
        "cells": [
            {
                "cell": cell,
                "subscribers_above_threshold": len(subscribers[cell]),
                "incidents_above_threshold": incidents_by_cell[cell],
            }
            for cell in ranked[:top]
        ],
        "connect_cost_usd": estimate_connect_cost(per_day),
    }


def run_whatif(
    source: ProbeSource, candidates: Sequence[Candidate], progress: TextIO | None = None
) -> list[dict[str, Any]]:
    """Every candidate's figures, in the order given."""
    period = source.period()
    started = time.monotonic()
    incidents, found = source.incidents([c.policy for c in candidates], period)
    results = []
    for candidate, rows in zip(candidates, found, strict=True):
        above = [row for row in rows if is_above_threshold(row, candidate.policy)]
        plan = contact_plan(above, candidate.policy)
        results.append({**source.describe(), **figures(candidate, incidents, above, plan)})
    if progress is not None:
        progress.write(
            f"what-if: {len(candidates)} configs in {time.monotonic() - started:.1f} s\n"
        )
    return results


def write_results(results: Sequence[Mapping[str, Any]], out_dir: Path) -> Path:
    """``out_dir/whatif.json``: one object per config, in the order given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "whatif.json"
    path.write_text(json.dumps(list(results), indent=2) + "\n", encoding="utf-8")
    return path


def table(results: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of the headline figures (the README shows one)."""
    lines = [
        "| config | incidents | above threshold | calls | subscribers called | calls/day (max) "
        "| busiest hour | suppressed | top cells |",
        "|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        per_day = r["calls_per_day"].values()
        suppressed = ", ".join(f"{k} {v}" for k, v in r["suppressed"].items()) or "-"
        busiest = r["busiest_hour"]
        hour = f"{busiest['hour']} ({busiest['calls']})" if busiest["hour"] else "-"
        lines.append(
            f"| {r['config']} | {r['incidents']} | {r['incidents_above_threshold']} "
            f"| {r['calls']} | {r['distinct_subscribers_called']} | {max(per_day, default=0)} "
            f"| {hour} | {suppressed} | {', '.join(r['top_cells'][:5])} |"
        )
    return "\n".join(lines)


def main(
    probe_export: str,
    configs: Sequence[Path],
    out_dir: Path,
    athena: Mapping[str, Any] | None = None,
    stream: TextIO | None = None,
) -> Path:
    """The ``whatif`` command: load, run every config, write ``whatif.json``, print the table."""
    stream = stream or sys.stdout
    candidates = load_candidates(configs)
    started = time.monotonic()
    workdir = out_dir / "whatif-work"
    if probe_export.startswith("s3://"):
        from simulator.whatif_athena import AthenaProbes

        source: Any = AthenaProbes.from_options(probe_export, **dict(athena or {}))
    else:
        source = LocalProbes(Path(probe_export), workdir)
    try:
        results = run_whatif(source, candidates)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
        shutil.rmtree(workdir, ignore_errors=True)
    path = write_results(results, out_dir)
    stream.write(table(results) + "\n")
    first = results[0]
    records = first["probe_records"]
    read = f"{records} probe records" if records is not None else first["source"]
    stream.write(
        f"{read} ({first['first_day']} to {first['last_day']}), {len(results)} configs "
        f"in {time.monotonic() - started:.1f} s -> {path}\n"
    )
    return path
