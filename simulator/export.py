"""``python -m simulator export``: a large synthetic probe export, for the what-if at scale.

The default scenario's model (``simulator.scenario``: the city, its people, a day of each
person's sessions) for ``subscribers`` people over ``days`` days, one city and one
population for the whole export, a fresh day of sessions per day. Records are section-4
probe records in timestamp order, written day by day, so memory holds one day of sessions:
JSON Lines are written as they are made; Parquet goes through a DuckDB database on disk
and is copied to one file at the end (DuckDB keeps the insertion order).
"""

from __future__ import annotations

import csv
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from simulator.scenario import DEFAULT_DAY, City, Person, city, day_sessions, person

SUBSCRIBERS_PER_CELL = 10
DEGRADED_SHARE = 40  # one cell in 40 is badly degraded (5 of the default day's 200)
COLUMNS = ("timestamp", "phone_number", "cell", "event_type", "success", "device", "vendor")


@dataclass(frozen=True)
class ExportSummary:
    """What was written."""

    path: Path
    records: int
    subscribers: int
    days: int
    cells: int
    degraded_cells: tuple[str, ...]
    seconds: float


Row = tuple[str, str, str, str, bool, str, str]


def _day_rows(
    rng: random.Random, world: City, people: list[Person], day: datetime
) -> Iterator[Row]:
    """One day of everyone's sessions as section-4 rows (``COLUMNS``), in timestamp order."""
    sessions = []
    for who in people:
        sessions += day_sessions(rng, world, who)
    sessions.sort()
    date = day.strftime("%Y-%m-%d")
    for second, n, cell, kpi, ok, device in sessions:
        hour, rest = divmod(second, 3600)
        stamp = f"{date}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}Z"
        phone = people[n].subscriber.phone_number
        yield stamp, phone, cell, kpi, ok, device, world.cell_vendor[cell]


def export(
    subscribers: int,
    days: int,
    out: Path,
    *,
    seed: int = 7,
    cells: int | None = None,
    degraded: int | None = None,
    first_day: datetime = DEFAULT_DAY,
    progress: TextIO | None = None,
) -> ExportSummary:
    """Write the export to ``out`` (``.parquet``, else JSON Lines) and describe it."""
    if subscribers < 1 or days < 1:
        raise ValueError("subscribers and days must be at least 1")
    started = time.monotonic()
    cells = cells or max(1, subscribers // SUBSCRIBERS_PER_CELL)
    degraded = min(cells, degraded if degraded is not None else max(1, cells // DEGRADED_SHARE))
    rng = random.Random(seed)
    world = city(rng, cells, degraded)
    people = [person(rng, world, n) for n in range(subscribers)]
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = _ParquetWriter(out) if out.suffix == ".parquet" else _JsonLinesWriter(out)
    records = 0
    try:
        for index in range(days):
            day = first_day + timedelta(days=index)
            records += writer.write(_day_rows(random.Random(f"{seed}:{index}"), world, people, day))
            if progress is not None:
                progress.write(f"\rexport: day {index + 1}/{days}, {records} records")
                progress.flush()
        writer.close()
    finally:
        writer.cleanup()
    if progress is not None:
        progress.write("\n")
    return ExportSummary(
        out, records, subscribers, days, cells, tuple(world.degraded_cells),
        round(time.monotonic() - started, 1),
    )  # fmt: skip


class _JsonLinesWriter:
    def __init__(self, path: Path) -> None:
        self._file = path.open("w", encoding="utf-8")

    def write(self, rows: Iterable[Row]) -> int:
        count = 0
        for row in rows:
            self._file.write(json.dumps(dict(zip(COLUMNS, row, strict=True))) + "\n")
            count += 1
        return count

    def close(self) -> None:
        self._file.close()

    def cleanup(self) -> None:
        self._file.close()


class _ParquetWriter:
    """Appends each day (through a CSV file) to a DuckDB table on disk; one Parquet at the end."""

    def __init__(self, path: Path) -> None:
        import duckdb

        self._path = path
        self._work = tempfile.TemporaryDirectory(prefix="export-", dir=path.parent)
        self._csv = Path(self._work.name) / "day.csv"
        self._con = duckdb.connect(str(Path(self._work.name) / "export.duckdb"))
        self._con.execute(f"SET temp_directory = '{self._work.name}/spill'")
        self._con.execute("SET memory_limit = '1GB'")
        self._con.execute(
            "CREATE TABLE probes (timestamp VARCHAR, phone_number VARCHAR, cell VARCHAR, "
            "event_type VARCHAR, success BOOLEAN, device VARCHAR, vendor VARCHAR)"
        )

    def write(self, rows: Iterable[Row]) -> int:
        count = 0
        with self._csv.open("w", encoding="utf-8", newline="") as file:
            out = csv.writer(file)
            for stamp, phone, cell, kpi, ok, device, vendor in rows:
                out.writerow((stamp, phone, cell, kpi, "true" if ok else "false", device, vendor))
                count += 1
        self._con.execute(
            f"INSERT INTO probes SELECT * FROM read_csv('{self._csv}', header = false, "
            "columns = {'timestamp': 'VARCHAR', 'phone_number': 'VARCHAR', 'cell': 'VARCHAR', "
            "'event_type': 'VARCHAR', 'success': 'BOOLEAN', 'device': 'VARCHAR', "
            "'vendor': 'VARCHAR'})"
        )
        return count

    def close(self) -> None:
        self._con.execute(
            f"COPY probes TO '{self._path}' (FORMAT parquet, COMPRESSION zstd, "
            "ROW_GROUP_SIZE 1000000)"
        )
        self._con.close()

    def cleanup(self) -> None:
        self._con.close()
        self._work.cleanup()


def main(subscribers: int, days: int, out: Path, seed: int, stream: TextIO | None = None) -> int:
    """The ``export`` command."""
    stream = stream or sys.stdout
    summary = export(subscribers, days, out, seed=seed, progress=sys.stderr)
    stream.write(
        f"{summary.records} probe records ({summary.subscribers} subscribers, {summary.days} "
        f"days, {summary.cells} cells, {len(summary.degraded_cells)} degraded) "
        f"in {summary.seconds} s -> {summary.path}\n"
    )
    return 0
