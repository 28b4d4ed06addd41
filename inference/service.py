"""The inference service: FrameRefs in, FrameDetections out, offsets committed after the ack.

Delivery is at-least-once: a crash between publishing detections and committing offsets
re-runs the batch, and the frame ids make the repeat recognisable downstream.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import cv2
import numpy as np
import supervision as sv
from confluent_kafka import Consumer, Message
from prometheus_client import Counter, Histogram

from citycam.config import InferenceSettings, KafkaSettings
from citycam.framestore import FrameStore, FrameStoreError
from citycam.kafka import DeadLetterQueue, EventProducer, commit_processed, consumer_config, is_data
from inference.detector import Detector
from schemas import (
    DETECTIONS_TOPIC,
    FRAMES_TOPIC,
    BoundingBox,
    ContractError,
    Detection,
    FrameDetections,
    FrameRef,
)

log = logging.getLogger(__name__)

FRAMES_INFERRED = Counter("citycam_inference_frames", "Frames run through the detector", ["camera"])
BOXES = Counter("citycam_inference_detections", "Boxes published", ["camera"])
DEAD_LETTERS = Counter("citycam_inference_dead_letters", "FrameRefs refused")
BATCH_SECONDS = Histogram("citycam_inference_batch_seconds", "Detector time per batch")

CONSUMER_GROUP = "citycam-inference"


@dataclass(frozen=True)
class PendingFrame:
    message: Message
    ref: FrameRef
    image_rgb: np.ndarray


def decode_jpeg(data: bytes, uri: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise FrameStoreError(f"{uri}: not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def to_contract(
    ref: FrameRef, dets: sv.Detections, detector: Detector, width: int, height: int
) -> FrameDetections:
    if dets.confidence is None or dets.class_id is None:
        raise ValueError(f"detector {detector.name} returned boxes without scores or classes")
    names = dets.data.get("class_name", np.array([str(c) for c in dets.class_id]))
    boxes = []
    for xyxy, score, class_id, name in zip(
        dets.xyxy, dets.confidence, dets.class_id, names, strict=True
    ):
        x1, y1 = max(0.0, float(xyxy[0])), max(0.0, float(xyxy[1]))
        x2, y2 = min(float(width), float(xyxy[2])), min(float(height), float(xyxy[3]))
        if x2 <= x1 or y2 <= y1:
            continue  # degenerate after clipping to the frame: nothing to report
        boxes.append(
            Detection(
                class_name=str(name),
                class_id=int(class_id),
                score=round(float(score), 4),
                bbox=BoundingBox(
                    x1=round(x1, 1), y1=round(y1, 1), x2=round(x2, 1), y2=round(y2, 1)
                ),
            )
        )
    return FrameDetections(
        camera_id=ref.camera_id,
        frame_id=ref.frame_id,
        captured_at=ref.captured_at,
        frame_uri=ref.frame_uri,
        width=width,
        height=height,
        model_name=detector.name,
        model_version=detector.version,
        inferred_at=datetime.now(UTC),
        detections=tuple(boxes),
    )


class InferenceService:
    def __init__(
        self,
        detector: Detector,
        store: FrameStore,
        kafka: KafkaSettings,
        settings: InferenceSettings,
        producer: EventProducer,
    ) -> None:
        self.detector = detector
        self.store = store
        self.settings = settings
        self.producer = producer
        self.dead_letters = DeadLetterQueue(producer, stage="inference")
        self.consumer = Consumer(consumer_config(kafka, CONSUMER_GROUP))
        self.frames_done = 0

    def run(self, stop_event: threading.Event) -> None:
        self.consumer.subscribe([FRAMES_TOPIC.name])
        try:
            while not stop_event.is_set():
                messages = self.consumer.consume(
                    self.settings.batch_size, self.settings.batch_wait_s
                )
                if messages:
                    self.process_batch(messages)
        finally:
            self.consumer.close()

    def process_batch(self, messages: Sequence[Message]) -> None:
        pending = [p for p in (self._prepare(m) for m in messages) if p is not None]
        if pending:
            started = time.perf_counter()
            results = self.detector.detect([p.image_rgb for p in pending])
            BATCH_SECONDS.observe(time.perf_counter() - started)
            for frame, dets in zip(pending, results, strict=True):
                self._publish(frame, dets)
        self.producer.flush()  # every detection and dead letter acknowledged...
        commit_processed(self.consumer, messages)  # ...before the input offsets move

    def _prepare(self, message: Message) -> PendingFrame | None:
        if not is_data(message):
            return None
        try:
            ref = FrameRef.from_bytes(message.value())
            image = decode_jpeg(self.store.get(ref.frame_uri), ref.frame_uri)
        except ContractError as exc:
            self._dead_letter(message, exc.reason)
            return None
        except FrameStoreError as exc:
            self._dead_letter(message, str(exc))
            return None
        return PendingFrame(message, ref, image)

    def _dead_letter(self, message: Message, reason: str) -> None:
        DEAD_LETTERS.inc()
        self.dead_letters.send(message, reason)

    def _publish(self, frame: PendingFrame, dets: sv.Detections) -> None:
        height, width = frame.image_rgb.shape[:2]
        event = to_contract(frame.ref, dets, self.detector, width, height)
        captured_ms = int(frame.ref.captured_at.timestamp() * 1000)
        self.producer.publish(
            DETECTIONS_TOPIC, frame.ref.camera_id, event, timestamp_ms=captured_ms
        )
        FRAMES_INFERRED.labels(frame.ref.camera_id).inc()
        BOXES.labels(frame.ref.camera_id).inc(len(event.detections))
        self.frames_done += 1
