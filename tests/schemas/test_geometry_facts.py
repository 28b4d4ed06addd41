"""LineCrossings and ZoneOccupancy refuse facts that contradict themselves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import ContractError, Event, LineCrossings, ZoneOccupancy, topic_by_name

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"


def golden(contract: type[Event]) -> dict[str, Any]:
    path = EXAMPLES / f"{contract.SCHEMA_NAME}-{contract.SCHEMA_VERSION}.json"
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"orientation": "sideways"}, "orientation"),
        ({"window_end": "2026-11-22T07:30:00Z"}, "window_end must be after window_start"),
        ({"speed_samples": 15}, "speed_samples cannot exceed crossings"),
        ({"speed_kmh_p85": None}, "set exactly when speed_samples > 0"),
        ({"speed_samples": 0}, "set exactly when speed_samples > 0"),
        ({"pcu_factor": -1}, "pcu_factor"),
        ({"line_id": "Main Road"}, "line_id"),
        ({"frames": 0}, "frames"),
    ],
)
def test_line_crossings_refusals(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        LineCrossings.from_bytes(orjson.dumps({**golden(LineCrossings), **change}))


def test_line_crossings_without_speed_is_valid() -> None:
    fact = LineCrossings.from_bytes(
        orjson.dumps(
            {
                **golden(LineCrossings),
                "speed_samples": 0,
                "speed_kmh_mean": None,
                "speed_kmh_p85": None,
            }
        )
    )
    assert fact.speed_kmh_p85 is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"occupied_frames": 121}, "occupied_frames cannot exceed frames"),
        ({"max_objects": 451}, "max_objects cannot exceed objects"),
        ({"occupied_frames": 0}, "occupied_frames is 0 exactly when objects is 0"),
        ({"occupied_share": 1.2}, "occupied_share"),
        ({"zone_id": "-bad"}, "zone_id"),
    ],
)
def test_zone_occupancy_refusals(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        ZoneOccupancy.from_bytes(orjson.dumps({**golden(ZoneOccupancy), **change}))


def test_both_topics_are_keyed_by_camera() -> None:
    for name, contract in (
        ("citycam.facts.line-crossings.v1", LineCrossings),
        ("citycam.facts.zone-occupancy.v1", ZoneOccupancy),
    ):
        spec = topic_by_name(name)
        assert spec.schema is contract and spec.key == "camera_id"
