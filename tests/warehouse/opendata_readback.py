"""Reading an open-data export back and comparing it with the warehouse, independently of the
export code: shared by the export tests on seeded data and on the pipeline's output."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client

from warehouse.opendata.datasets import DATASETS
from warehouse.opendata.periods import Period


def warehouse_rows(analyst: Client, name: str, period: Period) -> pd.DataFrame:
    """The dataset as the analyst reads it from the warehouse, independently of the export."""
    dataset = next(d for d in DATASETS if d.name == name)
    where = ""
    if dataset.time_column:
        where = (
            f" WHERE {dataset.time_column} >= toDateTime64('{period.start:%Y-%m-%d %H:%M:%S}', 0,"
            f" 'UTC') AND {dataset.time_column} < toDateTime64('{period.end:%Y-%m-%d %H:%M:%S}',"
            " 0, 'UTC')"
        )
    result = analyst.query(
        f"SELECT * FROM open_data.{name}{where} ORDER BY {', '.join(dataset.key)}"
    )
    return pd.DataFrame(result.result_rows, columns=list(result.column_names))


def canonical(value: Any) -> Any:
    """One representation per value whatever read it: UTC datetimes, dates, None for missing."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def rows_of(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [tuple(canonical(v) for v in row) for row in frame.itertuples(index=False)]


def read_csv(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    """A CSV file with the column types of `like` (times parsed from ISO 8601 UTC)."""
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype=str)
    for column in frame.columns:
        sample = next((v for v in like[column] if canonical(v) is not None), None)
        frame[column] = [parse_csv_value(v, sample) for v in frame[column]]
    return frame


def parse_csv_value(text: Any, sample: Any) -> Any:
    if not isinstance(text, str):
        return None
    if isinstance(sample, datetime):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    if isinstance(sample, date):
        return date.fromisoformat(text)
    if isinstance(sample, bool):
        return text == "true"
    if isinstance(sample, int):
        return int(text)
    if isinstance(sample, float):
        return float(text)
    return text


def assert_same_rows(actual: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for a, b in zip(got, want, strict=True):
            if isinstance(b, float) and a is not None:
                assert a == pytest.approx(b, rel=1e-6), (got, want)
            else:
                assert a == b, (got, want)
