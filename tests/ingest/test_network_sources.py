"""Network cameras through PyAV: a dead camera, and a live stream that dies mid-way.

The stream is real MPEG-TS video (remuxed from the demo clip) served over HTTP on loopback by
a server that cuts every connection part-way, as a flaky camera or NVR link does.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import pytest

from citycam.cameras import Camera
from citycam.config import IngestSettings
from ingest.service import SOURCE_FAILURES, CameraWorker
from tests.ingest.fakes import MemoryStore, RecordingProducer


def mpegts_bytes(clip: Path) -> bytes:
    out = io.BytesIO()
    with av.open(str(clip)) as source, av.open(out, "w", format="mpegts") as target:
        stream_in = source.streams.video[0]
        stream_out = target.add_stream_from_template(stream_in)
        for packet in source.demux(stream_in):
            if packet.dts is not None:
                packet.stream = stream_out
                target.mux(packet)
    return out.getvalue()


@pytest.fixture(scope="module")
def flaky_camera(footage_dir: Path) -> Iterator[tuple[str, list[int]]]:
    """URL of a camera that sends ~40% of a 10 s stream per connection, then hangs up."""
    video = mpegts_bytes(footage_dir / "bikes.mp4")
    connections: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            connections.append(1)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.end_headers()
            cut = len(video) * 2 // 5 // 188 * 188  # whole TS packets, then the line drops
            self.wfile.write(video[:cut])

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/cam.ts", connections
    finally:
        server.shutdown()


def network_camera(url: str) -> Camera:
    return Camera(id="net-cam", name="n", lat=0, lon=0, district="d", source=url, sample_fps=2)


def run_until_sessions(worker: CameraWorker, stop: threading.Event, sessions: int) -> bool:
    """Run the worker until it opened its source `sessions` times, stop it; True if it ended."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    while worker.sessions < sessions and thread.is_alive():
        stop.wait(0.05)
    stop.set()
    thread.join(10)
    return not thread.is_alive()


def test_stream_dying_mid_way_is_reported_and_reopened(flaky_camera: tuple[str, list[int]]) -> None:
    url, connections = flaky_camera
    stop = threading.Event()
    producer = RecordingProducer()
    failures_before = SOURCE_FAILURES.labels("net-cam")._value.get()
    worker = CameraWorker(
        network_camera(url), IngestSettings(retry_initial_s=0.05), producer, MemoryStore(), stop
    )  # type: ignore[arg-type]
    assert run_until_sessions(worker, stop, 3), "the worker must stop when asked, even mid-retry"
    assert worker.sessions >= 3 and len(connections) >= 3
    assert not worker.failed, "a live camera is never given up on"
    # the hang-up shows as an I/O error or a clean end, depending on where it lands
    assert worker.last_error is not None
    assert worker.last_error.startswith(("net-cam: stream ended", "net-cam: stream failed"))
    assert SOURCE_FAILURES.labels("net-cam")._value.get() >= failures_before + 2
    # each connection delivered frames, and capture times never went backwards
    times = [ref.captured_at for ref in producer.events]  # type: ignore[attr-defined]
    assert len(times) >= 2 * 6 and times == sorted(times)


def test_dead_camera_is_retried_with_backoff_until_stopped() -> None:
    stop = threading.Event()
    settings = IngestSettings(retry_initial_s=0.05, retry_max_s=0.2, open_timeout_s=1)
    worker = CameraWorker(
        network_camera("rtsp://127.0.0.1:9/dead"),
        settings,
        RecordingProducer(),
        MemoryStore(),
        stop,
    )  # type: ignore[arg-type]
    assert run_until_sessions(worker, stop, 4) and not worker.failed
    assert worker.sessions >= 4
    assert "cannot open rtsp://127.0.0.1:9/dead" in (worker.last_error or "")
    assert [worker._backoff(n) for n in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.2]
    assert worker._backoff(2000) == 0.2  # a camera dead for days: no float overflow
