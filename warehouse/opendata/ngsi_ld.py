"""`traffic_flow_observed.jsonld`: the hourly traffic flow as NGSI-LD TrafficFlowObserved.

The entities are built by schemas.fiware, as the stream's per-minute ones in streams/fiware.py
are (mapping in streams/FIWARE.md), at the granularity of
`traffic_flow_hourly`: one entity per camera, counting line, way across it, vehicle class and
hour. The file is a JSON array of normalized entities, each with its `@context`, as an
NGSI-LD batch upsert (`POST /ngsi-ld/v1/entityOperations/upsert`) takes it. The context URIs
are plain strings: nothing is fetched when the file is written.

- `id`: `urn:ngsi-ld:TrafficFlowObserved:citycam:<camera>:<line>:<orientation>:<class>:<hour
  start, epoch s>:PT1H`; the stream's per-minute entities have the same id without the
  duration, so the two never collide, and a re-export upserts the same entities.
- `intensity`: crossings in the hour; `dateObserved` the ISO 8601 interval of the hour,
  `dateObservedFrom`/`dateObservedTo` its ends.
- `laneDirection`: orientation positive -> forward, negative -> backward.
- `vehicleType`: car, motorcycle, bicycle, bus, lorry; pedestrians are not vehicle traffic
  and get no entity.
- `averageVehicleSpeed` (km/h) only where the camera measured speed.
- `refRoadSegment` where the camera's road segment is known; `location` the camera.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from schemas.fiware import traffic_flow_entity

if TYPE_CHECKING:
    import pandas as pd

DATA_MODEL_SCHEMA = (
    "https://smart-data-models.github.io/dataModel.Transportation/TrafficFlowObserved/schema.json"
)
HOUR = timedelta(hours=1)


def entity_id(row: dict[str, Any]) -> str:
    start = int(row["hour"].timestamp())
    return (
        f"urn:ngsi-ld:TrafficFlowObserved:citycam:{row['camera_id']}:{row['line_id']}:"
        f"{row['orientation']}:{row['vehicle_class']}:{start}:PT1H"
    )


def traffic_flow_observed(row: dict[str, Any]) -> dict[str, Any] | None:
    """The entity of one traffic_flow_hourly row; None for pedestrians."""
    start: datetime = row["hour"].to_pydatetime()
    speed = row["speed_kmh_mean"]
    known_speed = speed is not None and not (isinstance(speed, float) and math.isnan(speed))
    segment = row["road_segment"]
    return traffic_flow_entity(
        entity_id=entity_id(row),
        camera_id=row["camera_id"],
        line_id=row["line_id"],
        direction=row["direction"],
        orientation=row["orientation"],
        vehicle_class=row["vehicle_class"],
        start=start,
        end=start + HOUR,
        crossings=int(row["crossings"]),
        speed_kmh=float(speed) if known_speed else None,
        lon=float(row["lon"]),
        lat=float(row["lat"]),
        road_segment=segment if isinstance(segment, str) else None,
    )


def traffic_flow_entities(flow: pd.DataFrame) -> list[dict[str, Any]]:
    entities = (traffic_flow_observed(row) for row in flow.to_dict("records"))
    return [e for e in entities if e is not None]
