"""Line crossings at the fact level: counting rule, damping, classes, riders, speed, PCU."""

from __future__ import annotations

from typing import Any

import pytest

from citycam.config import PcuTable, StreamsSettings
from schemas import FrameDetections, LineCrossings
from streams.counting import WindowState, count_frame, stale_tracks, window_facts
from streams.crossings import TrackState, majority_class, signed_distance
from streams.density import window_start
from streams.layout import CameraLayout
from tests.streams.helpers import T0, box, frame, layout

BAND0 = StreamsSettings(crossing_band_px=0)


def run(
    frames: list[FrameDetections],
    settings: StreamsSettings = BAND0,
    lay: CameraLayout | None = None,
) -> tuple[dict[int, WindowState], dict[int, TrackState]]:
    """Frames through count_frame as the stream job does; windows by start, tracks by id."""
    lay = lay or layout(settings)
    windows: dict[int, WindowState] = {}
    tracks: dict[int, TrackState] = {}
    for f in frames:
        start = window_start(f.captured_at.timestamp(), settings.window_s)
        result = count_frame(f, lay, windows.get(start), tracks, settings)
        if result is not None:
            windows[start] = result.window
            tracks.update(result.tracks)
    return windows, tracks


def crossing_facts(
    frames: list[FrameDetections],
    settings: StreamsSettings = BAND0,
    lay: CameraLayout | None = None,
) -> list[LineCrossings]:
    lay = lay or layout(settings)
    windows, _ = run(frames, settings, lay)
    facts = [
        f
        for start, state in sorted(windows.items())
        for f in window_facts("cam", start, state, lay, settings, T0)
    ]
    return [f for f in facts if isinstance(f, LineCrossings)]


def counts(facts: list[LineCrossings]) -> dict[tuple[str, str], int]:
    """(direction, class) -> crossings, nonzero only, summed over windows."""
    out: dict[tuple[str, str], int] = {}
    for f in facts:
        if f.crossings:
            out[(f.direction, f.vehicle_class)] = out.get((f.direction, f.vehicle_class), 0) + (
                f.crossings
            )
    return out


def walk(xs: list[float], label: str = "person", track: int = 1, **kw: Any) -> list:
    return [frame(i * 0.5, box(x, label=label, track=track, **kw)) for i, x in enumerate(xs)]


def test_signed_distance_is_positive_on_the_positive_side() -> None:
    line = layout().lines[0]
    assert signed_distance((60, 50), line) == pytest.approx(10)
    assert signed_distance((47, 20), line) == pytest.approx(-3)


def test_a_crossing_counts_once_each_way_a_turn_back_counts_again() -> None:
    facts = crossing_facts(walk([30, 40, 60, 70, 55, 45, 30]))
    assert counts(facts) == {("eastbound", "pedestrian"): 1, ("westbound", "pedestrian"): 1}
    east = next(f for f in facts if f.direction == "eastbound" and f.crossings)
    assert (east.orientation, east.line_id) == ("positive", "main")
    west = next(f for f in facts if f.direction == "westbound" and f.crossings)
    assert west.orientation == "negative"


def test_a_fast_mover_jumping_over_the_line_between_two_samples_is_counted() -> None:
    """Far left on one sampled frame, far right on the next: one crossing, as a fact."""
    facts = crossing_facts(walk([5, 95], label="car"))
    assert counts(facts) == {("eastbound", "car"): 1}
    (fact,) = [f for f in facts if f.crossings]
    assert (fact.frames, fact.pcu, fact.pcu_per_hour) == (2, 1.0, 60.0)


def test_passing_beside_the_segment_is_not_a_crossing() -> None:
    below = [frame(i * 0.5, box(x, y=98)) for i, x in enumerate([30, 45, 55, 70])]
    assert counts(crossing_facts(below)) == {}


def test_facts_include_zeros_for_every_line_way_and_class() -> None:
    facts = crossing_facts(walk([30, 40]))
    classes = sorted(set(BAND0.road_user_classes.values()))
    assert len(facts) == 2 * len(classes)
    assert {(f.direction, f.vehicle_class) for f in facts} == {
        (d, c) for d in ("eastbound", "westbound") for c in classes
    }
    assert all(f.crossings == 0 and f.frames == 2 for f in facts)


@pytest.mark.parametrize(
    ("band", "expected"),
    [
        # Without damping, each jitter of the standing walker's box over the line counts.
        (0, {("eastbound", "pedestrian"): 3, ("westbound", "pedestrian"): 2}),
        # With a 4 px band the walker crosses once; the jitter stays inside the band.
        (4, {("eastbound", "pedestrian"): 1}),
    ],
)
def test_jitter_near_the_line_is_damped_by_the_band(
    band: float, expected: dict[tuple[str, str], int]
) -> None:
    # Crosses east at 56, then stands by the line, its anchor jittering 48..53.
    settings = StreamsSettings(crossing_band_px=band)
    xs = [30, 40, 56, 52, 48, 53, 49, 51, 52, 70]
    assert counts(crossing_facts(walk(xs), settings)) == expected


def test_the_band_does_not_delay_the_first_side_of_a_new_track() -> None:
    """A track first seen inside the band still has a side: crossing from there counts."""
    settings = StreamsSettings(crossing_band_px=4)
    assert counts(crossing_facts(walk([52, 30]), settings)) == {("westbound", "pedestrian"): 1}


def test_band_scales_with_the_frame() -> None:
    settings = StreamsSettings(crossing_band_px=4)
    assert layout(settings, size=(200, 200)).band_px == pytest.approx(8)
    # 6 px beyond the line on a 200 px frame is inside the scaled band: no crossing back.
    big = [frame(i * 0.5, box(x, y=100), size=(200, 200)) for i, x in enumerate([60, 120, 94, 130])]
    facts = crossing_facts(big, settings, layout(settings, size=(200, 200)))
    assert counts(facts) == {("eastbound", "pedestrian"): 1}


def test_frames_without_track_ids_do_not_cross() -> None:
    untracked = [frame(i * 0.5, box(x, track=None)) for i, x in enumerate([30, 45, 55, 70])]
    windows, tracks = run(untracked)
    assert tracks == {}
    assert counts(crossing_facts(untracked)) == {}
    assert next(iter(windows.values()))["frames"] == 4


def test_riders_are_not_pedestrians_their_motorbike_counts_once() -> None:
    frames = [
        frame(
            i * 0.5,
            box(x, label="motorcycle", track=1, riders=2),
            box(x, label="person", track=2, rider_of=0),
            box(x + 1, label="person", track=3, rider_of=0),
        )
        for i, x in enumerate([20, 40, 60, 80])
    ]
    assert counts(crossing_facts(frames)) == {("eastbound", "motorbike"): 1}


def test_a_track_that_is_mostly_a_rider_is_not_counted_when_association_flickers() -> None:
    frames = []
    for i, x in enumerate([20, 30, 40, 60, 80]):
        carried = i != 3  # on the crossing frame the rider was not associated
        frames.append(
            frame(
                i * 0.5,
                box(x, label="motorcycle", track=1, riders=1 if carried else 0),
                box(x, label="person", track=2, rider_of=0 if carried else None),
            )
        )
    assert counts(crossing_facts(frames)) == {("eastbound", "motorbike"): 1}


def test_a_track_takes_its_most_frequent_class() -> None:
    labels = ["car", "car", "truck", "car"]
    frames = [frame(i * 0.5, box(x, label=labels[i])) for i, x in enumerate([20, 40, 60, 80])]
    assert counts(crossing_facts(frames)) == {("eastbound", "car"): 1}
    assert majority_class({"car": 1, "truck": 1}, "truck") == "truck"


def test_a_redelivered_frame_changes_nothing() -> None:
    frames = walk([30, 60])
    once = crossing_facts(frames)
    twice = crossing_facts([frames[0], frames[1], frames[1], frames[0]])
    assert once == twice


def test_crossings_near_a_window_boundary_count_in_the_window_that_completes_them() -> None:
    start = T0.timestamp()
    frames = [frame(59.5, box(40)), frame(60.0, box(60))]
    windows, _ = run(frames)
    assert windows[int(start)]["lines"] == {}
    assert windows[int(start) + 60]["lines"] == {"main|positive|pedestrian": [1, []]}


def test_speed_from_the_homography_uses_the_anchor_history() -> None:
    # 10 px per 0.5 s = 1 m per 0.5 s = 7.2 km/h; then a faster one, 20 px per 0.5 s.
    slow = walk([20, 30, 40, 50, 60], track=1)
    fast = [frame(10 + i * 0.5, box(x, track=2)) for i, x in enumerate([10, 30, 50, 70])]
    facts = crossing_facts(slow + fast, BAND0, layout(BAND0, homography=True))
    (fact,) = [f for f in facts if f.crossings]
    assert fact.crossings == fact.speed_samples == 2
    assert fact.speed_kmh_mean == pytest.approx((7.2 + 14.4) / 2, abs=0.05)
    assert fact.speed_kmh_p85 == pytest.approx(7.2 + 0.85 * 7.2, abs=0.05)


def test_no_speed_without_calibration_or_without_enough_history() -> None:
    uncalibrated = crossing_facts(walk([20, 30, 40, 60]))
    quick = [frame(0, box(40)), frame(0.2, box(60))]  # under speed_min_span_s of history
    too_short = crossing_facts(quick, BAND0, layout(BAND0, homography=True))
    for facts in (uncalibrated, too_short):
        (fact,) = [f for f in facts if f.crossings]
        assert (fact.speed_samples, fact.speed_kmh_mean, fact.speed_kmh_p85) == (0, None, None)


def test_pcu_table_follows_the_road_class_and_pedestrians_weigh_nothing() -> None:
    walker = [frame(5 + i * 0.5, box(x, track=2)) for i, x in enumerate([60, 40])]
    frames = walk([20, 40, 60], label="motorcycle", track=1) + walker
    default = crossing_facts(frames)
    by_class = {f.vehicle_class: f for f in default if f.crossings}
    assert by_class["motorbike"].pcu_factor == 0.3 and by_class["motorbike"].pcu == 0.3
    assert by_class["motorbike"].pcu_per_hour == pytest.approx(18.0)
    assert by_class["motorbike"].pcu_version == "tcvn4054-2005"
    assert (by_class["pedestrian"].pcu_factor, by_class["pedestrian"].pcu) == (0.0, 0.0)

    mountain = crossing_facts(frames, BAND0, layout(BAND0, road_class="mountain"))
    bike = next(f for f in mountain if f.vehicle_class == "motorbike" and f.crossings)
    assert (bike.pcu_factor, bike.pcu_version) == (0.2, "tcvn4054-2005-mountain")


def test_pcu_tables_are_configurable_per_road_class() -> None:
    settings = StreamsSettings(
        crossing_band_px=0,
        pcu_tables={"urban arterial": PcuTable(version="city-2027", factors={"car": 1.0})},
    )
    assert settings.pcu_table("urban arterial").version == "city-2027"
    assert settings.pcu_table("rural").version == "tcvn4054-2005"
    assert settings.pcu_table(None).factors == settings.pcu_factors
    with pytest.raises(KeyError, match="city-2027 has no factor for"):
        crossing_facts(walk([20, 40]), settings, layout(settings, road_class="urban arterial"))
    with pytest.raises(ValueError, match="must be > 0"):
        PcuTable(version="x", factors={"car": 0})


def test_tracks_unseen_for_a_while_are_forgotten() -> None:
    settings = StreamsSettings(track_forget_s=30)
    assert stale_tracks({1: 100.0, 2: 69.0, 3: 70.0}, 100.0, settings) == [2]
