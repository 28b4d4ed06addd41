"""The inference service's publish path without a broker: track ids, riders, revocation."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
import supervision as sv
import torch
from confluent_kafka import TopicPartition
from prometheus_client import REGISTRY

from citycam.config import InferenceSettings, KafkaSettings
from inference import service as service_module
from inference.service import InferenceService, to_contract
from schemas import FRAMES_TOPIC, FrameDetections, FrameRef

T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)
WIDTH, HEIGHT = 640, 360
JPEG = cv2.imencode(".jpg", np.zeros((HEIGHT, WIDTH, 3), np.uint8))[1].tobytes()


class FakeMessage:
    def __init__(self, ref: FrameRef, partition: int, offset: int) -> None:
        self._value, self._partition, self._offset = ref.to_bytes(), partition, offset

    def topic(self) -> str:
        return FRAMES_TOPIC.name

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"cam"

    def value(self) -> bytes:
        return self._value

    def error(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.callbacks: dict[str, Callable[..., None]] = {}
        self.commits: list[list[tuple[int, int]]] = []

    def subscribe(self, topics: list[str], **callbacks: Callable[..., None]) -> None:
        assert topics == [FRAMES_TOPIC.name]
        self.callbacks = callbacks

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self.commits.append([(tp.partition, tp.offset) for tp in offsets])

    def close(self) -> None:
        pass


class FakeProducer:
    def __init__(self) -> None:
        self.events: list[FrameDetections] = []

    def publish(self, topic: Any, key: str, event: FrameDetections, timestamp_ms: int) -> None:
        self.events.append(event)

    def flush(self) -> None:
        pass


class ScriptedDetector:
    """Returns, for every image, the boxes of the current scene shifted by the frame count."""

    name, version, device = "scripted", "1", torch.device("cpu")

    def __init__(
        self, boxes: list[tuple[str, float, float, float, float]], scores: Sequence[float] = ()
    ) -> None:
        self.boxes = boxes
        self.scores = np.array(scores or [0.9] * len(boxes), dtype=np.float32)
        self.calls = 0

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        out = []
        for _ in images:
            shift = 12.0 * self.calls
            self.calls += 1
            xyxy = np.array([b[1:] for b in self.boxes], dtype=np.float32)
            xyxy[:, [0, 2]] += shift
            out.append(
                sv.Detections(
                    xyxy=xyxy,
                    confidence=self.scores,
                    class_id=np.zeros(len(self.boxes), dtype=int),
                    data={"class_name": np.array([b[0] for b in self.boxes])},
                )
            )
        return out


class FakeStore:
    def get(self, uri: str) -> bytes:
        return JPEG


SCENE = [
    ("car", 700.0, 10.0, 800.0, 60.0),  # right of the frame: dropped when clipped
    ("motorcycle", 100.0, 240.0, 220.0, 300.0),
    ("person", 150.0, 160.0, 195.0, 290.0),  # its rider
    ("person", 400.0, 150.0, 440.0, 300.0),  # a pedestrian
]


# The pedestrian stands over a motorcycle detected at a low score only: no track, so noise.
NOISY_SCENE = [("motorcycle", 390.0, 240.0, 460.0, 310.0), *SCENE[1:]]
NOISY_SCORES = [0.3, 0.9, 0.9, 0.9]

Parts = tuple[InferenceService, FakeConsumer, FakeProducer]


def make_parts(monkeypatch: pytest.MonkeyPatch, detector: ScriptedDetector) -> Parts:
    consumer, producer = FakeConsumer(), FakeProducer()
    monkeypatch.setattr(service_module, "Consumer", lambda config: consumer)
    service = InferenceService(
        detector,
        FakeStore(),  # type: ignore[arg-type]
        KafkaSettings(),
        InferenceSettings(),
        producer,  # type: ignore[arg-type]
    )
    return service, consumer, producer


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> Parts:
    return make_parts(monkeypatch, ScriptedDetector(SCENE))


def frames(camera: str, partition: int, count: int, start: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(
            FrameRef(
                camera_id=camera,
                frame_id=f"{camera}-{n}",
                captured_at=T0 + timedelta(seconds=0.2 * n),
                frame_uri=f"file:///{camera}/{n}.jpg",
                width=WIDTH,
                height=HEIGHT,
                sequence=n,
                session_id="s",
            ),
            partition,
            offset=n,
        )
        for n in range(start, start + count)
    ]


def test_published_boxes_carry_track_ids_and_riders(parts: Parts) -> None:
    service, consumer, producer = parts
    service.process_batch(frames("cam-a", partition=3, count=3))  # type: ignore[arg-type]
    assert consumer.commits == [[(3, 3)]]
    names = [[d.class_name for d in e.detections] for e in producer.events]
    assert names == [["motorcycle", "person", "person"]] * 3
    for event in producer.events:
        bike, rider, pedestrian = event.detections
        # Indices refer to the published list, after the clipped-away car was dropped.
        assert (bike.riders, rider.rider_of, pedestrian.rider_of) == (1, 0, None)
    # The first sighting already carries the id its track keeps.
    ids = [[d.track_id for d in e.detections] for e in producer.events]
    assert ids[0] == ids[1] == ids[2] and None not in ids[0] and len(set(ids[0])) == 3


def test_revoked_or_lost_partitions_drop_their_cameras_tracks(parts: Parts) -> None:
    service, consumer, _ = parts
    stop = threading.Event()
    stop.set()
    service.run(stop)  # subscribes, then stops at once
    service.process_batch(frames("cam-a", 3, 2) + frames("cam-b", 4, 2))  # type: ignore[arg-type]
    service.process_batch(frames("cam-c", 5, 2))  # type: ignore[arg-type]
    assert service.tracks.cameras == {"cam-a", "cam-b", "cam-c"}

    consumer.callbacks["on_revoke"](consumer, [TopicPartition(FRAMES_TOPIC.name, 3)])
    assert service.tracks.cameras == {"cam-b", "cam-c"}
    consumer.callbacks["on_lost"](consumer, [TopicPartition(FRAMES_TOPIC.name, 5)])
    assert service.tracks.cameras == {"cam-b"}


def noise_dropped(camera: str) -> float:
    value = REGISTRY.get_sample_value("citycam_inference_untracked_boxes_total", {"camera": camera})
    return value or 0.0


def test_low_score_boxes_in_no_track_are_dropped_and_counted_riders_reindexed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service, _, producer = make_parts(monkeypatch, ScriptedDetector(NOISY_SCENE, NOISY_SCORES))
    before = noise_dropped("cam-noisy")
    service.process_batch(frames("cam-noisy", partition=1, count=3))  # type: ignore[arg-type]
    assert noise_dropped("cam-noisy") - before == 3  # the low-score motorcycle, on each frame
    for event in producer.events:  # the events passed FrameDetections' rider checks
        assert [d.score for d in event.detections] == [0.9] * 3
        bike, rider, pedestrian = event.detections
        # Riders are found after the drop: the rider points at the bike's published index, and
        # the pedestrian rides nothing rather than the box that was left out.
        assert (bike.riders, rider.rider_of, pedestrian.rider_of) == (1, 0, None)
        assert None not in [d.track_id for d in event.detections]


def test_the_contract_refuses_boxes_without_a_track_id() -> None:
    dets = ScriptedDetector(SCENE[1:]).detect([np.zeros((HEIGHT, WIDTH, 3), np.uint8)])[0]
    ref = FrameRef.from_bytes(frames("cam", 0, 1)[0].value())
    with pytest.raises(ValueError, match="track id"):
        to_contract(ref, dets, ScriptedDetector(SCENE), WIDTH, HEIGHT)
