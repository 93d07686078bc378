"""The twin's Athena: DuckDB runs the repo's sql/*.sql over the local copy of the lake.

The SQL files are the same ones the stack installs as Athena named queries, so a ranking
tested here is the ranking operations see in the account.
"""

import json
from pathlib import Path
from typing import Any

import duckdb

from feedback_loop.contract import ANALYTICS_TABLES, LAKE_TABLES

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Column types of the lake tables, from the contract the Glue tables are generated from too.
# Explicit types keep an empty or missing prefix a typed table.
LAKE_COLUMNS: dict[str, dict[str, str]] = {
    name: dict(LAKE_TABLES[name].engine_columns("duckdb")) for name in ANALYTICS_TABLES
}

# Result name -> SQL file; the result names are the dimensions the report breaks down by.
QUERIES = {
    "cell": "cell_priority.sql",
    "device": "device_priority.sql",
    "vendor": "vendor_priority.sql",
}


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _create_view(con: duckdb.DuckDBPyConnection, lake_dir: Path, table: str) -> None:
    columns = LAKE_COLUMNS[table]
    files = sorted((lake_dir / table).glob("dt=*/*.jsonl.gz"))
    if files:
        struct = ", ".join(f"{_quote(name)}: {_quote(kind)}" for name, kind in columns.items())
        source = (
            f"SELECT * FROM read_json({_quote(str(lake_dir / table / 'dt=*' / '*.jsonl.gz'))}, "
            f"format = 'newline_delimited', compression = 'gzip', hive_partitioning = true, "
            f"hive_types = {{'dt': 'VARCHAR'}}, columns = {{{struct}}})"
        )
    else:
        typed_nulls = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns.items())
        source = f"SELECT {typed_nulls}, CAST(NULL AS VARCHAR) AS dt WHERE false"
    con.execute(f"CREATE OR REPLACE VIEW {table} AS {source}")


def read_sql(name: str) -> str:
    """The text of one analytics SQL file, exactly as Athena gets it."""
    return (SQL_DIR / name).read_text(encoding="utf-8")


def run_analytics(lake_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Run the priority queries over ``lake_dir/<prefix>/dt=.../*.jsonl.gz``.

    Returns ``{"cell": rows, "device": rows, "vendor": rows}``, each list most urgent first.
    """
    con = duckdb.connect(":memory:")
    try:
        for table in LAKE_COLUMNS:
            _create_view(con, Path(lake_dir), table)
        results: dict[str, list[dict[str, Any]]] = {}
        for dimension, sql_file in QUERIES.items():
            cursor = con.execute(read_sql(sql_file))
            names = [column[0] for column in cursor.description]
            results[dimension] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return results
    finally:
        con.close()


def _json_row(row: dict[str, Any]) -> dict[str, Any]:
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


def write_outputs(results: dict[str, list[dict[str, Any]]], out_dir: Path) -> dict[str, Path]:
    """Write ``<dimension>_priority.json`` (arrays, most urgent first) for each result."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for dimension, rows in results.items():
        path = out_dir / f"{dimension}_priority.json"
        path.write_text(json.dumps([_json_row(row) for row in rows], indent=2) + "\n", "utf-8")
        written[dimension] = path
    return written
