"""The what-if over the probe archive in the account: the stack's named query, run by Athena.

    python -m simulator whatif --probe-export s3://<lake bucket>/probes/ \\
        --from 2026-11-01 --to 2026-11-30 [--workgroup subscriber_feedback_loop_whatif] \\
        [--config FILE]...

The SQL is the named query ``detect_incidents`` of the what-if workgroup (the stack
installs ``sql/detect_incidents.sql`` there), so the account runs exactly what the parity
test checks. One query counts every incident of the period and one per config returns
its above-threshold incidents; they are started together (Athena runs them in parallel,
each reading the partitions of the period plus a week before it for the longest window)
with their values as execution parameters, and a progress line shows their state and the
data scanned until all have finished. The contact policy then runs locally
(:func:`simulator.whatif.contact_plan`). Athena: parameterized queries
https://docs.aws.amazon.com/athena/latest/ug/querying-with-prepared-statements.html
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, TextIO

from feedback_loop.contract import PROBE_ARCHIVE
from feedback_loop.policy import Policy
from simulator.whatif import (
    IncidentRow,
    Period,
    WhatIfError,
    counting_sql,
    detection_parameters,
    incident_rows,
    selecting_sql,
)
from stacks.analytics import DATABASE
from stacks.probe_archive import WHATIF_QUERY, WHATIF_WORKGROUP

CATALOG = "AwsDataCatalog"
DONE = ("SUCCEEDED", "FAILED", "CANCELLED")


def literal(value: Any) -> str:
    """An execution parameter as Athena takes it: SQL literal text (strings quoted)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise TypeError(f"unexpected parameter {value!r}")
    return str(value)


def _day(text: str | None, option: str) -> str:
    if not text:
        raise WhatIfError(f"{option} YYYY-MM-DD is required for the archive in the account")
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as error:
        raise WhatIfError(f"{option}: expected YYYY-MM-DD, got {text!r}") from error


class AthenaProbes:
    """The probe archive behind the Glue table ``probes``, queried through Athena."""

    def __init__(
        self,
        athena: Any,
        prefix: str,
        first_day: str,
        last_day: str,
        workgroup: str = WHATIF_WORKGROUP,
        *,
        progress: TextIO | None = None,
        poll_seconds: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if first_day > last_day:
            raise WhatIfError(f"--from {first_day} is after --to {last_day}")
        self.athena = athena
        self.prefix = prefix
        self.first_day, self.last_day = first_day, last_day
        self.workgroup = workgroup
        self.progress = progress if progress is not None else sys.stderr
        self.poll_seconds = poll_seconds
        self.sleep = sleep
        self.scanned_bytes = 0
        self.executions: dict[str, str] = {}
        self._check_table()
        self.sql = self._named_query()

    @classmethod
    def from_options(
        cls,
        probe_export: str,
        *,
        first_day: str | None = None,
        last_day: str | None = None,
        workgroup: str | None = None,
        region: str | None = None,
    ) -> AthenaProbes:
        """From the command line's options, with the default AWS credentials."""
        import boto3

        first, last = _day(first_day, "--from"), _day(last_day, "--to")
        athena = boto3.Session(region_name=region).client("athena")
        return cls(athena, probe_export, first, last, workgroup or WHATIF_WORKGROUP)

    # --- set-up -----------------------------------------------------------------------------

    def _check_table(self) -> None:
        """The Glue table ``probes`` must be the archive the operator named."""
        metadata = self.athena.get_table_metadata(
            CatalogName=CATALOG, DatabaseName=DATABASE, TableName=PROBE_ARCHIVE
        )["TableMetadata"]
        location = str(metadata.get("Parameters", {}).get("location", ""))
        if location.rstrip("/") != self.prefix.rstrip("/"):
            raise WhatIfError(
                f"{self.prefix} is not the archive of {DATABASE}.{PROBE_ARCHIVE} "
                f"(its location is {location or 'not reported'})"
            )

    def _named_query(self) -> str:
        """The text of ``detect_incidents`` in the workgroup (as the stack installed it)."""
        ids: list[str] = []
        for page in self.athena.get_paginator("list_named_queries").paginate(
            WorkGroup=self.workgroup
        ):
            ids += page.get("NamedQueryIds", [])
        for start in range(0, len(ids), 50):
            found = self.athena.batch_get_named_query(NamedQueryIds=ids[start : start + 50])
            for query in found.get("NamedQueries", []):
                if query["Name"] == WHATIF_QUERY:
                    return str(query["QueryString"]).strip().rstrip(";")
        raise WhatIfError(
            f"no named query {WHATIF_QUERY!r} in Athena workgroup {self.workgroup!r}: "
            "is the stack deployed in this account and region?"
        )

    # --- the ProbeSource interface ---------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.prefix,
            "probe_records": None,
            "rejected_records": None,
            "first_day": self.first_day,
            "last_day": self.last_day,
            "athena_workgroup": self.workgroup,
            "athena_query_execution_ids": dict(self.executions),
            "athena_data_scanned_bytes": self.scanned_bytes,
        }

    def period(self) -> Period:
        return Period.of_days(self.first_day, self.last_day, lead_in=True)

    def incidents(
        self, policies: Sequence[Policy], period: Period
    ) -> tuple[int, list[list[IncidentRow]]]:
        started = {
            "incidents": self._start(
                counting_sql(self.sql),
                detection_parameters(policies[0], period, every_incident=True),
            )
        }
        for index, policy in enumerate(policies, start=1):
            started[f"config {index}"] = self._start(
                selecting_sql(self.sql), detection_parameters(policy, period)
            )
        self._wait(started)
        ((count,),) = self._rows(started["incidents"])
        rows = [
            incident_rows(self._rows(started[f"config {i}"])) for i in range(1, len(policies) + 1)
        ]
        return int(count or 0), rows

    # --- Athena ------------------------------------------------------------------------------

    def _start(self, sql: str, parameters: Sequence[Any]) -> str:
        response = self.athena.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Catalog": CATALOG, "Database": DATABASE},
            WorkGroup=self.workgroup,
            ExecutionParameters=[literal(value) for value in parameters],
        )
        return str(response["QueryExecutionId"])

    def _wait(self, started: dict[str, str]) -> None:
        """Poll until every query has finished, showing their progress on one line."""
        self.executions = dict(started)
        began = time.monotonic()
        states: dict[str, dict[str, Any]] = {}
        while True:
            for label, execution_id in started.items():
                if states.get(label, {}).get("State") in DONE:
                    continue
                execution = self.athena.get_query_execution(QueryExecutionId=execution_id)
                query = execution["QueryExecution"]
                states[label] = {
                    "State": query["Status"]["State"],
                    "Reason": query["Status"].get("StateChangeReason", ""),
                    "Scanned": query.get("Statistics", {}).get("DataScannedInBytes", 0),
                }
            self.scanned_bytes = sum(int(s["Scanned"]) for s in states.values())
            line = " | ".join(f"{label} {s['State'].lower()}" for label, s in states.items())
            self.progress.write(
                f"\rAthena: {line} | {self.scanned_bytes / 1e9:.2f} GB scanned, "
                f"{time.monotonic() - began:.0f} s"
            )
            self.progress.flush()
            if all(s["State"] in DONE for s in states.values()):
                break
            self.sleep(self.poll_seconds)
        self.progress.write("\n")
        failed = {label: s for label, s in states.items() if s["State"] != "SUCCEEDED"}
        if failed:
            label, state = next(iter(failed.items()))
            raise WhatIfError(
                f"Athena query {label} ({started[label]}) {state['State']}: {state['Reason']}"
            )

    def _rows(self, execution_id: str) -> list[list[str | None]]:
        """Every result row after the header, as text (``None`` for SQL NULL)."""
        rows: list[list[str | None]] = []
        for page in self.athena.get_paginator("get_query_results").paginate(
            QueryExecutionId=execution_id
        ):
            rows += [
                [cell.get("VarCharValue") for cell in row["Data"]]
                for row in page["ResultSet"]["Rows"]
            ]
        return rows[1:]
