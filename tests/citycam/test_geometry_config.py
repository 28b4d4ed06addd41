"""Camera geometry in the registry: validation errors that name camera and field, scaling."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from citycam.cameras import (
    CameraConfigError,
    CameraGeometry,
    Homography,
    Lane,
    load_cameras,
)

# A synthetic calibration: an image->ground homography with perspective, and the ground
# points it puts under four image points.
TRUE_H = np.array([[0.05, 0.01, -10.0], [0.0, 0.12, -20.0], [0.0, 0.002, 1.0]])
IMAGE_POINTS = [[100.0, 400.0], [540.0, 400.0], [500.0, 200.0], [140.0, 200.0]]
HORIZON_200 = np.array([[0.05, 0.0, -10.0], [0.0, 0.12, -20.0], [0.0, 0.005, -1.0]])


def ground_of(points: list[list[float]], h: np.ndarray = TRUE_H) -> list[list[float]]:
    out = np.c_[np.asarray(points), np.ones(len(points))] @ h.T
    return (out[:, :2] / out[:, 2:]).tolist()


GEOMETRY: dict[str, Any] = {
    "frame_size": [640, 480],
    "lines": [
        {
            "id": "north-road",
            "points": [[100, 300], [500, 300]],
            "directions": {"positive": "southbound", "negative": "northbound"},
        }
    ],
    "zones": [
        {"id": "junction", "kind": "junction", "polygon": [[0, 0], [200, 0], [200, 200]]},
        # concave (an L shape) is fine
        {"id": "kerb", "polygon": [[300, 320], [600, 320], [600, 470], [500, 470], [500, 400]]},
    ],
    "lanes": [
        {
            "id": "lane-1",
            "polygon": [[100, 250], [500, 250], [500, 350], [100, 350]],
            "direction": [0, 1],
            "feeds": "north-road",
        }
    ],
    "homography": {"image_points": IMAGE_POINTS, "ground_points": ground_of(IMAGE_POINTS)},
}


def registry(geometry: dict[str, Any]) -> str:
    camera = {
        "id": "cam-a",
        "name": "Gate A",
        "lat": 16.46,
        "lon": 107.59,
        "district": "Phu Hoi",
        "source": "rtsp://10.0.0.5/stream1",
        "sample_fps": 2,
        "geometry": geometry,
    }
    return yaml.safe_dump({"cameras": [camera]})


def load(tmp_path: Path, geometry: dict[str, Any]) -> CameraGeometry:
    path = tmp_path / "cameras.yaml"
    path.write_text(registry(geometry))
    loaded = load_cameras(path).get("cam-a").geometry
    assert loaded is not None
    return loaded


def changed(path: str, value: Any) -> dict[str, Any]:
    """GEOMETRY with one value replaced; path like 'lines.0.points.1' (None removes the key)."""
    geometry = copy.deepcopy(GEOMETRY)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = geometry
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return geometry


def test_valid_geometry_loads(tmp_path: Path) -> None:
    geometry = load(tmp_path, GEOMETRY)
    assert geometry.line("north-road").directions.name(+1) == "southbound"
    assert geometry.zones[1].kind is None and geometry.lanes[0].unit_direction == (0.0, 1.0)
    assert geometry.homography is not None
    mapped = ground_of(IMAGE_POINTS, geometry.homography.image_to_ground)
    np.testing.assert_allclose(mapped, ground_of(IMAGE_POINTS), atol=1e-6)


def test_camera_without_geometry_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    raw = yaml.safe_load(registry(GEOMETRY))
    del raw["cameras"][0]["geometry"]
    path.write_text(yaml.safe_dump(raw))
    assert load_cameras(path).get("cam-a").geometry is None


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("zones.0.id", "north-road", "geometry: Value error, duplicate geometry ids: north-road"),
        (
            "lines.0.points",
            [[10, 10], [10.5, 10]],
            "geometry.lines[north-road].points: Value error, degenerate line",
        ),
        (
            "lines.0.points.1",
            [700, 300],
            "lines[north-road].points[1] (700, 300) lies outside the 640x480 frame",
        ),
        ("zones.0.polygon.2", [-1, 200], "zones[junction].polygon[2] (-1, 200) lies outside"),
        (
            "zones.0.polygon",
            [[0, 0], [200, 200], [200, 0], [0, 200]],  # a bow tie
            "geometry.zones[junction].polygon: Value error, polygon is self-intersecting",
        ),
        ("zones.0.polygon", [[0, 0], [100, 100], [200, 200]], "polygon has zero area"),
        ("zones.0.polygon", [[0, 0], [9, 0], [9, 9], [0, 0]], "repeated (do not close the ring)"),
        ("zones.0.polygon", [[0, 0], [9, 0]], "zones[junction].polygon: Tuple should have at"),
        (
            "zones.1.polygon",
            [[0, 0], [10, 0], [10, 10], [5, 0], [0, 10]],  # a vertex on another edge
            "polygon is self-intersecting",
        ),
        ("zones.0.kind", "carpark", "zones[junction].kind: Input should be 'gateway'"),
        ("lanes.0.feeds", "south-road", "lanes[lane-1].feeds: no line 'south-road'"),
        ("lanes.0.direction", [0, 0], "lanes[lane-1]: Value error, direction [0, 0] has no"),
        ("lanes.0.direction", None, "give exactly one of direction [dx, dy] or heading_deg"),
        (
            "lines.0.directions",
            {"positive": "in", "negative": "in"},
            "positive and negative are both 'in'",
        ),
        ("lines.0.colour", "red", "lines[north-road].colour: Extra inputs are not permitted"),
        ("frame_size", [640, 0], "geometry.frame_size[1]: Input should be greater than 0"),
    ],
)
def test_invalid_geometry_names_camera_and_field(
    tmp_path: Path, path: str, value: Any, message: str
) -> None:
    with pytest.raises(CameraConfigError) as info:
        load(tmp_path, changed(path, value))
    assert "camera 'cam-a': " in str(info.value)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("homography", "message"),
    [
        (
            {"image_points": IMAGE_POINTS, "ground_points": ground_of(IMAGE_POINTS)[:3]},
            "homography.ground_points: Tuple should have at least 4 items",
        ),
        (
            {"image_points": [*IMAGE_POINTS, [320, 300]], "ground_points": ground_of(IMAGE_POINTS)},
            "5 image_points but 4 ground_points",
        ),
        (
            {
                "image_points": [[100, 100], [200, 200], [300, 300], [100, 300]],
                "ground_points": [[0, 0], [1, 0], [1, 1], [0, 1]],
            },
            "three of the four image_points are collinear",
        ),
        (
            # two ground points swapped: five points no longer fit one plane
            {
                "image_points": [*IMAGE_POINTS, [320, 300]],
                "ground_points": [
                    *(ground_of(IMAGE_POINTS)[i] for i in (0, 2, 1, 3)),
                    *ground_of([[320, 300]]),
                ],
            },
            "points do not fit one ground plane",
        ),
        ({"matrix": [[1, 2, 3], [2, 4, 6], [0, 0, 1]]}, "homography is singular"),
        ({"matrix": [[1, 2, 3], [2, 4.00001, 6], [0, 0, 1]]}, "homography is ill-conditioned"),
        (
            {"matrix": TRUE_H.tolist(), "image_points": IMAGE_POINTS},
            "give either image_points with ground_points, or matrix",
        ),
        (
            # w = 0 along the image row y = 200: the line (y 300) and the zone above it
            # (y 0-200) are on opposite sides of this horizon
            {"matrix": [[0.05, 0.0, -10.0], [0.0, 0.12, -20.0], [0.0, -0.005, 1.0]]},
            "the geometry's points lie on both sides of the horizon",
        ),
        (
            # calibrated on points below the horizon y = 200; the junction zone is above it
            {
                "image_points": [[100, 400], [540, 400], [500, 250], [140, 250]],
                "ground_points": ground_of(
                    [[100, 400], [540, 400], [500, 250], [140, 250]], HORIZON_200
                ),
            },
            "zones[junction].polygon[0] (0.0, 0.0) lies beyond the horizon",
        ),
    ],
)
def test_bad_homography_is_refused(
    tmp_path: Path, homography: dict[str, Any], message: str
) -> None:
    with pytest.raises(CameraConfigError) as info:
        load(tmp_path, changed("homography", homography))
    assert "camera 'cam-a': geometry" in str(info.value)
    assert message in str(info.value)


def test_matrix_sign_is_oriented_towards_the_ground(tmp_path: Path) -> None:
    flipped = load(tmp_path, changed("homography", {"matrix": (-TRUE_H).tolist()}))
    assert flipped.homography is not None
    w = np.c_[np.asarray(IMAGE_POINTS), np.ones(4)] @ flipped.homography.image_to_ground.T
    assert np.all(w[:, 2] > 0)
    np.testing.assert_allclose(
        ground_of(IMAGE_POINTS, flipped.homography.image_to_ground), ground_of(IMAGE_POINTS)
    )


def test_heading_is_measured_clockwise_from_image_right() -> None:
    down = Lane(id="l", polygon=((0, 0), (1, 0), (1, 1)), heading_deg=90)
    np.testing.assert_allclose(down.unit_direction, (0, 1), atol=1e-12)
    left = Lane(id="l", polygon=((0, 0), (1, 0), (1, 1)), direction=(-3, 0))
    assert left.unit_direction == (-1, 0)


def test_scaled_to_a_bigger_frame(tmp_path: Path) -> None:
    geometry = load(tmp_path, GEOMETRY)
    big = geometry.scaled((1280, 960))
    assert big.frame_size == (1280, 960)
    assert big.lines[0].points == ((200, 600), (1000, 600))
    assert big.zones[0].polygon[1] == (400, 0)
    assert big.lanes[0].feeds == "north-road"
    assert big.homography is not None
    # the same place on the ground, in the new pixels
    doubled = [[2 * x, 2 * y] for x, y in IMAGE_POINTS]
    np.testing.assert_allclose(
        ground_of(doubled, big.homography.image_to_ground), ground_of(IMAGE_POINTS), atol=1e-6
    )
    assert geometry.scaled((640, 480)) is geometry


def test_scaling_keeps_points_on_the_frame_edge_inside() -> None:
    geometry = CameraGeometry.model_validate(
        {
            "frame_size": [768, 576],
            "zones": [{"id": "all", "polygon": [[0, 0], [768, 0], [768, 576], [0, 576]]}],
        }
    )
    # 768 * (1000 / 768) is 1000.0000000000001 in floats: must still be inside 1000 x 700
    assert geometry.scaled((1000, 700)).zones[0].polygon[2] == (1000, 700)


def test_scaling_a_matrix_and_a_heading_with_another_aspect_ratio(
    caplog: pytest.LogCaptureFixture,
) -> None:
    geometry = CameraGeometry.model_validate(
        {
            "frame_size": [640, 480],
            "lanes": [
                {"id": "diagonal", "polygon": [[0, 0], [100, 0], [100, 100]], "heading_deg": 45}
            ],
            "homography": {"matrix": TRUE_H.tolist()},
        }
    )
    with caplog.at_level(logging.WARNING):
        wide = geometry.scaled((1280, 480))
    assert "another aspect ratio" in caplog.text
    # 45 degrees in the old pixels points along (2, 1) in the new ones
    np.testing.assert_allclose(wide.lanes[0].unit_direction, np.array([2, 1]) / np.sqrt(5))
    assert wide.homography is not None
    np.testing.assert_allclose(
        ground_of([[1000, 300]], wide.homography.image_to_ground),
        ground_of([[500, 300]]),
        atol=1e-9,
    )


def test_homography_model_directly() -> None:
    h = Homography.model_validate(
        {"image_points": IMAGE_POINTS, "ground_points": ground_of(IMAGE_POINTS)}
    )
    np.testing.assert_allclose(h.ground_to_image @ h.image_to_ground, np.eye(3), atol=1e-9)
    assert h.condition((640, 480)) < 100
