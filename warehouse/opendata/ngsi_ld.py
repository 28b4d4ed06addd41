"""`traffic_flow_observed.jsonld`: the hourly traffic flow as NGSI-LD TrafficFlowObserved.

The export's own mapping (the warehouse stage does not import streams/), the same as the
stream's per-minute one in streams/fiware.py and streams/FIWARE.md, at the granularity of
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

if TYPE_CHECKING:
    import pandas as pd

NGSI_LD_CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]
DATA_MODEL_SCHEMA = (
    "https://smart-data-models.github.io/dataModel.Transportation/TrafficFlowObserved/schema.json"
)
VEHICLE_TYPES = {
    "car": "car",
    "motorbike": "motorcycle",
    "bicycle": "bicycle",
    "bus": "bus",
    "truck": "lorry",
}
"""citycam vehicle class -> Smart Data Models vehicleType."""
LANE_DIRECTIONS = {"positive": "forward", "negative": "backward"}
HOUR = timedelta(hours=1)


def entity_id(row: dict[str, Any]) -> str:
    start = int(row["hour"].timestamp())
    return (
        f"urn:ngsi-ld:TrafficFlowObserved:citycam:{row['camera_id']}:{row['line_id']}:"
        f"{row['orientation']}:{row['vehicle_class']}:{start}:PT1H"
    )


def traffic_flow_observed(row: dict[str, Any]) -> dict[str, Any] | None:
    """The entity of one traffic_flow_hourly row; None for pedestrians."""
    vehicle_type = VEHICLE_TYPES.get(row["vehicle_class"])
    if vehicle_type is None:
        return None
    start: datetime = row["hour"].to_pydatetime()
    end = start + HOUR
    entity: dict[str, Any] = {
        "id": entity_id(row),
        "type": "TrafficFlowObserved",
        "name": _property(f"{row['camera_id']} {row['line_id']} {row['direction']}"),
        "dataProvider": _property("citycam"),
        "source": _property(row["camera_id"]),
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [float(row["lon"]), float(row["lat"])]},
        },
        "dateObserved": _property(f"{_iso(start)}/{_iso(end)}"),
        "dateObservedFrom": _datetime(start),
        "dateObservedTo": _datetime(end),
        "intensity": _property(int(row["crossings"])),
        "laneDirection": _property(LANE_DIRECTIONS[row["orientation"]]),
        "vehicleType": _property(vehicle_type),
    }
    speed = row["speed_kmh_mean"]
    if speed is not None and not (isinstance(speed, float) and math.isnan(speed)):
        entity["averageVehicleSpeed"] = {**_property(float(speed)), "unitCode": "KMH"}
    if isinstance(row["road_segment"], str) and row["road_segment"]:
        entity["refRoadSegment"] = {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:RoadSegment:{row['road_segment']}",
        }
    entity["@context"] = NGSI_LD_CONTEXT
    return entity


def traffic_flow_entities(flow: pd.DataFrame) -> list[dict[str, Any]]:
    entities = (traffic_flow_observed(row) for row in flow.to_dict("records"))
    return [e for e in entities if e is not None]


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _datetime(moment: datetime) -> dict[str, Any]:
    return _property({"@type": "DateTime", "@value": _iso(moment)})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
