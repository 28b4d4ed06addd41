"""Load the warehouse dimensions (cameras, districts, road segments) from the camera registry.

Every load inserts a new version of each row with one `loaded_at`; the dimension tables are
ReplacingMergeTree(loaded_at), so reloading is idempotent and a changed camera updates.
Rows whose key left the registry are re-inserted with `in_registry = false` rather than
deleted: facts keep referencing them. The camera source is reduced to its kind (stream or
file): a source URL can hold credentials and never reaches the warehouse.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from citycam.cameras import Camera, CameraRegistry

CAMERA_COLUMNS = [
    "camera_id",
    "name",
    "lat",
    "lon",
    "district",
    "road_segment",
    "road_class",
    "source_kind",
    "sample_fps",
    "enabled",
    "in_registry",
    "loaded_at",
]
DISTRICT_COLUMNS = ["district", "cameras", "lat", "lon", "in_registry", "loaded_at"]
ROAD_SEGMENT_COLUMNS = [
    "road_segment",
    "road_class",
    "districts",
    "cameras",
    "in_registry",
    "loaded_at",
]
KEYS = {"dim_camera": "camera_id", "dim_district": "district", "dim_road_segment": "road_segment"}


class DimensionError(ValueError):
    """The registry cannot be turned into consistent dimensions."""


def camera_rows(cameras: tuple[Camera, ...], loaded_at: datetime) -> list[list[Any]]:
    return [
        [
            c.id,
            c.name,
            c.lat,
            c.lon,
            c.district,
            c.road_segment,
            c.road_class,
            "stream" if c.is_stream else "file",
            c.sample_fps,
            c.enabled,
            True,
            loaded_at,
        ]
        for c in sorted(cameras, key=lambda c: c.id)
    ]


def district_rows(cameras: tuple[Camera, ...], loaded_at: datetime) -> list[list[Any]]:
    by_district: dict[str, list[Camera]] = defaultdict(list)
    for camera in cameras:
        by_district[camera.district].append(camera)
    return [
        [
            district,
            len(members),
            sum(c.lat for c in members) / len(members),
            sum(c.lon for c in members) / len(members),
            True,
            loaded_at,
        ]
        for district, members in sorted(by_district.items())
    ]


def road_segment_rows(cameras: tuple[Camera, ...], loaded_at: datetime) -> list[list[Any]]:
    by_segment: dict[str, list[Camera]] = defaultdict(list)
    for camera in cameras:
        if camera.road_segment is not None:
            by_segment[camera.road_segment].append(camera)
    rows = []
    for segment, members in sorted(by_segment.items()):
        classes = sorted({c.road_class for c in members if c.road_class is not None})
        if len(classes) > 1:
            cams = ", ".join(sorted(c.id for c in members))
            raise DimensionError(
                f"road segment {segment!r} has conflicting road classes {classes} "
                f"(cameras {cams}); give its cameras one road_class"
            )
        rows.append(
            [
                segment,
                classes[0] if classes else None,
                sorted({c.district for c in members}),
                len(members),
                True,
                loaded_at,
            ]
        )
    return rows


def load_dimensions(
    client: Client, database: str, registry: CameraRegistry, loaded_at: datetime | None = None
) -> dict[str, int]:
    """Load every dimension from `registry`; return the registry rows loaded per table."""
    loaded_at = loaded_at or datetime.now(UTC)
    tables = {
        "dim_camera": (CAMERA_COLUMNS, camera_rows(registry.cameras, loaded_at)),
        "dim_district": (DISTRICT_COLUMNS, district_rows(registry.cameras, loaded_at)),
        "dim_road_segment": (ROAD_SEGMENT_COLUMNS, road_segment_rows(registry.cameras, loaded_at)),
    }  # all built (and checked) before anything is written
    for table, (columns, rows) in tables.items():
        if rows:
            client.insert(f"{database}.{table}", rows, column_names=columns)
        _retire_missing(client, database, table, [row[0] for row in rows], loaded_at)
    return {table: len(rows) for table, (_, rows) in tables.items()}


def _retire_missing(
    client: Client, database: str, table: str, keys: list[str], loaded_at: datetime
) -> None:
    """A new version, with in_registry = false, of each current row whose key is not in `keys`."""
    key = KEYS[table]
    # The filter sits in a subquery: in ClickHouse, the REPLACE aliases would shadow the
    # columns in a WHERE beside them.
    client.command(
        f"INSERT INTO {database}.{table} "
        "SELECT * REPLACE (false AS in_registry, "
        "fromUnixTimestamp64Micro({loaded_at_us:Int64}, 'UTC') AS loaded_at) "
        f"FROM (SELECT * FROM {database}.{table} FINAL "
        f"WHERE in_registry AND NOT has({{keys:Array(String)}}, {key}))",
        parameters={"keys": keys, "loaded_at_us": _micros(loaded_at)},
    )


def _micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("loaded_at must be timezone-aware")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
