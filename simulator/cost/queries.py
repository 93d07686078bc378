"""How many times each dashboard query reads each lake table.

Athena's engine version 3 is built on Trino, whose ``SELECT`` reference warns that
"Currently, the SQL for the ``WITH`` clause will be inlined anywhere the named relation
is used" (trino.io, "SELECT", "WITH clause"). If Athena does the same, a step referenced
three times is evaluated three times, and its tables are read three times.
:func:`table_reads` inlines every reference in that way and counts the tables it
reaches: the most a query can read. The optimizer can drop some of those reads (a union
branch a filter rules out), so a query reads between once per table and this count; on
an account, the queries' data scanned (``DataScannedInBytes`` of ``GetQueryExecution``)
tells which.

The SQL is parsed by DuckDB (``json_serialize_sql``), the engine the twin runs the same
files in. Two forms are not counted as Trino would run them, and the dashboard's SQL uses
neither: ``WITH RECURSIVE`` (a step's reference to itself counts as a table) and a simple
``CASE (subquery) WHEN ...`` (DuckDB repeats the operand in every ``WHEN``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb

from simulator.analytics import QUERIES, SQL_DIR

# A relation in scope: a WITH step's query and the steps its own body can see.
_Scope = Mapping[str, tuple[Any, "_Scope"]]


def table_reads(sql: str) -> Counter[str]:
    """The tables ``sql`` reads, each counted once per read with every ``WITH`` step inlined
    where it is referenced."""
    with duckdb.connect() as connection:
        [(serialized,)] = connection.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    tree = json.loads(serialized)
    if tree["error"]:
        raise ValueError(f"cannot parse the query: {tree.get('error_message', tree)}")
    return _reads(tree["statements"], {})


def _reads(node: Any, scope: _Scope) -> Counter[str]:
    if isinstance(node, list):
        return sum((_reads(child, scope) for child in node), Counter())
    if not isinstance(node, dict):
        return Counter()
    steps = node.get("cte_map", {}).get("map", [])
    if steps:
        scope = dict(scope)
        for step in steps:  # each step sees the ones before it
            scope[step["key"].lower()] = (step["value"]["query_node"], dict(scope))
    if node.get("type") == "BASE_TABLE":
        name = node["table_name"].lower()
        if not node["schema_name"] and name in scope:
            body, seen_from_body = scope[name]
            return _reads(body, seen_from_body)
        return Counter({name: 1})
    return sum((_reads(child, scope) for key, child in node.items() if key != "cte_map"), Counter())


def dashboard_table_reads(sql_dir: Path = SQL_DIR) -> dict[str, Counter[str]]:
    """Per dashboard query (the files the twin runs as Athena does, ``QUERIES``), the reads
    of :func:`table_reads`."""
    reads = {}
    for name in sorted(set(QUERIES.values())):
        path = sql_dir / name
        try:
            reads[name] = table_reads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
    return reads
