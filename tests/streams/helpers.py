"""Builders for the counting tests: a camera with a line and a zone, tracked frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from citycam.cameras import Camera
from citycam.config import StreamsSettings
from schemas import BoundingBox, Detection, FrameDetections
from streams.layout import CameraLayout, layout_for

T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)
# x 50 from y 90 up to y 10: drawn upwards, so positive (eastbound) is moving right.
LINE = {
    "id": "main",
    "points": [[50, 90], [50, 10]],
    "directions": {"positive": "eastbound", "negative": "westbound"},
}
ZONE = {"id": "west-half", "kind": "junction", "polygon": [[0, 0], [50, 0], [50, 100], [0, 100]]}
# 1 px = 0.1 m on the ground.
HOMOGRAPHY = {"matrix": [[0.1, 0, 0], [0, 0.1, 0], [0, 0, 1]]}


def camera(
    *, homography: bool = False, road_class: str | None = None, zones: bool = True, **geometry: Any
) -> Camera:
    geo: dict[str, Any] = {"frame_size": [100, 100], "lines": [LINE], **geometry}
    if zones:
        geo["zones"] = [ZONE]
    if homography:
        geo["homography"] = HOMOGRAPHY
    return Camera.model_validate(
        {
            "id": "cam",
            "name": "test camera",
            "lat": 0,
            "lon": 0,
            "district": "d",
            "source": "/footage/x.mp4",
            "sample_fps": 2,
            "road_class": road_class,
            "geometry": geo,
        }
    )


def layout(
    settings: StreamsSettings | None = None, size: tuple[int, int] = (100, 100), **kwargs: Any
) -> CameraLayout:
    built = layout_for(camera(**kwargs), *size, settings or StreamsSettings())
    assert built is not None
    return built


def box(
    x: float,
    y: float = 50,
    label: str = "person",
    track: int | None = 1,
    score: float = 0.9,
    **extra: Any,
) -> Detection:
    """A box whose anchor (bottom centre) is (x, y)."""
    return Detection(
        class_name=label,
        class_id=1,
        score=score,
        bbox=BoundingBox(x1=x - 4, y1=y - 10, x2=x + 4, y2=y),
        track_id=track,
        **extra,
    )


def frame(
    seconds: float, *detections: Detection, size: tuple[int, int] = (100, 100)
) -> FrameDetections:
    ts = T0 + timedelta(seconds=seconds)
    return FrameDetections(
        camera_id="cam",
        frame_id=f"cam-{seconds}",
        captured_at=ts,
        frame_uri="file:///f.jpg",
        width=size[0],
        height=size[1],
        model_name="m",
        model_version="1",
        inferred_at=ts,
        detections=detections,
    )
