"""Tracking and rider association with the real detector on real footage (bikes.mp4)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
import torch

from citycam.config import InferenceSettings
from inference.detector import load_detector
from inference.service import clip_to_frame, to_contract
from inference.tracking import CameraTrackers
from schemas import FrameDetections, FrameRef
from tests.inference.helpers import FrameReader

CLIP_FPS, SAMPLE_FPS = 25, 5
# Sampled at 5 fps: a cyclist (110-135), then a street with a parked car and passing ones.
FRAMES = list(range(100, 190, CLIP_FPS // SAMPLE_FPS))
T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def events(footage_frames: FrameReader) -> list[FrameDetections]:
    """The clip through detector, tracker and contract, as the inference service does it."""
    detector = load_detector(device=torch.device("cpu"))
    images = footage_frames("bikes.mp4", FRAMES)
    trackers = CameraTrackers(InferenceSettings())
    out = []
    for index, image, dets in zip(FRAMES, images, detector.detect(images), strict=True):
        height, width = image.shape[:2]
        ref = FrameRef(
            camera_id="bikes",
            frame_id=f"bikes-{index}",
            captured_at=T0 + timedelta(seconds=index / CLIP_FPS),
            frame_uri="file:///bikes.jpg",
            width=width,
            height=height,
            sequence=index,
            session_id="test",
        )
        tracked = trackers.update(
            ref.camera_id, ref.captured_at, clip_to_frame(dets, width, height)
        )
        out.append(to_contract(ref, tracked, detector, width, height))
    return out


def test_cars_keep_their_track_ids(events: list[FrameDetections]) -> None:
    cars = [(i, d) for i, e in enumerate(events) for d in e.detections if d.class_name == "car"]
    frames_per_track: dict[int, set[int]] = defaultdict(set)
    for i, car in cars:
        assert car.track_id is not None
        frames_per_track[car.track_id].add(i)
    assert len(cars) >= 15
    # Ids are far fewer than car boxes, though a car seen on one frame only has its own id.
    assert len(frames_per_track) * 3 <= len(cars)
    # Most boxes belong to tracks seen on at least 3 frames; the parked car on 8+.
    long_tracks = sum(len(f) for f in frames_per_track.values() if len(f) >= 3)
    assert long_tracks >= 0.75 * len(cars)
    assert max(len(f) for f in frames_per_track.values()) >= 8


def test_every_box_has_a_track_id_unique_on_its_frame(events: list[FrameDetections]) -> None:
    for event in events:
        ids = Counter(d.track_id for d in event.detections)
        assert None not in ids, event.frame_id
        assert not ids or max(ids.values()) == 1, event.frame_id


def test_the_cyclist_is_a_rider_of_the_bicycle_not_a_pedestrian(
    events: list[FrameDetections],
) -> None:
    # From frame 115: on 110 the bicycle is detected at scores 0.34-0.37 only, below the
    # activation threshold; such boxes are noise to ByteTrack and not published.
    cycling = [e for e in events if 115 <= int(e.frame_id.rsplit("-", 1)[1]) <= 135]
    people = [[d for d in e.detections if d.class_name == "person"] for e in cycling]
    assert all(len(p) == 1 for p in people)
    riding = [
        e.detections[p[0].rider_of].class_name
        for e, p in zip(cycling, people, strict=True)
        if p[0].rider_of is not None
    ]
    assert riding == ["bicycle"] * len(cycling)
    assert len({p[0].track_id for p in people}) == 1  # and one track throughout
