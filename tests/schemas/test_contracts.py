"""The contracts: generated schema files current, golden examples valid, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from schemas import (
    CONTRACTS,
    TOPICS,
    CameraHealth,
    ContractError,
    Event,
    FrameDetections,
    FrameRef,
)
from schemas.generate import render, schema_path, stale_files

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"


def golden(contract: type[Event]) -> dict:
    return json.loads(
        (EXAMPLES / f"{contract.SCHEMA_NAME}-{contract.SCHEMA_VERSION}.json").read_text()
    )


def test_json_schema_files_are_current() -> None:
    assert stale_files() == [], "run `python -m schemas.generate` and commit the result"


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.SCHEMA_NAME)
def test_golden_example_satisfies_model_and_json_schema(contract: type[Event]) -> None:
    example = golden(contract)
    event = contract.from_bytes(orjson.dumps(example))
    assert event.model_dump(mode="json") == example  # round trip is lossless
    jsonschema.validate(example, json.loads(schema_path(contract).read_text()))


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.SCHEMA_NAME)
def test_json_schema_rejects_unknown_fields(contract: type[Event]) -> None:
    example = {**golden(contract), "surprise": 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(example, json.loads(render(contract)))
    with pytest.raises(ContractError, match="surprise"):
        contract.from_bytes(orjson.dumps(example))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "tombstone"),
        (b"\xff\xfe not json", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"{}", "camera_id: Field required"),
    ],
)
def test_unreadable_payloads_give_a_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        FrameRef.from_bytes(payload)


def test_naive_timestamps_are_refused() -> None:
    example = {**golden(FrameRef), "captured_at": "2026-11-22T07:30:15"}
    with pytest.raises(ContractError, match="captured_at"):
        FrameRef.from_bytes(orjson.dumps(example))


def test_box_outside_the_frame_is_refused() -> None:
    example = golden(FrameDetections)
    example["detections"][0]["bbox"]["x2"] = example["width"] + 50
    with pytest.raises(ContractError, match="outside"):
        FrameDetections.from_bytes(orjson.dumps(example))


def test_inverted_box_is_refused() -> None:
    example = golden(FrameDetections)
    example["detections"][0]["bbox"].update(x1=200, x2=100)
    with pytest.raises(ContractError, match="out of order"):
        FrameDetections.from_bytes(orjson.dumps(example))


def test_frame_detections_1_0_0_payloads_are_still_read() -> None:
    """1-1-0 only added optional fields: an old producer's payload stays valid."""
    old = json.loads((EXAMPLES / "frame_detections-1-0-0.json").read_text())
    event = FrameDetections.from_bytes(orjson.dumps(old))
    assert [(d.riders, d.rider_of) for d in event.detections] == [(0, None), (0, None)]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({1: {"rider_of": 7}}, "no other detection 7"),
        ({1: {"rider_of": 1}}, "no other detection 1"),
        ({0: {"riders": 2}}, "riders is 2 but 1 detections ride it"),
        ({1: {"rider_of": None}}, "riders is 1 but 0 detections ride it"),
    ],
)
def test_riders_must_point_at_their_vehicle(change: dict[int, dict], reason: str) -> None:
    example = golden(FrameDetections)
    for index, fields in change.items():
        example["detections"][index].update(fields)
    with pytest.raises(ContractError, match=reason):
        FrameDetections.from_bytes(orjson.dumps(example))


def test_later_revision_of_same_model_is_read_other_model_is_not() -> None:
    example = golden(FrameRef)
    assert FrameRef.from_bytes(orjson.dumps({**example, "schema_version": "1-2-0"}))
    with pytest.raises(ContractError, match="schema_version"):
        FrameRef.from_bytes(orjson.dumps({**example, "schema_version": "2-0-0"}))


def test_every_topic_has_a_contract_and_unique_name() -> None:
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    assert {t.schema for t in TOPICS} == set(CONTRACTS)
    assert all(t.retention_ms > 0 for t in TOPICS)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"window_end": "2026-11-22T07:32:00Z"}, "window_end must be window_start \\+ 60 s"),
        (
            {"window_start": "2026-11-22T07:30:30Z", "window_end": "2026-11-22T07:31:30Z"},
            "whole UTC minute",
        ),
        ({"frames_published": 600}, "frames_published cannot exceed frames_decoded"),
        ({"up_share": 1.2}, "up_share"),
        ({"covered_s": 0}, "covered_s"),
        ({"covered_s": 61}, "covered_s"),
        ({"reconnects": -1}, "reconnects"),
        ({"reconnects": 70_000}, "reconnects"),  # the warehouse column is UInt16
        ({"lag_ms_max": None}, "set exactly when frames are published"),
        ({"lag_ms_max": 100.0}, "lag_ms_max cannot be below lag_ms_mean"),
        (
            {"frames_decoded": 0, "frames_published": 0, "lag_ms_mean": None, "lag_ms_max": None},
            "up_share is 0 exactly when no frame was decoded",
        ),
    ],
)
def test_inconsistent_camera_health_is_refused(change: dict, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        CameraHealth.from_bytes(orjson.dumps({**golden(CameraHealth), **change}))


def test_a_dead_camera_minute_is_a_valid_camera_health() -> None:
    dead = {
        **golden(CameraHealth),
        **{"frames_decoded": 0, "frames_published": 0, "fps": 0, "up_share": 0},
        **{"lag_ms_mean": None, "lag_ms_max": None, "reconnects": 12, "covered_s": 17.25},
    }
    assert CameraHealth.from_bytes(orjson.dumps(dead)).up_share == 0
