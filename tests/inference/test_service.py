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

from citycam.config import InferenceSettings, KafkaSettings
from inference import service as service_module
from inference.service import InferenceService
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

    def __init__(self, boxes: list[tuple[str, float, float, float, float]]) -> None:
        self.boxes = boxes
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
                    confidence=np.full(len(self.boxes), 0.9, dtype=np.float32),
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


@pytest.fixture
def parts(monkeypatch: pytest.MonkeyPatch) -> tuple[InferenceService, FakeConsumer, FakeProducer]:
    consumer, producer = FakeConsumer(), FakeProducer()
    monkeypatch.setattr(service_module, "Consumer", lambda config: consumer)
    service = InferenceService(
        ScriptedDetector(SCENE),  # type: ignore[arg-type]
        FakeStore(),  # type: ignore[arg-type]
        KafkaSettings(),
        InferenceSettings(),
        producer,  # type: ignore[arg-type]
    )
    return service, consumer, producer


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


def test_published_boxes_carry_track_ids_and_riders(
    parts: tuple[InferenceService, FakeConsumer, FakeProducer],
) -> None:
    service, consumer, producer = parts
    service.process_batch(frames("cam-a", partition=3, count=3))  # type: ignore[arg-type]
    assert consumer.commits == [[(3, 3)]]
    first, *later = producer.events
    assert [d.class_name for d in first.detections] == ["motorcycle", "person", "person"]
    assert all(d.track_id is None for d in first.detections)  # seen once: not confirmed yet
    for event in later:
        bike, rider, pedestrian = event.detections
        # Indices refer to the published list, after the clipped-away car was dropped.
        assert (bike.riders, rider.rider_of, pedestrian.rider_of) == (1, 0, None)
    ids = [[d.track_id for d in e.detections] for e in later]
    assert ids[0] == ids[1] and None not in ids[0] and len(set(ids[0])) == 3


def test_revoked_or_lost_partitions_drop_their_cameras_tracks(
    parts: tuple[InferenceService, FakeConsumer, FakeProducer],
) -> None:
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
