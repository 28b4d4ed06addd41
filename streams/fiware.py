"""Line-crossing facts as FIWARE Smart Data Models `TrafficFlowObserved` NGSI-LD entities.

Pure functions, no broker: a publisher (an NGSI-LD context broker feed, later work) maps each
LineCrossings fact with `traffic_flow_observed` and upserts the entity. The entity is
normalized NGSI-LD (every attribute a Property, Relationship or GeoProperty) against the
Smart Data Models Transportation context.

The attribute mapping, and what is left out and why, is in streams/FIWARE.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from citycam.cameras import Camera
from schemas import LineCrossings, ZoneOccupancy

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


def _property(value: Any) -> dict[str, Any]:
    return {"type": "Property", "value": value}


def _datetime(moment: datetime) -> dict[str, Any]:
    return _property({"@type": "DateTime", "@value": _iso(moment)})


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def entity_id(fact: LineCrossings) -> str:
    start = int(fact.window_start.timestamp())
    return (
        f"urn:ngsi-ld:TrafficFlowObserved:citycam:{fact.camera_id}:{fact.line_id}:"
        f"{fact.orientation}:{fact.vehicle_class}:{start}"
    )


def traffic_flow_observed(
    fact: LineCrossings,
    camera: Camera,
    occupancy: ZoneOccupancy | None = None,
    congested: bool | None = None,
) -> dict[str, Any] | None:
    """The NGSI-LD entity of one fact; None for classes that are not vehicles (pedestrians).

    `camera` is the fact's camera from the registry (location, road segment). `occupancy`, if
    given, must be of the same camera and window.
    """
    if fact.camera_id != camera.id:
        raise ValueError(f"fact of camera {fact.camera_id!r} with camera {camera.id!r}")
    vehicle_type = VEHICLE_TYPES.get(fact.vehicle_class)
    if vehicle_type is None:
        return None
    entity: dict[str, Any] = {
        "id": entity_id(fact),
        "type": "TrafficFlowObserved",
        "name": _property(f"{fact.camera_id} {fact.line_id} {fact.direction}"),
        "dataProvider": _property("citycam"),
        "source": _property(fact.camera_id),
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [camera.lon, camera.lat]},
        },
        "dateObserved": _property(f"{_iso(fact.window_start)}/{_iso(fact.window_end)}"),
        "dateObservedFrom": _datetime(fact.window_start),
        "dateObservedTo": _datetime(fact.window_end),
        "intensity": _property(fact.crossings),
        "laneDirection": _property(LANE_DIRECTIONS[fact.orientation]),
        "vehicleType": _property(vehicle_type),
    }
    if fact.speed_kmh_mean is not None:
        entity["averageVehicleSpeed"] = {**_property(fact.speed_kmh_mean), "unitCode": "KMH"}
    if occupancy is not None:
        same = (occupancy.camera_id, occupancy.window_start, occupancy.window_end)
        if same != (fact.camera_id, fact.window_start, fact.window_end):
            raise ValueError("occupancy must be of the fact's camera and window")
        entity["occupancy"] = _property(occupancy.occupied_share)
    if congested is not None:
        entity["congested"] = _property(congested)
    if camera.road_segment:
        entity["refRoadSegment"] = {
            "type": "Relationship",
            "object": f"urn:ngsi-ld:RoadSegment:{camera.road_segment}",
        }
    entity["@context"] = NGSI_LD_CONTEXT
    return entity
