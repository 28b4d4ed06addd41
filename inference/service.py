"""The inference service: FrameRefs in, FrameDetections out, offsets committed after the ack.

Delivery is at-least-once: a crash between publishing detections and committing offsets
re-runs the batch, and the frame ids make the repeat recognisable downstream. Each camera's
boxes are tracked by the consumer that owns the camera's partition: every published box
carries a track id, and low-score boxes that continue no track (ByteTrack's noise) are not
published. People on the published motorcycles and bicycles are then marked as their riders.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import cv2
import numpy as np
import supervision as sv
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import Counter, Histogram

from citycam.config import InferenceSettings, KafkaSettings
from citycam.framestore import FrameStore, FrameStoreError
from citycam.kafka import DeadLetterQueue, EventProducer, commit_processed, consumer_config, is_data
from inference.detector import Detector
from inference.riders import NO_VEHICLE, associate_riders, rider_counts
from inference.tracking import UNTRACKED, CameraTrackers
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
NOISE_BOXES = Counter(
    "citycam_inference_untracked_boxes",
    "Low-score boxes left out: they continued no track (noise in ByteTrack's design)",
    ["camera"],
)
DEAD_LETTERS = Counter("citycam_inference_dead_letters", "FrameRefs refused")
BATCH_SECONDS = Histogram("citycam_inference_batch_seconds", "Detector time per batch")
TRACK_SECONDS = Histogram(
    "citycam_inference_tracking_seconds",
    "Tracking time per frame",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05),
)

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


def clip_to_frame(dets: sv.Detections, width: int, height: int) -> sv.Detections:
    """Boxes clipped to the frame and rounded to 0.1 px as published; empty ones dropped.

    Done before tracking and rider association so both see exactly the published boxes.
    """
    # float64 so a rounded coordinate prints as written (float32 10.1 is 10.100000381...).
    xyxy = np.round(np.clip(dets.xyxy.astype(np.float64), 0, [width, height] * 2), 1)
    keep = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])
    kept = cast(sv.Detections, dets[keep])
    kept.xyxy = xyxy[keep]
    return kept


def to_contract(
    ref: FrameRef, dets: sv.Detections, detector: Detector, width: int, height: int
) -> FrameDetections:
    """The published event of ``dets`` as ``CameraTrackers.update`` returns them.

    Every box needs its track id. Riders are found among exactly these boxes, after tracking
    left the noise out, so ``rider_of`` indexes the published list.
    """
    dets = clip_to_frame(dets, width, height)
    scores, class_ids, tracks = dets.confidence, dets.class_id, dets.tracker_id
    if scores is None or class_ids is None:
        raise ValueError(f"detector {detector.name} returned boxes without scores or classes")
    if tracks is None or np.any(tracks == UNTRACKED):
        raise ValueError("every published box needs a track id: pass CameraTrackers' output")
    names = np.asarray(dets.data.get("class_name", [str(c) for c in class_ids]), dtype=str)
    rider_of = associate_riders(dets.xyxy, names)
    riders = rider_counts(rider_of)
    boxes = tuple(
        Detection(
            class_name=str(names[i]),
            class_id=int(class_ids[i]),
            score=round(float(scores[i]), 4),
            bbox=BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
            track_id=int(tracks[i]),
            riders=int(riders[i]),
            rider_of=None if rider_of[i] == NO_VEHICLE else int(rider_of[i]),
        )
        for i, (x1, y1, x2, y2) in enumerate(dets.xyxy.tolist())
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
        detections=boxes,
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
        self.tracks = CameraTrackers(settings)
        self.frames_done = 0

    def run(self, stop_event: threading.Event) -> None:
        self.consumer.subscribe(
            [FRAMES_TOPIC.name], on_revoke=self._partitions_gone, on_lost=self._partitions_gone
        )
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

    def _partitions_gone(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Another consumer will track these cameras: our tracks would go stale, drop them."""
        self.tracks.drop_partitions(p.partition for p in partitions if p.topic == FRAMES_TOPIC.name)

    def _dead_letter(self, message: Message, reason: str) -> None:
        DEAD_LETTERS.inc()
        self.dead_letters.send(message, reason)

    def _publish(self, frame: PendingFrame, dets: sv.Detections) -> None:
        height, width = frame.image_rgb.shape[:2]
        clipped = clip_to_frame(dets, width, height)
        started = time.perf_counter()
        tracked = self.tracks.update(
            frame.ref.camera_id, frame.ref.captured_at, clipped, frame.message.partition()
        )
        TRACK_SECONDS.observe(time.perf_counter() - started)
        NOISE_BOXES.labels(frame.ref.camera_id).inc(len(clipped) - len(tracked))
        event = to_contract(frame.ref, tracked, self.detector, width, height)
        captured_ms = int(frame.ref.captured_at.timestamp() * 1000)
        self.producer.publish(
            DETECTIONS_TOPIC, frame.ref.camera_id, event, timestamp_ms=captured_ms
        )
        FRAMES_INFERRED.labels(frame.ref.camera_id).inc()
        BOXES.labels(frame.ref.camera_id).inc(len(event.detections))
        self.frames_done += 1
