"""The twin's Athena: DuckDB runs the repo's sql/*.sql over the local copy of the lake.

The SQL files are the same ones the stack installs as Athena named queries, and they get the
same two parameters (first and last day of the period), so a ranking tested here is the
ranking operations see in the account.
"""

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import duckdb

from feedback_loop.contract import ANALYTICS_TABLES, LAKE_TABLES, REMEDIATION_TABLE

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Column types of the lake tables, from the contract the Glue tables are generated from too.
# Explicit types keep an empty or missing prefix a typed table.
LAKE_COLUMNS: dict[str, dict[str, str]] = {
    name: dict(LAKE_TABLES[name].engine_columns("duckdb"))
    for name in (*ANALYTICS_TABLES, REMEDIATION_TABLE)
}

# Result name -> SQL file. priority.sql answers for four breakdowns at once.
QUERIES = {
    "priority": "priority.sql",
    "cell_trends": "cell_trends.sql",
    "fix_effectiveness": "fix_effectiveness.sql",
}
# priority.sql breakdown -> the key its ``item`` takes in ``<breakdown>_priority.json``.
BREAKDOWNS = {"cell": "cell", "cell_kpi": "cell", "device": "device", "vendor": "vendor"}
# Columns that only mean something for some breakdowns (left out of the others' JSON).
_NET_COLUMNS = (
    "compared",
    "net_change",
    "net_change_low",
    "net_change_high",
    "net_loss",
    "net_loss_low",
    "net_loss_high",
)
PARAMETERS = 2  # ? first day, ? last day: every query takes exactly these
_DAY = re.compile(r"dt=(\d{4}-\d{2}-\d{2})$")


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _create_view(con: duckdb.DuckDBPyConnection, lake_dir: Path, table: str) -> None:
    columns = LAKE_COLUMNS[table]
    struct = ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns.items())
    if LAKE_TABLES[table].storage == "csv":
        pattern, partition = lake_dir / table / "*.csv", ""
        files = sorted((lake_dir / table).glob("*.csv"))
        reader = f"read_csv({_quote(str(pattern))}, header = true, columns = {{{struct}}})"
    else:
        pattern, partition = (
            lake_dir / table / "dt=*" / "*.jsonl.gz",
            ", CAST(NULL AS VARCHAR) AS dt",
        )
        files = sorted((lake_dir / table).glob("dt=*/*.jsonl.gz"))
        reader = (
            f"read_json({_quote(str(pattern))}, format = 'newline_delimited', "
            f"compression = 'gzip', hive_partitioning = true, hive_types = {{'dt': 'VARCHAR'}}, "
            f"columns = {{{struct}}})"
        )
    if files:
        source = f"SELECT * FROM {reader}"
    else:
        typed_nulls = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
        source = f"SELECT {typed_nulls}{partition} WHERE false"
    con.execute(f"CREATE OR REPLACE VIEW {table} AS {source}")


def read_sql(name: str) -> str:
    """The text of one analytics SQL file, exactly as Athena gets it."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


def lake_period(lake_dir: Path) -> tuple[str, str] | None:
    """First and last day with a partition under ``lake_dir`` (None for an empty lake)."""
    days = sorted(
        match.group(1)
        for table in ANALYTICS_TABLES
        for folder in (Path(lake_dir) / table).glob("dt=*")
        if (match := _DAY.search(folder.name))
    )
    return (days[0], days[-1]) if days else None


def run_analytics(
    lake_dir: Path, start: str | None = None, end: str | None = None
) -> dict[str, Any]:
    """Run every query over ``lake_dir/<prefix>/...`` for the days ``start``..``end``.

    The period defaults to the lake's first and last day. Returns ``{"period": {"start",
    "end"}, "cell": rows, "cell_kpi": rows, "device": rows, "vendor": rows, "cell_trends":
    rows, "fix_effectiveness": rows}``; priority rows are most urgent first.
    """
    lake_dir = Path(lake_dir)
    found = lake_period(lake_dir)
    start = start or (found[0] if found else "1970-01-01")
    end = end or (found[1] if found else start)
    con = duckdb.connect(":memory:")
    try:
        for table in LAKE_COLUMNS:
            _create_view(con, lake_dir, table)
        raw = {name: _query(con, read_sql(file), [start, end]) for name, file in QUERIES.items()}
    finally:
        con.close()
    results: dict[str, Any] = {"period": {"start": start, "end": end}}
    for breakdown, key in BREAKDOWNS.items():
        results[breakdown] = [
            _priority_row(row, key) for row in raw["priority"] if row["breakdown"] == breakdown
        ]
    results["cell_trends"] = raw["cell_trends"]
    results["fix_effectiveness"] = raw["fix_effectiveness"]
    return results


def _query(con: duckdb.DuckDBPyConnection, sql: str, parameters: list[str]) -> list[dict]:
    cursor = con.execute(sql, parameters)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _priority_row(row: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A priority.sql row as its JSON output names it: ``item`` becomes ``cell``/``device``/..."""
    breakdown = row["breakdown"]
    dropped = {"breakdown", "item"}
    if breakdown != "cell_kpi":
        dropped.add("kpi")
    if breakdown not in ("device", "vendor"):
        dropped.update(_NET_COLUMNS)
    return {key: row["item"]} | {k: v for k, v in row.items() if k not in dropped}


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """Plain JSON types: ids as strings, counts as ints, sentiment as floats."""
    converted: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            converted[key] = value
        elif isinstance(value, int):
            converted[key] = int(value)
        else:
            converted[key] = float(value)
    return converted


def write_outputs(results: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write each result list as a JSON array: ``<breakdown>_priority.json``, ``cell_trends.json``,
    ``fix_effectiveness.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, rows in results.items():
        if not isinstance(rows, list):
            continue
        path = out_dir / (f"{name}_priority.json" if name in BREAKDOWNS else f"{name}.json")
        path.write_text(json.dumps([_json_row(row) for row in rows], indent=2) + "\n", "utf-8")
        written[name] = path
    return written


def remediation_csv(events: Iterable[Mapping[str, str]]) -> bytes:
    """Remediation events as the CSV an operator uploads under ``remediation/``."""
    columns = LAKE_TABLES[REMEDIATION_TABLE].column_names
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({name: event.get(name, "") for name in columns} for event in events)
    return buffer.getvalue().encode("utf-8")
