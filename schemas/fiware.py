"""Traffic flow as a FIWARE Smart Data Models `TrafficFlowObserved` NGSI-LD entity.

An external contract two stages publish: the streams job per minute (streams/fiware.py) and the
open-data export per hour (warehouse/opendata/ngsi_ld.py). Both build their entities here, so
the attribute mapping (streams/FIWARE.md) has one implementation. Entities are normalized
NGSI-LD (every attribute a Property, Relationship or GeoProperty) against the Smart Data Models
Transportation context; the context URIs are plain strings, never fetched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

NGSI_LD_CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Transportation/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]
VEHICLE_TYPES = {
    "car": "car",
    "motorbike": "motorcycle",
    "bicycle": "bicycle",
    "bus": "bus",
    "truck": "lorry",
}
"""citycam vehicle class -> Smart Data Models vehicleType."""
LANE_DIRECTIONS = {"positive": "forward", "negative": "backward"}


def traffic_flow_entity(
    *,
    entity_id: str,
    camera_id: str,
    line_id: str,
    direction: str,
    orientation: str,
    vehicle_class: str,
    start: datetime,
    end: datetime,
    crossings: int,
    speed_kmh: float | None,
    lon: float,
    lat: float,
    road_segment: str | None,
) -> dict[str, Any] | None:
    """The entity of the crossings of one line, way and class in [start, end); None for
    classes that are not vehicle traffic (pedestrians). Speed and road segment only if known."""
    vehicle_type = VEHICLE_TYPES.get(vehicle_class)
    if vehicle_type is None:
        return None
    entity: dict[str, Any] = {
        "id": entity_id,
        "type": "TrafficFlowObserved",
        "name": ngsi_property(f"{camera_id} {line_id} {direction}"),
        "dataProvider": ngsi_property("citycam"),
        "source": ngsi_property(camera_id),
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        "dateObserved": ngsi_property(f"{_iso(start)}/{_iso(end)}"),
        "dateObservedFrom": _datetime(start),
        "dateObservedTo": _datetime(end),
        "intensity": ngsi_property(crossings),
        "laneDirection": ngsi_property(LANE_DIRECTIONS[orientation]),
        "vehicleType": ngsi_property(vehicle_type),
    }
    if speed_kmh is not None:
        entity["averageVehicleSpeed"] = {**ngsi_property(speed_kmh), "unitCode": "KMH"}
    if road_segment:
        entity["refRoadSegment"] = {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:RoadSegment:{road_segment}",
        }
    entity["@context"] = NGSI_LD_CONTEXT
    return entity


def ngsi_property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _datetime(moment: datetime) -> dict[str, Any]:
    return ngsi_property({"@type": "DateTime", "@value": _iso(moment)})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
