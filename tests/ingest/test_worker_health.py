"""Health reports of real workers: a real clip through PyAV, a dead camera, the service loop."""

from __future__ import annotations

import threading
from pathlib import Path

from citycam.cameras import Camera
from citycam.config import IngestSettings
from ingest.service import CameraWorker, run_ingest
from schemas import CameraHealth, FrameRef
from tests.ingest.fakes import MemoryStore, RecordingProducer


def camera(camera_id: str, source: str | Path, **extra: object) -> Camera:
    return Camera(id=camera_id, name="t", lat=0, lon=0, district="d", source=str(source), **extra)  # type: ignore[arg-type]


def test_a_played_file_reports_what_it_decoded_and_published(footage_dir: Path) -> None:
    worker = CameraWorker(
        camera("clip", footage_dir / "bikes.mp4", sample_fps=5),
        IngestSettings(),
        RecordingProducer(),  # type: ignore[arg-type]
        MemoryStore(),
        threading.Event(),
    )
    worker.run()
    reports = worker.health.reports()
    assert 1 <= len(reports) <= 2  # a second or two: one minute, or two if it crossed one
    assert sum(r.frames_decoded for r in reports) == 250
    assert sum(r.frames_published for r in reports) == 50
    assert sum(r.reconnects for r in reports) == 1 and not any(r.decode_errors for r in reports)
    assert all(r.up_share > 0 and r.target_fps == 5 for r in reports)
    assert all(r.covered_s < 60 for r in reports), "a file played in seconds covers seconds"


def test_a_dead_camera_reports_its_attempts_and_no_uptime() -> None:
    stop = threading.Event()
    settings = IngestSettings(retry_initial_s=0.05, retry_max_s=0.1, open_timeout_s=1)
    worker = CameraWorker(
        camera("dead", "rtsp://127.0.0.1:9/dead", sample_fps=2),
        settings,
        RecordingProducer(),  # type: ignore[arg-type]
        MemoryStore(),
        stop,
    )  # type: ignore[arg-type]
    thread = threading.Thread(target=worker.run)
    thread.start()
    while worker.sessions < 4 and thread.is_alive():
        stop.wait(0.05)
    stop.set()
    thread.join(10)
    reports = worker.health.reports()
    assert reports and sum(r.reconnects for r in reports) == worker.sessions >= 4
    for r in reports:
        assert (r.up_share, r.frames_decoded, r.fps, r.lag_ms_mean) == (0, 0, 0, None)


def test_the_service_publishes_a_report_for_each_camera_and_minute(footage_dir: Path) -> None:
    producer = RecordingProducer()
    stop = threading.Event()
    cameras = [
        camera("clip", footage_dir / "bikes.mp4", sample_fps=2),
        camera("missing", footage_dir / "no-such-clip.mp4", sample_fps=2),
    ]
    run_ingest(cameras, IngestSettings(retry_initial_s=0.01), producer, MemoryStore(), stop)  # type: ignore[arg-type]
    refs = [e for e in producer.events if isinstance(e, FrameRef)]
    reports = [e for e in producer.events if isinstance(e, CameraHealth)]
    clip = [r for r in reports if r.camera_id == "clip"]
    missing = [r for r in reports if r.camera_id == "missing"]
    assert sum(r.frames_published for r in clip) == len(refs) == 20
    assert missing and sum(r.reconnects for r in missing) == 3  # MAX_FILE_ATTEMPTS
    assert all(r.up_share == 0 for r in missing)
    for group in (clip, missing):
        starts = [r.window_start for r in group]
        assert starts == sorted(set(starts)), "one report per minute, in order"
