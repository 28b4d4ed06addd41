"""Line-crossing and zone-occupancy facts in the sink: row mapping, routes, quality suites."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import LINE_CROSSINGS_TOPIC, ZONE_OCCUPANCY_TOPIC, LineCrossings, ZoneOccupancy
from warehouse.quality import QualityGate
from warehouse.sink import COLUMNS, ROUTES, line_crossing_rows, zone_occupancy_rows

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"
NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
CROSSINGS = COLUMNS["line_crossings_1m"]
OCCUPANCY = COLUMNS["zone_occupancy_1m"]


def crossing_fact(**changes: Any) -> LineCrossings:
    example = json.loads((EXAMPLES / "line_crossings-1-0-0.json").read_text())
    return LineCrossings.from_bytes(orjson.dumps({**example, **changes}))


def occupancy_fact(**changes: Any) -> ZoneOccupancy:
    example = json.loads((EXAMPLES / "zone_occupancy-1-0-0.json").read_text())
    return ZoneOccupancy.from_bytes(orjson.dumps({**example, **changes}))


def row(fact: LineCrossings | ZoneOccupancy) -> dict[str, Any]:
    if isinstance(fact, LineCrossings):
        (values,) = line_crossing_rows(fact)["line_crossings_1m"]
        return dict(zip(CROSSINGS, values, strict=True))
    (values,) = zone_occupancy_rows(fact)["zone_occupancy_1m"]
    return dict(zip(OCCUPANCY, values, strict=True))


@pytest.fixture(scope="module")
def gate() -> QualityGate:
    return QualityGate(clock=lambda: NOW)


def test_topics_are_routed_to_their_row_functions() -> None:
    routes = {r.topic.name: r.to_rows for r in ROUTES}
    assert routes[LINE_CROSSINGS_TOPIC.name] is line_crossing_rows
    assert routes[ZONE_OCCUPANCY_TOPIC.name] is zone_occupancy_rows


def test_crossing_row_carries_every_field_of_the_fact() -> None:
    fact = crossing_fact()
    mapped = row(fact)
    assert set(CROSSINGS) == set(fact.model_dump()) - {"schema_version"}
    assert mapped == {c: getattr(fact, c) for c in CROSSINGS}


def test_occupancy_row_carries_every_field_of_the_fact() -> None:
    fact = occupancy_fact()
    mapped = row(fact)
    assert set(OCCUPANCY) == set(fact.model_dump()) - {"schema_version"}
    assert mapped["mean_objects_by_class"] == {"car": 0.5, "motorbike": 2.75, "pedestrian": 0.5}
    assert mapped == {c: getattr(fact, c) for c in OCCUPANCY}


def split(gate: QualityGate, table: str, facts: list[Any]) -> tuple[int, list[tuple[str, ...]]]:
    columns = COLUMNS[table]
    rows = [[row(f)[c] for c in columns] for f in facts]
    valid, quarantined = gate.split(table, rows, columns)
    return len(valid), [q.failed_expectations for q in quarantined]


def test_valid_facts_pass_the_suites(gate: QualityGate) -> None:
    no_speed = crossing_fact(
        vehicle_class="pedestrian",
        pcu_factor=0.0,
        pcu=0.0,
        pcu_per_hour=0.0,
        speed_samples=0,
        speed_kmh_mean=None,
        speed_kmh_p85=None,
    )
    assert split(gate, "line_crossings_1m", [crossing_fact(), no_speed]) == (2, [])
    empty = occupancy_fact(
        objects=0,
        mean_objects=0,
        max_objects=0,
        occupied_frames=0,
        occupied_share=0,
        mean_pcu=0,
        mean_objects_by_class={},
        zone_kind=None,
    )
    assert split(gate, "zone_occupancy_1m", [occupancy_fact(), empty]) == (2, [])


def test_inconsistent_crossing_facts_are_quarantined(gate: QualityGate) -> None:
    # model_construct: the contract would refuse these; the suite is the warehouse's own net.
    good = crossing_fact().model_dump()
    bad = [
        LineCrossings.model_construct(**{**good, "pcu": 9.9}),
        LineCrossings.model_construct(**{**good, "pcu_per_hour": 1.0}),
        LineCrossings.model_construct(**{**good, "vehicle_class": "spaceship"}),
        LineCrossings.model_construct(**{**good, "speed_kmh_mean": None}),
    ]
    assert split(gate, "line_crossings_1m", bad) == (
        0,
        [
            (  # pcu_per_hour no longer follows from pcu either
                "expect_column_values_to_be_between(pcu_error)",
                "expect_column_values_to_be_between(pcu_per_hour_error)",
            ),
            ("expect_column_values_to_be_between(pcu_per_hour_error)",),
            ("expect_column_values_to_be_in_set(vehicle_class)",),
            ("expect_column_values_to_be_between(speed_presence_error)",),
        ],
    )


def test_inconsistent_occupancy_facts_are_quarantined(gate: QualityGate) -> None:
    good = occupancy_fact().model_dump()
    bad = [
        ZoneOccupancy.model_construct(**{**good, "occupied_share": 0.5}),
        ZoneOccupancy.model_construct(**{**good, "mean_objects": 1.0}),
    ]
    assert split(gate, "zone_occupancy_1m", bad) == (
        0,
        [
            ("expect_column_values_to_be_between(occupied_share_error)",),
            ("expect_column_values_to_be_between(mean_objects_error)",),
        ],
    )
