"""The city model (migration 0002) against the real engine behind the embedded endpoint:
dimensions, traffic rollups under re-emission and duplicates, and the open-data views."""

from __future__ import annotations

import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from citycam.cameras import Camera, CameraRegistry
from warehouse.dimensions import DimensionError, load_dimensions
from warehouse.migrate import load_migrations, migrate
from warehouse.sink import COLUMNS

PCU = {"car": 1.0, "motorbike": 0.3, "bus": 2.5}


@pytest.fixture
def database() -> str:
    return f"city_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(connect: Callable[..., Client], database: str) -> Client:
    client = connect(database=None)
    migrate(client, database, raw_ttl_days=7)
    return client


def camera(camera_id: str, **changes: Any) -> Camera:
    fields: dict[str, Any] = {
        "id": camera_id,
        "name": f"Camera {camera_id}",
        "lat": 16.46,
        "lon": 107.59,
        "district": "Phu Hoi",
        "source": f"/footage/{camera_id}.mp4",
        "sample_fps": 2,
    }
    fields.update(changes)
    return Camera(**fields)


def final_rows(client: Client, database: str, table: str) -> dict[str, dict[str, Any]]:
    result = client.query(f"SELECT * FROM {database}.{table} FINAL")
    return {row[0]: dict(zip(result.column_names, row, strict=True)) for row in result.result_rows}


# ---------------------------------------------------------------------------------------------
# Dimensions


def test_dimensions_load_reload_and_update(client: Client, database: str) -> None:
    secret_url = "rtsp://admin:s3cret-pw@10.0.0.5/stream1"
    registry = CameraRegistry(
        cameras=(
            camera(
                "cam-a", source=secret_url, road_segment="le-loi-1", road_class="urban arterial"
            ),
            camera("cam-b", lat=16.48, road_segment="le-loi-1", road_class="urban arterial"),
            camera("cam-c", district="Phu Hoa", lat=16.47, lon=107.58, enabled=False),
        )
    )
    counts = {"dim_camera": 3, "dim_district": 2, "dim_road_segment": 1}
    assert load_dimensions(client, database, registry) == counts

    cameras = final_rows(client, database, "dim_camera")
    assert set(cameras) == {"cam-a", "cam-b", "cam-c"}
    a = cameras["cam-a"]
    assert (a["district"], a["road_segment"], a["road_class"]) == (
        "Phu Hoi",
        "le-loi-1",
        "urban arterial",
    )
    assert (a["source_kind"], cameras["cam-b"]["source_kind"]) == ("stream", "file")
    assert cameras["cam-c"]["road_segment"] is None and cameras["cam-c"]["enabled"] is False
    districts = final_rows(client, database, "dim_district")
    assert {d: (r["cameras"], r["in_registry"]) for d, r in districts.items()} == {
        "Phu Hoi": (2, True),
        "Phu Hoa": (1, True),
    }
    assert districts["Phu Hoi"]["lat"] == pytest.approx((16.46 + 16.48) / 2)
    segment = final_rows(client, database, "dim_road_segment")["le-loi-1"]
    assert (segment["road_class"], segment["districts"], segment["cameras"]) == (
        "urban arterial",
        ["Phu Hoi"],
        2,
    )

    # Reloading the same registry changes nothing a FINAL reader sees.
    snapshot = {t: final_rows(client, database, t) for t in counts}
    for _ in range(2):
        assert load_dimensions(client, database, registry) == counts
    for table, rows in snapshot.items():
        again = final_rows(client, database, table)
        assert {k: {**v, "loaded_at": None} for k, v in again.items()} == {
            k: {**v, "loaded_at": None} for k, v in rows.items()
        }

    # The source URL (credentials) reaches no column of any version of any row.
    everything = client.query(f"SELECT * FROM {database}.dim_camera").result_rows
    assert len(everything) == 9 and "s3cret" not in repr(everything)

    # A changed camera updates; one that left the registry stays, marked, as does its district.
    changed = CameraRegistry(
        cameras=(
            camera("cam-a", name="Le Loi north", district="Vy Da", road_segment="le-loi-1"),
            camera("cam-b", lat=16.48, road_segment="le-loi-1", road_class="urban collector"),
        )
    )
    assert load_dimensions(client, database, changed) == {
        "dim_camera": 2,
        "dim_district": 2,
        "dim_road_segment": 1,
    }
    cameras = final_rows(client, database, "dim_camera")
    assert (cameras["cam-a"]["name"], cameras["cam-a"]["district"]) == ("Le Loi north", "Vy Da")
    assert cameras["cam-a"]["source_kind"] == "file"
    assert {c: r["in_registry"] for c, r in cameras.items()} == {
        "cam-a": True,
        "cam-b": True,
        "cam-c": False,
    }
    assert cameras["cam-c"]["district"] == "Phu Hoa"  # kept as it was
    districts = final_rows(client, database, "dim_district")
    assert {d: (r["cameras"], r["in_registry"]) for d, r in districts.items()} == {
        "Phu Hoi": (1, True),
        "Vy Da": (1, True),
        "Phu Hoa": (1, False),
    }
    segment = final_rows(client, database, "dim_road_segment")["le-loi-1"]
    assert (segment["road_class"], segment["districts"]) == (
        "urban collector",
        ["Phu Hoi", "Vy Da"],
    )

    # Reloading the first registry brings cam-c back.
    load_dimensions(client, database, registry)
    assert final_rows(client, database, "dim_camera")["cam-c"]["in_registry"] is True


def test_conflicting_road_classes_are_refused_before_writing(client: Client, database: str) -> None:
    registry = CameraRegistry(
        cameras=(
            camera("cam-a", road_segment="le-loi-1", road_class="urban arterial"),
            camera("cam-b", road_segment="le-loi-1", road_class="local"),
        )
    )
    with pytest.raises(DimensionError, match="le-loi-1"):
        load_dimensions(client, database, registry)
    assert client.query(f"SELECT count() FROM {database}.dim_camera").result_rows == [(0,)]


def test_the_demo_registry_loads(
    client: Client, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from citycam.cameras import load_cameras

    monkeypatch.setenv("CITYCAM_FOOTAGE_DIR", "/srv/footage")
    demo = load_cameras(Path(__file__).parents[2] / "citycam" / "demo" / "cameras.yaml")
    counts = load_dimensions(client, database, demo)
    assert counts == {"dim_camera": 2, "dim_district": 2, "dim_road_segment": 2}
    segments = final_rows(client, database, "dim_road_segment")
    assert {s: r["road_class"] for s, r in segments.items()} == {
        "le-loi-1": "urban arterial",
        "tran-hung-dao-2": "urban arterial",
    }


# ---------------------------------------------------------------------------------------------
# Rollups


@dataclass(frozen=True)
class Minute:
    """The final (largest) emission of one camera x class x minute."""

    camera_id: str
    vehicle_class: str
    window_start: datetime
    frames: int
    detections: int
    max_in_view: int

    @property
    def pcu(self) -> float:
        return self.detections * PCU[self.vehicle_class]


def density_row(minute: Minute, frames: int, detections: int, max_in_view: int) -> list[Any]:
    """One emission, in the sink's column order."""
    values = {
        "camera_id": minute.camera_id,
        "window_start": minute.window_start,
        "window_end": minute.window_start + timedelta(minutes=1),
        "vehicle_class": minute.vehicle_class,
        "frames": frames,
        "detections": detections,
        "mean_in_view": detections / frames,
        "max_in_view": max_in_view,
        "pcu_factor": PCU[minute.vehicle_class],
        "pcu": detections * PCU[minute.vehicle_class],
        "pcu_version": "test-v1",
        "emitted_at": minute.window_start + timedelta(seconds=frames),
    }
    return [values[c] for c in COLUMNS["traffic_density_1m"]]


def scenario(seed: int) -> tuple[list[Minute], list[list[Any]]]:
    """Final minutes, and every row the sink would insert: each minute re-emitted with growing
    totals, a share of emissions delivered twice, all shuffled (late and early emissions)."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 14, 21, 47, tzinfo=UTC)  # crosses hours and a UTC midnight
    minutes: list[Minute] = []
    rows: list[list[Any]] = []
    for camera_id in ("cam-a", "cam-b", "cam-c"):
        for offset in sorted(rng.sample(range(200), 70)):
            window_start = start + timedelta(minutes=offset)
            frames_final = rng.randint(3, 120)
            steps = sorted(rng.sample(range(1, frames_final), rng.randint(0, 3)))
            emitted_frames = [*steps, frames_final]  # strictly growing, as a window fills
            for vehicle_class in rng.sample(sorted(PCU), rng.randint(1, 3)):
                per_frame = [rng.choice((0, 0, 1, 2, 3, 7)) for _ in range(frames_final)]
                minute = Minute(
                    camera_id,
                    vehicle_class,
                    window_start,
                    frames_final,
                    sum(per_frame),
                    max(per_frame),
                )
                minutes.append(minute)
                for frames in emitted_frames:
                    seen = per_frame[:frames]
                    row = density_row(minute, frames, sum(seen), max(seen))
                    rows.append(row)
                    if rng.random() < 0.3:
                        rows.append(list(row))  # the same emission delivered again
    rng.shuffle(rows)
    return minutes, rows


def insert_in_batches(client: Client, database: str, rows: list[list[Any]], seed: int) -> None:
    rng = random.Random(seed)
    i = 0
    while i < len(rows):
        size = rng.randint(1, 60)
        client.insert(
            f"{database}.traffic_density_1m",
            rows[i : i + size],
            column_names=COLUMNS["traffic_density_1m"],
        )
        i += size


def expected_rollup(
    minutes: list[Minute], period: Callable[[datetime], datetime | date]
) -> dict[tuple[str, str, Any], tuple[int, int, int, int, float]]:
    """(camera, class, period) -> (minutes, frames, detections, max_in_view, pcu)."""
    groups: dict[tuple[str, str, Any], list[Minute]] = defaultdict(list)
    for m in minutes:
        groups[(m.camera_id, m.vehicle_class, period(m.window_start))].append(m)
    return {
        key: (
            len(ms),
            sum(m.frames for m in ms),
            sum(m.detections for m in ms),
            max(m.max_in_view for m in ms),
            sum(m.pcu for m in ms),
        )
        for key, ms in groups.items()
    }


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0, tzinfo=None)


def day_of(moment: datetime) -> date:
    return moment.date()


def read_rollup(
    client: Client, database: str, view: str, period: str
) -> dict[tuple[str, str, Any], tuple[int, int, int, int, float]]:
    result = client.query(
        f"SELECT camera_id, vehicle_class, {period}, minutes_covered, frames, detections, "
        f"max_in_view, pcu, mean_in_view, mean_pcu_in_view FROM {database}.{view}"
    )
    rollup = {}
    for (
        camera_id,
        cls,
        when,
        minutes,
        frames,
        detections,
        peak,
        pcu,
        mean,
        mean_pcu,
    ) in result.result_rows:
        assert mean == pytest.approx(detections / frames)
        assert mean_pcu == pytest.approx(pcu / frames)
        key = (camera_id, cls, when.replace(tzinfo=None) if isinstance(when, datetime) else when)
        assert key not in rollup, f"{view}: two rows for {key}"
        rollup[key] = (minutes, frames, detections, peak, pcu)
    return rollup


def assert_rollups_match(
    client: Client, database: str, minutes: list[Minute], within_s: float = 30
) -> None:
    """The rollups equal `minutes` once refreshed (they trail the minute facts by seconds)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            for view, period, key_of in (
                ("traffic_density_1h", "hour", hour_of),
                ("traffic_density_1d", "day", day_of),
            ):
                expected = expected_rollup(minutes, key_of)
                actual = read_rollup(client, database, view, period)
                assert actual.keys() == expected.keys(), view
                for key, values in expected.items():
                    assert actual[key][:4] == values[:4], (view, key)
                    assert actual[key][4] == pytest.approx(values[4], rel=1e-9), (view, key)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_rollups_take_each_minutes_largest_emission(client: Client, database: str) -> None:
    # A control: what a plain materialized view sees (every inserted row, before any merge).
    client.command(
        f"CREATE TABLE {database}.control (detections UInt32) ENGINE = MergeTree ORDER BY tuple()"
    )
    client.command(
        f"CREATE MATERIALIZED VIEW {database}.control_mv TO {database}.control "
        f"AS SELECT detections FROM {database}.traffic_density_1m"
    )
    minutes, rows = scenario(seed=3)
    insert_in_batches(client, database, rows, seed=4)

    # The data does exercise the problem: every row, duplicates too, reached the views, so a
    # plain sum() rollup would be far off.
    control = client.query(f"SELECT count(), sum(detections) FROM {database}.control")
    ((count, naive_detections),) = control.result_rows
    assert count == len(rows)
    assert naive_detections > 1.5 * sum(m.detections for m in minutes)
    hours = {hour_of(m.window_start) for m in minutes}
    days = {m.window_start.date() for m in minutes}
    assert len(hours) >= 4 and len(days) == 2

    assert_rollups_match(client, database, minutes)

    # The FINAL convenience view agrees minute by minute.
    latest = client.query(
        "SELECT camera_id, vehicle_class, window_start, frames, detections, max_in_view "
        f"FROM {database}.traffic_density_1m_latest"
    ).result_rows
    assert sorted((c, v, w.replace(tzinfo=None), f, d, p) for c, v, w, f, d, p in latest) == sorted(
        (
            m.camera_id,
            m.vehicle_class,
            m.window_start.replace(tzinfo=None),
            m.frames,
            m.detections,
            m.max_in_view,
        )
        for m in minutes
    )

    # Merging parts (state merges, replacing merges) changes no figure.
    for table in ("traffic_density_1m", "traffic_density_1h_rows", "traffic_density_1d_rows"):
        client.command(f"OPTIMIZE TABLE {database}.{table} FINAL")
    assert_rollups_match(client, database, minutes)

    # Re-delivering everything again (a replayed topic) is harmless too.
    insert_in_batches(client, database, rows[::-1], seed=5)
    assert_rollups_match(client, database, minutes)


def test_recent_minutes_are_the_facts_of_the_last_two_days_sorted_by_time(
    client: Client, database: str
) -> None:
    """traffic_density_1m_recent FINAL gives the same minutes as traffic_density_1m FINAL for
    the last two days (re-emissions, repeats and shuffling included) and nothing older."""
    _, rows = scenario(seed=7)
    # move the scenario's minutes into the last hours; keep one camera three days back
    shift = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=4)
    shift -= datetime(2026, 3, 14, 21, 47, tzinfo=UTC)
    window_start, window_end, emitted_at, camera = (
        COLUMNS["traffic_density_1m"].index(c)
        for c in ("window_start", "window_end", "emitted_at", "camera_id")
    )
    for row in rows:
        back = timedelta(days=3) if row[camera] == "cam-c" else timedelta(0)
        for column in (window_start, window_end, emitted_at):
            row[column] = row[column] + shift - back
    insert_in_batches(client, database, rows, seed=8)

    def minutes(table: str, where: str = "") -> list[tuple[Any, ...]]:
        return client.query(
            "SELECT camera_id, vehicle_class, window_start, frames, detections, pcu "
            f"FROM {database}.{table} FINAL {where} ORDER BY ALL"
        ).result_rows

    recent = minutes("traffic_density_1m_recent")
    assert recent and recent == minutes(
        "traffic_density_1m", "WHERE window_start >= now() - INTERVAL 2 DAY"
    )
    assert {r[0] for r in recent} == {"cam-a", "cam-b"}  # cam-c's minutes are too old
    sorting_key = client.query(
        "SELECT sorting_key FROM system.tables WHERE database = {db:String} "
        "AND name = 'traffic_density_1m_recent'",
        parameters={"db": database},
    ).result_rows
    assert sorting_key == [("window_start, camera_id, vehicle_class",)]


def test_rollups_backfill_rows_written_before_the_migration(
    connect: Callable[..., Client], database: str
) -> None:
    client = connect(database=None)
    migrate(client, database, raw_ttl_days=7, migrations=load_migrations()[:1])
    minutes, rows = scenario(seed=11)
    half = len(rows) // 2
    insert_in_batches(client, database, rows[:half], seed=12)  # before the rollups exist
    migrate(client, database, raw_ttl_days=7)
    # The rest, plus a stretch the backfill already saw: counted once all the same.
    insert_in_batches(client, database, rows[half - 100 :], seed=13)
    assert_rollups_match(client, database, minutes)


# ---------------------------------------------------------------------------------------------
# Open data

PRIVATE_MARKERS = ("uri", "plate", "track", "source", "dedup", "model", "evidence", "frame_")


def test_open_data_is_views_of_published_columns_only(
    connect: Callable[..., Client], client: Client, database: str
) -> None:
    objects = client.query(
        "SELECT name, engine, comment FROM system.tables WHERE database = 'open_data'"
    ).result_rows
    assert {name for name, _, _ in objects} >= {
        "cameras",
        "traffic_density_hourly",
        "traffic_density_daily",
        "violation_counts_daily",
        "environmental_events",
    }
    assert all(engine == "View" and comment for _, engine, comment in objects)
    columns = client.query(
        "SELECT table, name, comment FROM system.columns WHERE database = 'open_data'"
    ).result_rows
    assert all(comment for _, _, comment in columns)
    leaking = [
        f"{table}.{name}"
        for table, name, _ in columns
        if any(marker in name for marker in PRIVATE_MARKERS)
    ]
    assert leaking == []


def test_open_data_serves_the_public_and_nothing_else(
    connect: Callable[..., Client], client: Client, database: str
) -> None:
    load_dimensions(
        client,
        database,
        CameraRegistry(
            cameras=(
                camera(
                    "cam-a", source="rtsp://admin:s3cret-pw@10.0.0.5/s", road_segment="le-loi-1"
                ),
                camera("cam-b", district="Phu Hoa", lat=16.47, lon=107.58),
            )
        ),
    )
    minutes, rows = scenario(seed=21)  # cam-c is not in the registry: never published
    insert_in_batches(client, database, rows, seed=22)
    assert_rollups_match(client, database, minutes)  # refreshed: open data reads them
    occurred = datetime(2026, 3, 14, 8, 30, tzinfo=UTC)
    violation_columns = [
        "violation_id",
        "dedup_key",
        "camera_id",
        "violation_type",
        "occurred_at",
        "vehicle_class",
        "track_id",
        "severity",
        "confidence",
        "evidence_frame_uri",
        "plate_text",
        "review_status",
        "model_name",
        "model_version",
        "updated_at",
    ]
    violations = [
        ["v1", "k1", "cam-a", "red_light", occurred, "motorbike", 41, "high", 0.9,
         "file:///frames/cam-a/1.jpg", "75A-123.45", "pending", "rules", "1", occurred],
        ["v1", "k1", "cam-a", "red_light", occurred, "motorbike", 41, "high", 0.9,
         "file:///frames/cam-a/1.jpg", "75A-123.45", "confirmed", "rules", "1",
         occurred + timedelta(hours=2)],  # reviewed: the later version wins
        ["v2", "k2", "cam-a", "red_light", occurred, "car", 42, "medium", 0.8,
         "file:///frames/cam-a/2.jpg", "75B-555.55", "pending", "rules", "1", occurred],
        ["v3", "k3", "cam-a", "no_helmet", occurred, "motorbike", 43, "low", 0.7,
         "file:///frames/cam-a/3.jpg", None, "rejected", "rules", "1", occurred],
        ["v4", "k4", "cam-c", "wrong_way", occurred, "car", 44, "high", 0.9,
         "file:///frames/cam-c/4.jpg", "75C-000.01", "confirmed", "rules", "1", occurred],
    ]  # fmt: skip
    client.insert(f"{database}.violations", violations, column_names=violation_columns)
    client.insert(
        f"{database}.environmental_events",
        [["e1", "cam-b", "flood", occurred, None, 0.8, 35.0, "cm", None,
          "file:///frames/cam-b/9.jpg", "flood-net", "1", occurred]],
        column_names=["event_id", "camera_id", "event_type", "started_at", "ended_at",
                      "confidence", "level", "level_unit", "area_share", "evidence_frame_uri",
                      "model_name", "model_version", "updated_at"],
    )  # fmt: skip

    public = connect("opendata", database="open_data")
    hourly = public.query(
        "SELECT camera_id, camera_name, district, lat, lon, hour, vehicle_class, "
        "vehicle_detections, pcu, minutes_covered FROM traffic_density_hourly"
    ).result_rows
    expected = expected_rollup([m for m in minutes if m.camera_id != "cam-c"], hour_of)
    assert len(hourly) == len(expected)
    names = {"cam-a": ("Camera cam-a", "Phu Hoi"), "cam-b": ("Camera cam-b", "Phu Hoa")}
    for cam, name, district, _, _, hour, cls, detections, pcu, covered in hourly:
        assert (name, district) == names[cam]
        minutes_, _, detections_, _, pcu_ = expected[(cam, cls, hour.replace(tzinfo=None))]
        assert (detections, covered) == (detections_, minutes_)
        assert pcu == pytest.approx(pcu_, rel=1e-9)
    daily = public.query("SELECT sum(vehicle_detections) FROM traffic_density_daily")
    assert daily.result_rows == [(sum(m.detections for m in minutes if m.camera_id != "cam-c"),)]

    counts = public.query(
        "SELECT camera_id, district, day, violation_type, vehicle_class, violations, confirmed "
        "FROM violation_counts_daily ORDER BY ALL"
    ).result_rows
    assert counts == [
        ("cam-a", "Phu Hoi", date(2026, 3, 14), "red_light", "car", 1, 0),
        ("cam-a", "Phu Hoi", date(2026, 3, 14), "red_light", "motorbike", 1, 1),
    ]
    events = public.query("SELECT event_id, district, event_type, level FROM environmental_events")
    assert events.result_rows == [("e1", "Phu Hoa", "flood", 35.0)]

    # Nothing personal or internal in any published row.
    published = client.query("SELECT name FROM system.tables WHERE database = 'open_data'")
    for (view,) in published.result_rows:
        text = repr(public.query(f"SELECT * FROM {view}").result_rows)
        for secret in ("75A-123.45", "75B-555.55", "file:///", "s3cret", "cam-c"):
            assert secret not in text, (view, secret)

    # The warehouse itself stays closed to the public.
    for table in ("traffic_density_1m", "traffic_density_1h", "violations", "dim_camera"):
        with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
            public.query(f"SELECT count() FROM {database}.{table}")
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        connect("opendata", database=database).query("SELECT 1")
