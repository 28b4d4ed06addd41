"""Line-crossing facts as FIWARE Smart Data Models `TrafficFlowObserved` NGSI-LD entities.

Pure functions, no broker: a publisher (an NGSI-LD context broker feed, later work) maps each
LineCrossings fact with `traffic_flow_observed` and upserts the entity. The entity is built by
schemas.fiware (the open-data export builds its hourly ones there too), with the occupancy and
congestion only the stream knows.

The attribute mapping, and what is left out and why, is in streams/FIWARE.md.
"""

from __future__ import annotations

from typing import Any

from citycam.cameras import Camera
from schemas import LineCrossings, ZoneOccupancy
from schemas.fiware import ngsi_property, traffic_flow_entity


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
    entity = traffic_flow_entity(
        entity_id=entity_id(fact),
        camera_id=fact.camera_id,
        line_id=fact.line_id,
        direction=fact.direction,
        orientation=fact.orientation,
        vehicle_class=fact.vehicle_class,
        start=fact.window_start,
        end=fact.window_end,
        crossings=fact.crossings,
        speed_kmh=fact.speed_kmh_mean,
        lon=camera.lon,
        lat=camera.lat,
        road_segment=camera.road_segment,
    )
    if entity is None:
        return None
    if occupancy is not None:
        same = (occupancy.camera_id, occupancy.window_start, occupancy.window_end)
        if same != (fact.camera_id, fact.window_start, fact.window_end):
            raise ValueError("occupancy must be of the fact's camera and window")
        entity["occupancy"] = ngsi_property(occupancy.occupied_share)
    if congested is not None:
        entity["congested"] = ngsi_property(congested)
    return entity
