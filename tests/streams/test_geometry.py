"""Counting geometry: anchors, the line-crossing rule, zones, ground speed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from citycam.cameras import CountingLine, Homography
from streams.geometry import (
    LineCounter,
    anchors,
    crossing,
    in_polygon,
    side,
    speed_kmh,
    to_ground,
)

# Drawn upwards, so positive (left-hand to right-hand side) is moving right on screen.
UP = ((400.0, 250.0), (400.0, 120.0))


def counting_line(points: tuple[tuple[float, float], ...] = UP) -> CountingLine:
    return CountingLine.model_validate(
        {"id": "l", "points": points, "directions": {"positive": "east", "negative": "west"}}
    )


def feed(counter: LineCounter, track: int, path: list[tuple[float, float]]) -> list[str | None]:
    return [counter.update(track, p) for p in path]


def test_anchor_is_the_bottom_centre_of_the_box() -> None:
    assert anchors([10, 20, 30, 80]).tolist() == [20, 80]
    assert anchors(np.array([[0, 0, 4, 4], [10, 10, 20, 30]])).tolist() == [[2, 4], [15, 30]]


def test_sides_follow_the_screen() -> None:
    # left to right on screen: below (y larger) is the right-hand side
    assert side([[5, 5], [5, -5], [5, 0]], (0, 0), (10, 0)).tolist() == [1, -1, 0]
    # drawn upwards: the right-hand side is to the right
    assert side([[500, 200], [300, 200]], *UP).tolist() == [1, -1]


@pytest.mark.parametrize(
    ("prev", "curr", "expected"),
    [
        ((380, 200), (420, 200), 1),  # left to right across an upward line: positive
        ((420, 200), (380, 200), -1),
        ((380, 130), (420, 110), 1),  # a slanted path still inside the segment
        ((380, 300), (420, 300), 0),  # below the segment's lower end
        ((380, 100), (420, 100), 0),  # above its upper end
        ((380, 260), (420, 240), 1),  # through the end point (400, 250) itself: counted
        ((380, 200), (390, 200), 0),  # approaches, does not reach
        ((380, 150), (380, 240), 0),  # parallel to the line
        ((400, 300), (400, 260), 0),  # along the line's extension
        ((400, 240), (400, 130), 0),  # along the line itself
        ((400, 200), (420, 200), 0),  # starts exactly on the line: not a side
        ((380, 200), (400, 200), 0),  # ends exactly on the line: not yet
    ],
)
def test_crossing(prev: tuple[int, int], curr: tuple[int, int], expected: int) -> None:
    assert int(crossing(prev, curr, *UP)) == expected


def test_a_line_drawn_left_to_right_counts_downward_moves_as_positive() -> None:
    assert int(crossing((50, 0), (50, 20), (0, 10), (100, 10))) == 1
    assert int(crossing((50, 20), (50, 0), (0, 10), (100, 10))) == -1


def test_crossing_is_vectorised() -> None:
    prev = np.array([[380, 200], [420, 200], [380, 300]])
    curr = np.array([[420, 200], [380, 200], [420, 300]])
    assert crossing(prev, curr, *UP).tolist() == [1, -1, 0]


def test_fast_mover_jumping_across_between_two_samples_is_counted() -> None:
    # a car seen once 150 px before the line and next 190 px after it: no sample near it
    counter = LineCounter(counting_line())
    assert feed(counter, 7, [(250, 230), (590, 140)]) == [None, "east"]
    assert counter.counts == {"east": 1}


def test_jump_past_the_end_of_the_segment_is_not_counted() -> None:
    counter = LineCounter(counting_line())
    assert feed(counter, 7, [(250, 30), (590, 60)]) == [None, None]  # above y 120


@pytest.mark.parametrize(
    ("path", "events"),
    [
        # stops exactly on the line, then moves on: once, when it reaches the other side
        ([(390, 200), (400, 200), (400, 201), (410, 200)], [None, None, None, "east"]),
        ([(410, 200), (400, 200), (390, 200)], [None, None, "west"]),
        # touches the line and goes back: never
        ([(390, 200), (400, 200), (390, 210)], [None, None, None]),
        ([(410, 200), (400, 180), (400, 170), (420, 160)], [None, None, None, None]),
        # starts on the line: no side to come from, so no count when it leaves
        ([(400, 200), (410, 200)], [None, None]),
        # back and forth across it: every real change of side counts
        ([(390, 200), (410, 200), (390, 200), (400, 200), (410, 200)],
         [None, "east", "west", None, "east"]),
    ],
)  # fmt: skip
def test_anchors_on_the_line_are_counted_once_when_the_object_moves_on(
    path: list[tuple[float, float]], events: list[str | None]
) -> None:
    counter = LineCounter(counting_line())
    assert feed(counter, 1, path) == events


def test_tracks_are_independent_and_can_be_forgotten() -> None:
    counter = LineCounter(counting_line())
    counter.update(1, (390, 200))
    counter.update(2, (410, 200))
    assert counter.update(1, (410, 200)) == "east"
    assert counter.update(2, (390, 200)) == "west"
    counter.forget(1)
    assert counter.update(1, (390, 200)) is None  # a new track: no previous side
    assert counter.counts == {"east": 1, "west": 1}
    assert counter.reference == {1: (390.0, 200.0), 2: (390.0, 200.0)}


SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]
# a U open at the top: the notch (x 3-7, y 0-7) is outside
U_SHAPE = [(0, 0), (3, 0), (3, 7), (7, 7), (7, 0), (10, 0), (10, 10), (0, 10)]


@pytest.mark.parametrize(
    ("polygon", "point", "inside"),
    [
        (SQUARE, (5, 5), True),
        (SQUARE, (11, 5), False),
        (SQUARE, (10, 5), True),  # on an edge
        (SQUARE, (10, 10), True),  # on a vertex
        (SQUARE, (5, -0.001), False),
        (U_SHAPE, (5, 3), False),  # in the notch
        (U_SHAPE, (1.5, 3), True),  # in a prong
        (U_SHAPE, (5, 8.5), True),  # in the base
        (U_SHAPE, (5, 7), True),  # on the notch's bottom edge
    ],
)
def test_point_in_polygon(
    polygon: list[tuple[int, int]], point: tuple[float, float], inside: bool
) -> None:
    assert bool(in_polygon(point, polygon)) is inside


def test_point_in_polygon_agrees_with_opencv_on_a_concave_polygon() -> None:
    star = np.array(
        [(50, 0), (61, 35), (98, 35), (68, 57), (79, 91), (50, 70), (21, 91), (32, 57),
         (2, 35), (39, 35)],
        dtype=np.float32,
    )  # fmt: skip
    points = np.random.default_rng(4).uniform(-5, 105, size=(2000, 2))
    expected = [cv2.pointPolygonTest(star, (float(x), float(y)), False) >= 0 for x, y in points]
    assert in_polygon(points, star).tolist() == expected
    assert in_polygon(points, star).sum() > 300  # the test points do land inside


def test_speed_on_a_pure_scale_calibration() -> None:
    ten_px_per_metre = np.diag([0.1, 0.1, 1.0])
    assert speed_kmh((0, 0), 0.0, (100, 0), 1.0, ten_px_per_metre) == pytest.approx(36.0)
    assert speed_kmh((0, 0), 5.0, (30, 40), 7.0, ten_px_per_metre) == pytest.approx(9.0)


def test_speed_on_a_perspective_calibration_from_the_config() -> None:
    # Synthetic camera: ground metres -> image pixels with perspective; calibrate on four
    # image points as the registry does, then time a vehicle over 25 m of road.
    ground_to_image = np.array([[20.0, -2.0, 320.0], [0.0, -6.0, 460.0], [0.0, 0.02, 1.0]])

    def image_of(ground: list[tuple[float, float]]) -> np.ndarray:
        out = np.c_[np.asarray(ground), np.ones(len(ground))] @ ground_to_image.T
        return out[:, :2] / out[:, 2:]

    corners = [(-5.0, 0.0), (5.0, 0.0), (5.0, 40.0), (-5.0, 40.0)]
    calibration = Homography.model_validate(
        {"image_points": image_of(corners).tolist(), "ground_points": corners}
    )
    near = image_of([(1.0, 5.0), (1.0, 30.0)])  # 25 m along the road, near the camera
    far = image_of([(1.0, 30.0), (1.0, 55.0)])  # the next 25 m: far fewer pixels
    assert np.linalg.norm(near[1] - near[0]) > 1.5 * np.linalg.norm(far[1] - far[0])
    h = calibration.image_to_ground
    assert speed_kmh(near[0], 10.0, near[1], 11.5, h) == pytest.approx(60.0)
    assert speed_kmh(far[0], 11.5, far[1], 13.0, h) == pytest.approx(60.0)


def test_points_beyond_the_horizon_have_no_ground_position() -> None:
    horizon_at_y_100 = np.array([[0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.01, -1.0]])
    ground = to_ground([[50, 200], [50, 50]], horizon_at_y_100)
    assert np.all(np.isfinite(ground[0])) and np.all(np.isnan(ground[1]))


def test_speed_needs_increasing_times() -> None:
    with pytest.raises(ValueError, match="times must increase"):
        speed_kmh((0, 0), 1.0, (1, 1), 1.0, np.eye(3))
