"""Zone occupancy: objects whose anchor is inside a zone, per window, zeros included."""

from __future__ import annotations

import pytest

from citycam.config import StreamsSettings
from schemas import ZoneOccupancy
from streams.counting import count_frame, window_facts
from streams.layout import Layouts, layout_for
from streams.occupancy import objects_in_zones
from tests.streams.helpers import T0, box, camera, frame, layout

SETTINGS = StreamsSettings()


def occupancy(frames: list) -> ZoneOccupancy:
    lay = layout(SETTINGS)
    window = None
    for f in frames:
        result = count_frame(f, lay, window, {}, SETTINGS)
        if result is not None:
            window = result.window
    assert window is not None
    facts = window_facts("cam", int(T0.timestamp()), window, lay, SETTINGS, T0)
    (fact,) = [f for f in facts if isinstance(f, ZoneOccupancy)]
    return fact


def test_counts_objects_whose_anchor_is_inside_the_zone() -> None:
    # Zone: the west half, x 0..50 (edge included). Anchors at x 10 and 50 in; 70 out.
    counts = objects_in_zones(
        frame(0, box(10, label="car"), box(50, label="person"), box(70, label="car")),
        layout(SETTINGS),
        SETTINGS,
    )
    assert counts == {"west-half": {"car": 1, "pedestrian": 1}}


def test_window_fact_means_maxima_share_and_classes() -> None:
    fact = occupancy(
        [
            frame(0, box(10, label="car"), box(20, label="motorcycle", track=None)),
            frame(1, box(10, label="car")),
            frame(2),  # empty frame: counts as a frame, unoccupied
            frame(3, box(80, label="car")),  # outside the zone
        ]
    )
    assert (fact.zone_id, fact.zone_kind, fact.frames) == ("west-half", "junction", 4)
    assert (fact.objects, fact.max_objects, fact.occupied_frames) == (3, 2, 2)
    assert fact.mean_objects == 0.75 and fact.occupied_share == 0.5
    assert fact.mean_objects_by_class == {"car": 0.5, "motorbike": 0.25}
    assert fact.mean_pcu == pytest.approx((1.0 + 0.3 + 1.0) / 4)
    assert fact.pcu_version == "tcvn4054-2005"


def test_riders_low_scores_and_other_labels_are_not_objects() -> None:
    fact = occupancy(
        [
            frame(
                0,
                box(10, label="motorcycle", riders=1),
                box(10, label="person", rider_of=0),
                box(20, label="car", score=0.2),
                box(30, label="dog"),
            )
        ]
    )
    assert fact.objects == 1 and fact.mean_objects_by_class == {"motorbike": 1.0}


def test_an_empty_window_is_a_zero_fact() -> None:
    fact = occupancy([frame(0), frame(1)])
    assert (fact.frames, fact.objects, fact.occupied_share, fact.mean_objects_by_class) == (
        2,
        0,
        0.0,
        {},
    )


def test_zones_scale_to_the_frame_size() -> None:
    big = layout_for(camera(), 200, 200, SETTINGS)
    assert big is not None
    counts = objects_in_zones(frame(0, box(90, y=100), size=(200, 200)), big, SETTINGS)
    assert counts == {"west-half": {"pedestrian": 1}}  # x 90 of 200 is inside x 0..100


def test_layouts_skip_cameras_without_geometry_or_registry_entry() -> None:
    from citycam.cameras import CameraRegistry

    plain = camera().model_copy(update={"id": "plain", "geometry": None})
    layouts = Layouts(CameraRegistry(cameras=(camera(), plain)), SETTINGS)
    assert layouts.get("plain", 100, 100) is None
    assert layouts.get("unknown", 100, 100) is None
    cam = layouts.get("cam", 100, 100)
    assert cam is not None and cam.counts_anything
    assert layouts.get("cam", 100, 100) is cam  # cached
