"""What an export publishes: one dataset per `open_data` view, with its words for people.

Each dataset is a view of the `open_data` database (migrations 0002 and 0009) read as the
open-data user, cut to the period on its time column, ordered by its key, and checked against
`warehouse/expectations/open_data/<name>.json` before anything is published. Adding a dataset
is adding a view, an entry here and a suite.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.opendata.periods import PeriodKind


@dataclass(frozen=True)
class Dataset:
    name: str  # the open_data view, and the files' base name
    title: str
    description: str
    key: tuple[str, ...]  # one row per key in a period's file; the rows are sorted by it
    time_column: str | None  # rows whose time lies in the period; None: a snapshot
    periods: tuple[PeriodKind, ...] = ("day", "hour")
    keywords: tuple[str, ...] = ()


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "cameras",
        "Traffic cameras",
        "The city's traffic cameras: where they stand, the district and road they watch, and "
        "whether they deliver data. A snapshot taken when the period was exported.",
        key=("camera_id",),
        time_column=None,
        keywords=("cameras", "locations"),
    ),
    Dataset(
        "traffic_density_hourly",
        "Traffic density per hour",
        "Vehicles in view of each camera per hour and vehicle class: how many were seen on "
        "the sampled frames, the average and the most in view at once, in vehicles and in "
        "passenger car units (PCU).",
        key=("camera_id", "hour", "vehicle_class"),
        time_column="hour",
        keywords=("traffic density", "vehicles", "PCU"),
    ),
    Dataset(
        "traffic_density_daily",
        "Traffic density per day",
        "The hourly traffic density summed over each UTC day, per camera and vehicle class.",
        key=("camera_id", "day", "vehicle_class"),
        time_column="day",
        periods=("day",),
        keywords=("traffic density", "vehicles", "PCU"),
    ),
    Dataset(
        "traffic_flow_hourly",
        "Traffic flow per hour",
        "Road users crossing each camera's counting lines per hour, direction and class "
        "(pedestrians included): the traffic flow, with flow rates in PCU per hour and mean "
        "speeds where the camera is calibrated.",
        key=("camera_id", "line_id", "direction", "orientation", "vehicle_class", "hour"),
        time_column="hour",
        keywords=("traffic flow", "counts", "speed"),
    ),
    Dataset(
        "zone_occupancy_hourly",
        "Zone occupancy per hour",
        "How full each zone watched by a camera (junctions, crossings, parking) was per hour: "
        "mean and most road users inside and the share of time it was occupied.",
        key=("camera_id", "zone_id", "hour"),
        time_column="hour",
        keywords=("occupancy", "junctions"),
    ),
    Dataset(
        "traffic_alerts",
        "Traffic alerts",
        "Congestion and abnormal-flow episodes detected by the cameras that started in the "
        "period, in their latest state.",
        key=("alert_id",),
        time_column="started_at",
        keywords=("congestion", "alerts"),
    ),
    Dataset(
        "violation_counts_daily",
        "Traffic violations per day",
        "Traffic violations detected per camera, type, vehicle class and UTC day, not counting "
        "those rejected on review. Counts only: no individual offence is published.",
        key=("camera_id", "day", "violation_type", "vehicle_class"),
        time_column="day",
        periods=("day",),
        keywords=("violations", "road safety"),
    ),
    Dataset(
        "environmental_events",
        "Environmental events",
        "Fires, smoke, straw burning and flooding seen by city cameras that started in the period.",
        key=("event_id",),
        time_column="started_at",
        keywords=("environment", "flood", "fire"),
    ),
)


def datasets_for(kind: PeriodKind) -> tuple[Dataset, ...]:
    """The datasets an export of a `kind` period holds (daily figures only for days)."""
    return tuple(d for d in DATASETS if kind in d.periods)
