"""Reading a dataset for a period through the open-data user, and writing it as CSV and Parquet.

The rows come as Arrow straight from the warehouse, so the Parquet file keeps the warehouse's
types (unsigned integers, UTC timestamps, dates, nullable columns) and each column carries its
description from the view. ClickHouse's Arrow output gives DateTime as a bare UInt32 and Date
as UInt16; the query casts them to DateTime64 and Date32, which arrive as UTC timestamps and
dates.

CSV for spreadsheets: UTF-8, a header line, comma separated, RFC 4180 quoting, empty for
missing values, times in ISO 8601 UTC (`2026-11-22T14:00:00Z`), dates as `2026-11-22`,
booleans as true/false.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.opendata.datasets import Dataset
from warehouse.opendata.periods import Period

if TYPE_CHECKING:
    import pyarrow as pa
    from clickhouse_connect.driver.client import Client

OPEN_DATA_DATABASE = "open_data"
_DATETIME = re.compile(r"^(Nullable\()?DateTime(\(.*\))?\)?$")  # not DateTime64
_DATE = re.compile(r"^(Nullable\()?Date\)?$")
_SQL_TIME = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # the view's ClickHouse type
    description: str


@dataclass(frozen=True)
class Extract:
    """One dataset's rows for one period."""

    dataset: Dataset
    columns: tuple[Column, ...]
    table: pa.Table


def describe(client: Client, view: str) -> tuple[Column, ...]:
    """The view's columns with their types and comments (DESCRIBE is open to the open-data user)."""
    rows = client.query(f"DESCRIBE TABLE {OPEN_DATA_DATABASE}.{_quote(view)}").result_rows
    return tuple(Column(str(r[0]), str(r[1]), str(r[4])) for r in rows)


def select_sql(dataset: Dataset, columns: tuple[Column, ...]) -> str:
    """The dataset's rows in the period (`{start}`, `{end}` parameters), sorted by its key."""
    select = ", ".join(_arrow_friendly(c) for c in columns)
    sql = f"SELECT {select} FROM {OPEN_DATA_DATABASE}.{_quote(dataset.name)}"
    if dataset.time_column:
        time = _quote(dataset.time_column)
        # A Date compares as its midnight: a day's rows for a day period.
        sql += (
            f" WHERE {time} >= {{start:DateTime64(6, 'UTC')}}"
            f" AND {time} < {{end:DateTime64(6, 'UTC')}}"
        )
    return sql + " ORDER BY " + ", ".join(_quote(k) for k in dataset.key)


def read_dataset(client: Client, dataset: Dataset, period: Period) -> Extract:
    columns = describe(client, dataset.name)
    missing = set(dataset.key) - {c.name for c in columns}
    if missing:
        raise ValueError(f"open_data.{dataset.name} lacks its key columns {sorted(missing)}")
    table = client.query_arrow(
        select_sql(dataset, columns),
        parameters={"start": _sql_time(period.start), "end": _sql_time(period.end)},
    )
    return Extract(dataset, columns, _with_descriptions(table, columns))


def write_parquet(extract: Extract, path: Path) -> None:
    import pyarrow.parquet as pq

    pq.write_table(extract.table, path)


def write_csv(extract: Extract, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    table = extract.table
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            # %S carries the fraction for sub-second units: 14:00:00.123Z
            text = pc.strftime(table.column(i), format="%Y-%m-%dT%H:%M:%SZ")
            table = table.set_column(i, field.name, text)
    pcsv.write_csv(table, path, pcsv.WriteOptions(quoting_style="needed"))


def _arrow_friendly(column: Column) -> str:
    name = _quote(column.name)
    if _DATETIME.match(column.type):
        return f"toDateTime64({name}, 0, 'UTC') AS {name}"
    if _DATE.match(column.type):
        return f"toDate32({name}) AS {name}"
    return name


def _with_descriptions(table: pa.Table, columns: tuple[Column, ...]) -> pa.Table:
    import pyarrow as pa

    described = {c.name: c.description for c in columns}
    fields = [
        field.with_metadata({"description": described.get(field.name, "")})
        for field in table.schema
    ]
    return table.cast(pa.schema(fields))


def _sql_time(moment: datetime) -> str:
    return moment.strftime(_SQL_TIME)


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"
