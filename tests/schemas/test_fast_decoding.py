"""The derived msgspec decoders accept only what the pydantic contracts accept, with the same
values; what they refuse, pydantic decides (and words the refusal)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from schemas import CONTRACTS, ContractError, Event, FrameDetections
from schemas.fast_decoding import FastDecoder, _python_pattern, derived_struct

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"
DECODERS = {contract: FastDecoder(contract) for contract in CONTRACTS}


def golden(contract: type[Event]) -> dict[str, Any]:
    path = EXAMPLES / f"{contract.SCHEMA_NAME}-{contract.SCHEMA_VERSION}.json"
    return dict(json.loads(path.read_text()))


def plain(value: Any) -> Any:
    """A record's or a model's values, comparable across the two (tz offsets included)."""
    if isinstance(value, msgspec.Struct):
        return {f: plain(getattr(value, f)) for f in value.__struct_fields__}
    if isinstance(value, BaseModel):
        return {f: plain(getattr(value, f)) for f in type(value).model_fields}
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return (value.replace(tzinfo=None), value.utcoffset(), type(value))
    return (value, type(value))


def verdicts(contract: type[Event], payload: bytes) -> tuple[Any, Any]:
    """(derived record or None, pydantic model or None) for one payload."""
    fast = DECODERS[contract].decode_fast(payload)
    try:
        model = contract.from_bytes(payload)
    except ContractError:
        model = None
    return fast, model


def assert_fast_no_looser(contract: type[Event], payload: bytes) -> None:
    fast, model = verdicts(contract, payload)
    if fast is not None:
        assert model is not None, f"derived decoder accepted what pydantic refuses: {payload!r}"
        assert plain(fast) == plain(model), payload


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.SCHEMA_NAME)
def test_golden_example_takes_the_fast_path_with_the_same_values(contract: type[Event]) -> None:
    payload = orjson.dumps(golden(contract))
    fast, model = verdicts(contract, payload)
    assert fast is not None and model is not None
    assert plain(fast) == plain(model)
    assert plain(DECODERS[contract].decode(payload)) == plain(model)


def test_detector_output_takes_the_fast_path() -> None:
    """Boxes at full float precision and times to the microsecond, as producers write them."""
    example = golden(FrameDetections)
    box = {"x1": 76.37746189766141, "y1": 10.123456789, "x2": 99.98765432101, "y2": 20.5}
    detections = [{**d, "bbox": box} for d in example["detections"]]
    payload = orjson.dumps({**example, "detections": detections})
    assert DECODERS[FrameDetections].decode_fast(payload) is not None


# Values that probe each check: bounds, lengths, pattern ends, time zones, types, nulls.
TRICKY = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([-1, 0, 1, 2, 199, 200, 201, 16384, 16385, 2**63, 2**64, -(2**63) - 1]),
    st.sampled_from([-0.0, 0.0, 0.5, 1.0, 1.0000001, 3.0, 1e308, -1e-9]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "a",
            "A",
            "cam-1\n",
            "\ncam-1",
            "cam 1",
            "x" * 64,
            "x" * 65,
            "x" * 201,
            "1-2-3",
            "1-2-3\n",
            "2-0-0",
            "1",
            "3",
            "car",
            "congestion",
            "open",
            "closed",
            "positive",
            "above",
            "2026-05-01T08:00:00",
            "2026-05-01T08:00:00Z",
            "2026-05-01T08:00:00+07:00",
            "2026-05-01T08:00:00-00:00",
            "2026-05-01 08:00:00Z",
            "2026-05-01t08:00:00z",
            "2026-05-01T08:00:00.1234567Z",
            "2026-05-01T08:00:00.123Z",
            "2026-05-01T08:00Z",
            "2026-05-01T24:00:00Z",
            "2026-05-01T08:00:60Z",
            "2026-05-01",
            "1777622400",
        ]
    ),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(["car", "x1", ""]), st.floats(0, 5), max_size=2),
)


def nearby(value: Any) -> st.SearchStrategy[Any]:
    """Values close to `value`, most of them still valid: the values the two must agree on."""
    if isinstance(value, bool) or value is None:
        return TRICKY
    if isinstance(value, int):
        return st.integers(-2, 2).map(lambda d: value + d) | st.sampled_from([0, 1, value * 10])
    if isinstance(value, float):
        return st.floats(0, 2).map(lambda f: value * f) | st.sampled_from([value + 1e-9, -value])
    if isinstance(value, str):
        variants = [value + "\n", value.upper(), value[:1], value + "x", value[:19]]
        if value.endswith("Z"):  # a time: the same instant written other ways
            variants += [
                value[:-1] + "+00:00",
                value[:-1] + "+07:00",
                value.replace("T", " "),
                value[:19] + "Z",
                value[:19] + ".5Z",
                value.lower(),
            ]
        return st.sampled_from(variants)
    return TRICKY


@st.composite
def mutants(draw: st.DrawFn, example: dict[str, Any]) -> dict[str, Any]:
    """The example with one or two values replaced, removed or added, at any depth."""
    payload = json.loads(json.dumps(example))
    for _ in range(draw(st.integers(1, 2))):
        parent: Any = payload
        key: Any = draw(st.sampled_from(sorted(parent)))
        while isinstance(parent[key], dict | list) and parent[key] and draw(st.booleans()):
            parent = parent[key]
            keys = sorted(parent) if isinstance(parent, dict) else range(len(parent))
            key = draw(st.sampled_from(list(keys)))
        action = draw(st.sampled_from(["near", "near", "replace", "remove", "add"]))
        if action == "remove" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["surprise", "x1", "riders"]))] = draw(TRICKY)
        elif action == "near":
            parent[key] = draw(nearby(parent[key]))
        else:
            parent[key] = draw(TRICKY)
    return dict(payload)


def examples_of(contract: type[Event]) -> list[dict[str, Any]]:
    examples = [golden(contract)]
    if contract is FrameDetections:  # the 1-0-0 shape too: no riders, no track ids
        examples.append(json.loads((EXAMPLES / "frame_detections-1-0-0.json").read_text()))
    return examples


@pytest.mark.parametrize("contract", CONTRACTS, ids=lambda c: c.SCHEMA_NAME)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_derived_decoder_accepts_nothing_pydantic_refuses(
    contract: type[Event], data: st.DataObject
) -> None:
    example = data.draw(st.sampled_from(examples_of(contract)))
    assert_fast_no_looser(contract, json.dumps(data.draw(mutants(example))).encode())  # big ints


@pytest.mark.parametrize(
    ("change", "fast_refuses", "pydantic_refuses"),
    [
        ({"camera_id": "cam-1\n"}, True, True),  # a final $ does not allow a trailing newline
        ({"width": "1920"}, True, False),  # pydantic's lax mode reads numbers in strings
        ({"captured_at": "2026-05-01T08:00:00"}, True, True),  # no time zone
        ({"width": 16385}, True, True),
        ({"surprise": 1}, True, True),
    ],
)
def test_refusals_go_to_pydantic(
    change: dict[str, Any], fast_refuses: bool, pydantic_refuses: bool
) -> None:
    payload = orjson.dumps({**golden(FrameDetections), **change})
    fast, model = verdicts(FrameDetections, payload)
    assert (fast is None, model is None) == (fast_refuses, pydantic_refuses)
    decoder = DECODERS[FrameDetections]
    if pydantic_refuses:
        with pytest.raises(ContractError) as refused:
            decoder.decode(payload)
        with pytest.raises(ContractError) as by_pydantic:
            FrameDetections.from_bytes(payload)
        assert refused.value.reason == by_pydantic.value.reason
    else:
        assert isinstance(decoder.decode(payload), FrameDetections)


def test_a_repeated_key_is_read_as_pydantic_reads_it() -> None:
    text = orjson.dumps(golden(FrameDetections)).decode()
    payload = (text[:-1] + ',"camera_id":"other-cam"}').encode()
    fast, model = verdicts(FrameDetections, payload)
    assert fast is not None and model is not None and fast.camera_id == model.camera_id


@pytest.mark.parametrize(
    ("pattern", "python"),
    [("^a$", r"^a\Z"), (r"^a\$", r"^a\$"), ("^a\\\\$", "^a\\\\\\Z"), ("^a", "^a")],
)
def test_a_final_dollar_anchors_at_the_very_end_as_in_rust(pattern: str, python: str) -> None:
    assert _python_pattern(pattern) == python


def test_model_validators_run_on_the_derived_records() -> None:
    example = golden(FrameDetections)
    box = example["detections"][0]["bbox"]
    swapped = {**box, "x1": box["x2"], "x2": box["x1"]}  # BoundingBox._ordered
    outside = {**box, "x2": example["width"] + 50}  # FrameDetections._boxes_inside_frame
    for bbox in (swapped, outside):
        detections = [{**example["detections"][0], "bbox": bbox}]
        payload = orjson.dumps({**example, "detections": detections})
        assert verdicts(FrameDetections, payload) == (None, None)


def test_tombstones_are_refused_as_by_pydantic() -> None:
    with pytest.raises(ContractError, match="tombstone"):
        DECODERS[FrameDetections].decode(None)


def test_what_cannot_be_mirrored_is_refused_at_derivation() -> None:
    from pydantic import Field, field_validator

    class Loose(BaseModel):
        value: float = Field(multiple_of=0.5)

    class Checked(BaseModel):
        value: int

        @field_validator("value")
        @classmethod
        def _even(cls, value: int) -> int:
            return value

    class Stripped(BaseModel):
        model_config = ConfigDict(str_strip_whitespace=True)
        value: str

    for model in (Loose, Checked, Stripped):
        with pytest.raises(TypeError, match="cannot be mirrored"):
            derived_struct(model)
