"""`cameras.geojson`: the cameras as GeoJSON points with their figures for the period.

RFC 7946: a FeatureCollection of Point features, coordinates [longitude, latitude] in WGS84,
one feature per camera of the `cameras` dataset, its id the camera id. The figures are sums
over the period of the other datasets of the same export, so they agree with the CSV files:

- `vehicle_detections`, `pcu`: traffic_density_hourly (vehicles seen on sampled frames);
- `mean_vehicles_in_view`: vehicles of all classes in view on average over the period (each
  class's hourly means weighted by the minutes covered);
- `vehicle_crossings`, `pedestrian_crossings`: traffic_flow_hourly (the traffic flow);
- `alerts`: traffic_alerts that started in the period.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from warehouse.opendata.periods import Period

if TYPE_CHECKING:
    import pandas as pd

FIGURES = (
    "vehicle_detections",
    "pcu",
    "mean_vehicles_in_view",
    "vehicle_crossings",
    "pedestrian_crossings",
    "alerts",
)
PEDESTRIAN = "pedestrian"


def camera_figures(
    density: pd.DataFrame, flow: pd.DataFrame, alerts: pd.DataFrame
) -> dict[str, dict[str, float | int]]:
    """Per camera id: the period's figures (cameras without data are absent)."""
    figures: dict[str, dict[str, float | int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for camera, rows in density.groupby("camera_id"):
        figures[str(camera)]["vehicle_detections"] = int(rows["vehicle_detections"].sum())
        figures[str(camera)]["pcu"] = round(float(rows["pcu"].sum()), 3)
        figures[str(camera)]["mean_vehicles_in_view"] = _mean_in_view(rows)
    for camera, rows in flow.groupby("camera_id"):
        pedestrians = rows["vehicle_class"] == PEDESTRIAN
        figures[str(camera)]["vehicle_crossings"] = int(rows.loc[~pedestrians, "crossings"].sum())
        figures[str(camera)]["pedestrian_crossings"] = int(rows.loc[pedestrians, "crossings"].sum())
    for camera, count in alerts.groupby("camera_id").size().items():
        figures[str(camera)]["alerts"] = int(count)
    return dict(figures)


def _mean_in_view(density: pd.DataFrame) -> float:
    """Sum over classes of each class's mean in view, its hours weighted by minutes covered."""
    total = 0.0
    for _, rows in density.groupby("vehicle_class"):
        minutes = rows["minutes_covered"].astype(float)
        if minutes.sum() > 0:
            total += float((rows["mean_vehicles_in_view"] * minutes).sum() / minutes.sum())
    return round(total, 3)


def cameras_geojson(
    cameras: pd.DataFrame, figures: dict[str, dict[str, float | int]], period: Period
) -> dict[str, Any]:
    features = []
    for camera in cameras.to_dict("records"):
        properties: dict[str, Any] = {
            "camera_id": camera["camera_id"],
            "camera_name": camera["camera_name"],
            "district": camera["district"],
            "road_segment": _optional(camera["road_segment"]),
            "road_class": _optional(camera["road_class"]),
            "active": bool(camera["active"]),
            "period": period.id,
            "period_start": _iso(period.start),
            "period_end": _iso(period.end),
            **figures.get(camera["camera_id"], dict.fromkeys(FIGURES, 0)),
        }
        features.append(
            {
                "type": "Feature",
                "id": camera["camera_id"],
                "geometry": {"type": "Point", "coordinates": [camera["lon"], camera["lat"]]},
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _optional(value: Any) -> Any:
    """Missing text (None, NaN or pandas' NA) as JSON null."""
    return value if isinstance(value, str) else None


def _iso(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")
