"""Open data from what the real pipeline produced: `citycam export` of the run's day reads back
with pyarrow and pandas exactly as the warehouse has it, and carries no frame reference."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from citycam.cli import load_registry_dimensions
from citycam.clickhouse import connect
from tests.integration.pipeline import Pipeline, wait_for_warehouse
from tests.warehouse.opendata_readback import (
    assert_same_rows,
    read_csv,
    rows_of,
    warehouse_rows,
)
from warehouse.opendata.datasets import datasets_for
from warehouse.opendata.periods import Period
from warehouse.rollups import wait_for_rollups

pytestmark = pytest.mark.integration


def test_export_of_the_pipeline_day_matches_the_warehouse(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    settings = pipeline.settings
    wait_for_warehouse(pipeline)
    load_registry_dimensions(settings, settings.cameras_file)  # as `citycam warehouse migrate`
    analyst = connect(
        settings.warehouse,
        username=settings.warehouse.analyst_username,
        password=settings.warehouse.analyst_password.get_secret_value(),
    )
    since = datetime.now(UTC) - timedelta(days=1)  # the run's day, whatever the clock says
    assert wait_for_rollups(analyst, since, timeout_s=60), "the rollups did not catch up"
    day = Period.parse("day", datetime.now(UTC).strftime("%Y-%m-%d"), None)
    done = subprocess.run(
        [sys.executable, "-m", "citycam.cli", "export", "--date", day.id, "--to", str(tmp_path)],
        env=os.environ,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    folder = tmp_path / day.id
    for dataset in datasets_for("day"):
        expected = warehouse_rows(analyst, dataset.name, day)
        parquet = pq.read_table(folder / f"{dataset.name}.parquet").to_pandas()
        assert_same_rows(rows_of(parquet), rows_of(expected))
        if expected.empty:  # (an empty result carries no column names to type the CSV by)
            assert len((folder / f"{dataset.name}.csv").read_text().splitlines()) == 1
            continue
        csv = read_csv(folder / f"{dataset.name}.csv", expected)
        assert_same_rows(rows_of(csv), rows_of(expected))
    # The run's two cameras with their density, flow and occupancy made it out.
    figures = ("traffic_density_hourly", "traffic_flow_hourly", "zone_occupancy_hourly")
    for name in ("cameras", *figures):
        cameras = set(pq.read_table(folder / f"{name}.parquet").column("camera_id").to_pylist())
        assert cameras == {"street-bikes", "crossing-vtest"}, name
    frame_ids = [row[0] for row in analyst.query("SELECT frame_id FROM frames").result_rows]
    frames_dir = str(settings.data_dir / "frames")
    for path in folder.iterdir():
        data = path.read_bytes()
        assert frames_dir.encode() not in data, path.name
        assert not any(frame_id.encode() in data for frame_id in frame_ids), path.name
