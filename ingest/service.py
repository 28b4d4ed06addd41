"""The ingest service: one worker thread per camera, each resilient to its source failing.

PyAV releases the GIL while decoding, so a thread per camera is enough for the handful of
cameras one process serves; scale out by running more processes with disjoint camera lists.
Each worker keeps per-minute health counters (ingest.health); the service's main loop
publishes a CameraHealth report per camera for every minute that ended.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import cv2
from prometheus_client import Counter, Gauge

from citycam.cameras import Camera
from citycam.config import IngestSettings
from citycam.framestore import FrameStore
from citycam.kafka import EventProducer
from citycam.retry import backoff_s
from ingest.health import Clock, HealthMonitor
from ingest.sampler import FrameSampler
from ingest.sources import DecodedFrame, SourceError, decode_frames
from schemas import CAMERA_HEALTH_TOPIC, FRAMES_TOPIC, FrameRef

log = logging.getLogger(__name__)

FRAMES_DECODED = Counter("citycam_ingest_frames_decoded", "Frames decoded", ["camera"])
DECODE_ERRORS = Counter(
    "citycam_ingest_decode_errors", "Packets refused and frames corrupt or untimed", ["camera"]
)
FRAMES_PUBLISHED = Counter("citycam_ingest_frames_published", "FrameRefs published", ["camera"])
SOURCE_FAILURES = Counter("citycam_ingest_source_failures", "Source open/read failures", ["camera"])
CAMERA_UP = Gauge("citycam_ingest_camera_up", "1 while the source delivers frames", ["camera"])

MAX_FILE_ATTEMPTS = 3  # a file that fails this often is broken, not flaky


@dataclass
class CameraWorker:
    camera: Camera
    settings: IngestSettings
    producer: EventProducer
    store: FrameStore
    stop_event: threading.Event
    failed: bool = False
    sessions: int = 0  # times the source was opened
    last_error: str | None = None
    clock: Clock = time.time  # wall clock: capture times, health minutes and lag
    health: HealthMonitor = field(init=False)
    _sequence: int = field(default=0, init=False)
    _last_captured: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.health = HealthMonitor(self.camera.id, self.camera.sample_fps, self.clock)

    def run(self) -> None:
        self.health.start()
        try:
            self._read_until_done()
        finally:
            self.health.stop()

    def _read_until_done(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            published_before = self._sequence
            try:
                self._run_session()
                if self.camera.source_path is not None:
                    if not self.camera.loop:
                        return  # a file played to its end
                    attempt = 0
                    continue  # replay it
                if not self.stop_event.is_set():
                    self._report(SourceError(f"{self.camera.id}: stream ended"))
            except SourceError as exc:
                self._report(exc)
            finally:
                CAMERA_UP.labels(self.camera.id).set(0)
            # a source that delivered before failing is flaky, not dead: back off from the start
            attempt = 1 if self._sequence > published_before else attempt + 1
            if self.camera.source_path is not None and attempt >= MAX_FILE_ATTEMPTS:
                self.failed = True
                log.error("%s: giving up after %d attempts", self.camera.id, attempt)
                return
            self.stop_event.wait(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return backoff_s(attempt, self.settings.retry_initial_s, self.settings.retry_max_s)

    def _report(self, exc: Exception) -> None:
        self.last_error = str(exc)
        SOURCE_FAILURES.labels(self.camera.id).inc()
        log.warning("%s", exc)

    def _run_session(self) -> None:
        """Read the source once from its start, publishing the sampled frames."""
        session_id = uuid.uuid4().hex[:12]
        self.sessions += 1
        self.health.source_opened()
        session_start = self._session_start()
        sampler = FrameSampler(self.camera.sample_fps)
        for decoded in decode_frames(
            self.camera,
            self.settings.open_timeout_s,
            self.settings.read_timeout_s,
            on_decode_error=self._decode_error,
        ):
            decoded_at = self.clock()
            FRAMES_DECODED.labels(self.camera.id).inc()
            CAMERA_UP.labels(self.camera.id).set(1)
            lag_s: float | None = None
            try:
                if self.stop_event.is_set():
                    break
                if sampler.take(decoded.stream_time_s):
                    captured_at = session_start + timedelta(seconds=decoded.stream_time_s)
                    self._publish(decoded, captured_at, session_id)
                    lag_s = self.clock() - captured_at.timestamp()
            finally:
                self.health.frame(decoded_at, lag_s)  # decoded even if publishing failed
        self.producer.flush()

    def _decode_error(self) -> None:
        DECODE_ERRORS.labels(self.camera.id).inc()
        self.health.decode_error()

    def _session_start(self) -> datetime:
        """Capture time of the session's first frame.

        One camera's capture times must strictly increase across reconnects and replays: the
        stream stage treats a frame that is not newer as a redelivery, and two frames with one
        capture time would collide in the warehouse. A source that delivered faster than real
        time (a replayed file, a buffered burst) can have run ahead of the clock.
        """
        now = datetime.fromtimestamp(self.clock(), UTC)
        if self._last_captured is None:
            replay = None if self.camera.is_stream else self.settings.replay_start
            return replay or now
        return max(now, self._last_captured + timedelta(seconds=1 / self.camera.sample_fps))

    def _publish(self, decoded: DecodedFrame, captured_at: datetime, session_id: str) -> None:
        image = decoded.to_bgr()
        ok, jpeg = cv2.imencode(
            ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.settings.jpeg_quality]
        )
        if not ok:
            raise SourceError(f"{self.camera.id}: JPEG encoding failed")
        captured_ms = int(captured_at.timestamp() * 1000)
        frame_id = f"{self.camera.id}-{captured_ms}"
        uri = self.store.put(self.camera.id, frame_id, jpeg.tobytes())
        ref = FrameRef(
            camera_id=self.camera.id,
            frame_id=frame_id,
            captured_at=captured_at,
            frame_uri=uri,
            width=image.shape[1],
            height=image.shape[0],
            sequence=self._sequence,
            session_id=session_id,
        )
        self.producer.publish(FRAMES_TOPIC, self.camera.id, ref, timestamp_ms=captured_ms)
        self._sequence += 1
        self._last_captured = captured_at
        FRAMES_PUBLISHED.labels(self.camera.id).inc()


def run_ingest(
    cameras: Sequence[Camera],
    settings: IngestSettings,
    producer: EventProducer,
    store: FrameStore,
    stop_event: threading.Event,
) -> list[CameraWorker]:
    """Run one worker per camera until they end (files) or stop_event is set; prune meanwhile."""
    workers = [CameraWorker(c, settings, producer, store, stop_event) for c in cameras]
    threads = [
        threading.Thread(target=w.run, name=f"ingest-{w.camera.id}", daemon=True) for w in workers
    ]
    for thread in threads:
        thread.start()
    max_bytes = int(settings.frame_store_max_gb * 1e9)
    next_prune = 0.0
    while any(t.is_alive() for t in threads):
        if time.monotonic() >= next_prune:
            store.prune(settings.frame_retention_hours * 3600, max_bytes)
            next_prune = time.monotonic() + 60
        publish_health(workers, producer)
        for thread in threads:
            thread.join(timeout=0.5)
    publish_health(workers, producer)  # the minutes the workers stopped in
    producer.flush()
    return workers


def publish_health(workers: Sequence[CameraWorker], producer: EventProducer) -> int:
    """Publish the CameraHealth reports of every minute that ended; return how many."""
    published = 0
    for worker in workers:
        for report in worker.health.reports():
            start_ms = int(report.window_start.timestamp() * 1000)
            producer.publish(CAMERA_HEALTH_TOPIC, report.camera_id, report, timestamp_ms=start_ms)
            published += 1
    return published
