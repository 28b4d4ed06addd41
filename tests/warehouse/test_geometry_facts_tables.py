"""Migration 0006 against the real engine behind the embedded endpoint: line_crossings_1m
(recreated), zone_occupancy_1m, and the hourly line-crossings rollup under re-emission and
duplicates."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from warehouse.migrate import load_migrations, migrate
from warehouse.rollups import wait_for_rollups
from warehouse.sink import COLUMNS

START = datetime(2026, 3, 14, 21, 47, tzinfo=UTC)
PCU = {"car": 1.0, "motorbike": 0.3, "pedestrian": 0.0}


@pytest.fixture
def database() -> str:
    return f"geo_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(connect: Callable[..., Client], database: str) -> Client:
    client = connect(database=None)
    migrate(client, database, raw_ttl_days=7)
    return client


def crossing_row(
    window_start: datetime,
    orientation: str,
    vehicle_class: str,
    frames: int,
    crossings: int,
    speeds: list[float],
    camera_id: str = "cam-a",
) -> list[Any]:
    factor = PCU[vehicle_class]
    values = {
        "camera_id": camera_id,
        "line_id": "main",
        "window_start": window_start,
        "window_end": window_start + timedelta(minutes=1),
        "direction": {"positive": "eastbound", "negative": "westbound"}[orientation],
        "orientation": orientation,
        "vehicle_class": vehicle_class,
        "frames": frames,
        "crossings": crossings,
        "pcu_factor": factor,
        "pcu": crossings * factor,
        "pcu_per_hour": crossings * factor * 60,
        "pcu_version": "test-v1",
        "speed_samples": len(speeds),
        "speed_kmh_mean": sum(speeds) / len(speeds) if speeds else None,
        "speed_kmh_p85": max(speeds) if speeds else None,
        "emitted_at": window_start + timedelta(seconds=frames),
    }
    return [values[c] for c in COLUMNS["line_crossings_1m"]]


def test_every_emission_and_repeat_collapses_to_the_final_one_and_rolls_up_hourly(
    client: Client, database: str, connect: Callable[..., Client]
) -> None:
    rng = random.Random(6)
    rows: list[list[Any]] = []
    final: dict[tuple[datetime, str, str], tuple[int, int, list[float]]] = {}
    for offset in sorted(rng.sample(range(150), 40)):  # 150 minutes: three UTC hours
        window_start = START + timedelta(minutes=offset)
        frames_final = rng.randint(5, 120)
        for orientation in ("positive", "negative"):
            for vehicle_class in PCU:
                events = sorted(rng.sample(range(1, frames_final + 1), rng.randint(0, 4)))
                speeds = [round(rng.uniform(5, 60), 1) for _ in events]
                final[(window_start, orientation, vehicle_class)] = (
                    frames_final,
                    len(events),
                    speeds,
                )
                for frames in sorted({*rng.sample(range(1, frames_final), 2), frames_final}):
                    seen = [e for e in events if e <= frames]
                    row = crossing_row(
                        window_start,
                        orientation,
                        vehicle_class,
                        frames,
                        len(seen),
                        speeds[: len(seen)],
                    )
                    rows.append(row)
                    if rng.random() < 0.3:
                        rows.append(list(row))
    rng.shuffle(rows)
    table = f"{database}.line_crossings_1m"
    for i in range(0, len(rows), 37):
        client.insert(table, rows[i : i + 37], column_names=COLUMNS["line_crossings_1m"])

    stored = {
        (ws.replace(tzinfo=UTC), o, c): (f, n, s)
        for ws, o, c, f, n, s in client.query(
            f"SELECT window_start, orientation, vehicle_class, frames, crossings, speed_samples "
            f"FROM {table} FINAL"
        ).result_rows
    }
    assert stored == {k: (f, n, len(s)) for k, (f, n, s) in final.items()}

    expected: dict[tuple[datetime, str, str], list[Any]] = defaultdict(lambda: [0, 0, 0.0, []])
    for (window_start, orientation, vehicle_class), (_, n, speeds) in final.items():
        acc = expected[(window_start.replace(minute=0), orientation, vehicle_class)]
        acc[0] += 1
        acc[1] += n
        acc[2] += n * PCU[vehicle_class]
        acc[3].extend(speeds)
    # line_crossings_1h trails the minute facts by one refresh (every 5 s)
    assert wait_for_rollups(connect(database=database), START, timeout_s=60)
    hourly = client.query(
        "SELECT hour, orientation, vehicle_class, minutes_covered, crossings, pcu, "
        f"pcu_per_hour, speed_samples, speed_kmh_mean FROM {database}.line_crossings_1h"
    ).result_rows
    assert len(hourly) == len(expected)
    for hour, orientation, vehicle_class, minutes, n, pcu, per_hour, samples, mean in hourly:
        want_minutes, want_n, want_pcu, want_speeds = expected[
            (hour.replace(tzinfo=UTC), orientation, vehicle_class)
        ]
        assert (minutes, n, samples) == (want_minutes, want_n, len(want_speeds))
        assert pcu == pytest.approx(want_pcu)
        assert per_hour == pytest.approx(want_pcu * 60 / want_minutes)
        if want_speeds:
            assert mean == pytest.approx(sum(want_speeds) / len(want_speeds), rel=1e-3)
        else:
            assert mean is None


def test_zone_occupancy_keeps_the_emission_with_most_frames(client: Client, database: str) -> None:
    def row(frames: int, objects: int, classes: dict[str, float]) -> list[Any]:
        values = {
            "camera_id": "cam-a",
            "zone_id": "junction",
            "zone_kind": None,
            "window_start": START,
            "window_end": START + timedelta(minutes=1),
            "frames": frames,
            "objects": objects,
            "mean_objects": objects / frames,
            "max_objects": min(objects, 3),
            "occupied_frames": min(frames, objects),
            "occupied_share": min(frames, objects) / frames,
            "mean_pcu": objects / frames,
            "pcu_version": "test-v1",
            "mean_objects_by_class": classes,
            "emitted_at": START + timedelta(seconds=frames),
        }
        return [values[c] for c in COLUMNS["zone_occupancy_1m"]]

    rows = [row(10, 4, {"car": 0.4}), row(30, 9, {"car": 0.2, "pedestrian": 0.1}), row(20, 6, {})]
    table = f"{database}.zone_occupancy_1m"
    client.insert(table, rows + rows[:1], column_names=COLUMNS["zone_occupancy_1m"])
    ((frames, objects, kind, by_class),) = client.query(
        f"SELECT frames, objects, zone_kind, mean_objects_by_class FROM {table} FINAL"
    ).result_rows
    assert (frames, objects, kind) == (30, 9, None)
    assert by_class == pytest.approx({"car": 0.2, "pedestrian": 0.1})


def test_0006_refuses_to_recreate_a_line_crossings_table_that_holds_rows(
    client: Client, connect: Callable[..., Client]
) -> None:
    """Forward-only and safe: the old table is dropped only while empty."""
    database = f"old_{uuid.uuid4().hex[:8]}"
    before = [m for m in load_migrations() if m.version < 6]
    client = connect(database=None)
    migrate(client, database, 7, before)
    old_columns = ["camera_id", "line_id", "window_start", "window_end", "direction"]
    old_columns += ["vehicle_class", "crossings", "speed_samples", "pcu_factor", "pcu"]
    old_columns += ["pcu_version", "emitted_at"]
    old_row = ["cam", "l", START, START + timedelta(minutes=1), "in", "car", 1, 0, 1.0, 1.0]
    client.insert(
        f"{database}.line_crossings_1m", [[*old_row, "v", START]], column_names=old_columns
    )
    with pytest.raises(DatabaseError, match="holds rows"):
        migrate(client, database, 7)
    assert client.command(f"SELECT count() FROM {database}.line_crossings_1m") == 1
    client.command(f"TRUNCATE TABLE {database}.line_crossings_1m")
    applied = migrate(client, database, 7)
    assert applied[0].version == 6
    columns = client.query(
        f"SELECT name, type FROM system.columns WHERE database = '{database}' "
        "AND table = 'line_crossings_1m'"
    ).result_rows
    assert ("direction", "LowCardinality(String)") in columns
    # what the sink writes, and when the row arrived (0012: the warehouse sets it)
    assert [n for n, _ in columns] == [*COLUMNS["line_crossings_1m"], "loaded_at"]
