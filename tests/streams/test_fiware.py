"""LineCrossings -> FIWARE TrafficFlowObserved (NGSI-LD, normalized)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import LineCrossings, ZoneOccupancy
from streams.fiware import traffic_flow_observed
from tests.streams.helpers import camera

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"
CAMERA = camera().model_copy(update={"id": "hue-le-loi-01", "road_segment": "le-loi-1"})


def fact(**changes: Any) -> LineCrossings:
    example = json.loads((EXAMPLES / "line_crossings-1-0-0.json").read_text())
    return LineCrossings.from_bytes(orjson.dumps({**example, **changes}))


def occupancy(**changes: Any) -> ZoneOccupancy:
    example = json.loads((EXAMPLES / "zone_occupancy-1-0-0.json").read_text())
    return ZoneOccupancy.from_bytes(orjson.dumps({**example, **changes}))


def test_a_motorbike_fact_becomes_a_traffic_flow_observed_entity() -> None:
    entity = traffic_flow_observed(fact(), CAMERA, occupancy(), congested=False)
    assert entity is not None
    assert entity["id"] == (
        "urn:ngsi-ld:TrafficFlowObserved:citycam:hue-le-loi-01:footway-west:positive:"
        "motorbike:1795332600"
    )
    assert entity["type"] == "TrafficFlowObserved"
    values = {k: v.get("value") for k, v in entity.items() if isinstance(v, dict)}
    assert values["intensity"] == 14
    assert values["vehicleType"] == "motorcycle"
    assert values["laneDirection"] == "forward"
    assert values["averageVehicleSpeed"] == 27.4
    assert entity["averageVehicleSpeed"]["unitCode"] == "KMH"
    assert values["occupancy"] == 0.95
    assert values["congested"] is False
    assert values["dateObserved"] == "2026-11-22T07:30:00Z/2026-11-22T07:31:00Z"
    assert values["dateObservedFrom"] == {"@type": "DateTime", "@value": "2026-11-22T07:30:00Z"}
    assert values["dateObservedTo"] == {"@type": "DateTime", "@value": "2026-11-22T07:31:00Z"}
    assert values["location"] == {"type": "Point", "coordinates": [CAMERA.lon, CAMERA.lat]}
    assert entity["refRoadSegment"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:RoadSegment:le-loi-1",
    }
    assert "@context" in entity
    json.dumps(entity)  # plain JSON


def test_optional_attributes_are_left_out_when_unknown() -> None:
    no_speed = fact(
        orientation="negative",
        direction="westbound",
        vehicle_class="truck",
        speed_samples=0,
        speed_kmh_mean=None,
        speed_kmh_p85=None,
    )
    entity = traffic_flow_observed(no_speed, CAMERA.model_copy(update={"road_segment": None}))
    assert entity is not None
    assert entity["laneDirection"]["value"] == "backward"
    assert entity["vehicleType"]["value"] == "lorry"
    for absent in ("averageVehicleSpeed", "occupancy", "congested", "refRoadSegment"):
        assert absent not in entity


def test_pedestrians_are_not_vehicle_traffic() -> None:
    walkers = fact(vehicle_class="pedestrian", pcu_factor=0, pcu=0, pcu_per_hour=0)
    assert traffic_flow_observed(walkers, CAMERA) is None


def test_a_re_emitted_minute_keeps_its_entity_id() -> None:
    first = traffic_flow_observed(fact(frames=10, crossings=3, speed_samples=3), CAMERA)
    later = traffic_flow_observed(fact(), CAMERA)
    assert first is not None and later is not None and first["id"] == later["id"]


@pytest.mark.parametrize(
    ("camera_id", "other", "message"),
    [
        ("other-cam", {}, "fact of camera"),
        ("hue-le-loi-01", {"camera_id": "other-cam"}, "fact.s camera and window"),
        ("hue-le-loi-01", {"window_start": "2026-11-22T07:29:00Z"}, "fact.s camera and window"),
    ],
)
def test_mismatched_inputs_are_refused(camera_id: str, other: dict, message: str) -> None:
    cam = CAMERA.model_copy(update={"id": camera_id})
    occ = occupancy(**other)
    with pytest.raises(ValueError, match=message):
        traffic_flow_observed(fact(), cam, occ)
