"""Camera health end to end: ingest reads a real clip at native speed and a dead camera, its
reports travel through the real broker, and the sink loads them into camera_health_1m of the
real warehouse (behind its HTTP endpoint), through the quality gate.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from citycam.cameras import Camera
from citycam.clickhouse import connect
from citycam.config import IngestSettings, KafkaSettings, SinkSettings, WarehouseSettings
from citycam.embedded import EmbeddedServices, start_services
from citycam.framestore import open_frame_store
from citycam.kafka import EventProducer, consumer_config, ensure_topics
from ingest.service import run_ingest
from schemas import FRAMES_TOPIC, TOPICS, FrameRef
from warehouse.migrate import migrate
from warehouse.quality import QualityGate
from warehouse.sink import Sink

pytestmark = pytest.mark.integration

SAMPLE_FPS = 2
DEAD_CAMERA_RUN_S = 12  # the clip lasts 10 s; the dead camera is watched a little longer
COLUMNS = [
    *("camera_id", "window_start", "covered_s", "frames_decoded", "frames_published"),
    *("decode_errors", "reconnects", "fps", "target_fps", "up_share", "lag_ms_mean"),
    "lag_ms_max",
]


@dataclass
class Stack:
    services: EmbeddedServices
    kafka: KafkaSettings
    warehouse: WarehouseSettings


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    services = start_services(tmp_path_factory.mktemp("health"))
    try:
        env = services.env
        kafka = KafkaSettings(
            bootstrap_servers=env["CITYCAM_KAFKA__BOOTSTRAP_SERVERS"], partitions=2
        )
        warehouse = WarehouseSettings(
            url=env["CITYCAM_WAREHOUSE__URL"],
            username=env["CITYCAM_WAREHOUSE__USERNAME"],
            password=env["CITYCAM_WAREHOUSE__PASSWORD"],  # type: ignore[arg-type]
        )
        ensure_topics(kafka, TOPICS)
        migrate(connect(warehouse, database=None), warehouse.database, 7)
        yield Stack(services, kafka, warehouse)
    finally:
        services.stop()


def closed_loopback_port() -> int:
    """A port nothing listens on: connecting is refused at once, as with a camera that is off."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cameras(footage_dir: Path) -> list[Camera]:
    place = {"name": "t", "lat": 16.46, "lon": 107.59, "district": "Phu Hoi"}
    clip = str(footage_dir / "bikes.mp4")
    dead = f"rtsp://127.0.0.1:{closed_loopback_port()}/stream1"
    return [
        Camera(id="live-clip", source=clip, sample_fps=SAMPLE_FPS, realtime=True, **place),  # type: ignore[arg-type]
        Camera(id="dead-cam", source=dead, sample_fps=SAMPLE_FPS, **place),  # type: ignore[arg-type]
    ]


@dataclass
class Ingest:
    thread: threading.Thread
    stop: threading.Event
    started: float

    def stop_after(self, seconds: float) -> None:
        self.thread.join(max(0.0, self.started + seconds - time.monotonic()))
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive(), "ingest must stop when asked"


def start_ingest(stack: Stack, cameras: list[Camera], frames_dir: Path) -> Ingest:
    stop = threading.Event()
    settings = IngestSettings(retry_initial_s=0.2, retry_max_s=1, open_timeout_s=2)
    producer = EventProducer(stack.kafka, client_id="test-ingest")
    store = open_frame_store(frames_dir.as_uri())
    thread = threading.Thread(
        target=run_ingest, args=(cameras, settings, producer, store, stop), daemon=True
    )
    thread.start()
    return Ingest(thread, stop, time.monotonic())


def frame_refs(kafka: KafkaSettings, camera_id: str, expected: int) -> list[FrameRef]:
    """The camera's FrameRefs: until `expected` arrived, then 1 s more (extras must show)."""
    # assigned, not subscribed: no consumer group to join (the broker answers that slowly)
    consumer = Consumer(consumer_config(kafka, "test-frames"))
    partitions = consumer.list_topics(FRAMES_TOPIC.name, 10).topics[FRAMES_TOPIC.name].partitions
    consumer.assign([TopicPartition(FRAMES_TOPIC.name, p, OFFSET_BEGINNING) for p in partitions])
    refs: list[FrameRef] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                ref = None if message.error() else FrameRef.from_bytes(message.value())
                if ref is not None and ref.camera_id == camera_id:
                    refs.append(ref)
            if len(refs) >= expected:
                deadline = min(deadline, time.monotonic() + 1)
    finally:
        consumer.close()
    return refs


def health_rows(
    warehouse: WarehouseSettings, published: int, dead_watched_s: float, timeout_s: float = 30
) -> list:
    """camera_health_1m FINAL once both cameras are in, the clip's frames add up and the
    dead camera's reports cover `dead_watched_s` (each camera's last report is its own
    message: one may land in a later batch than the other's)."""
    client = connect(warehouse)
    query = f"SELECT {', '.join(COLUMNS)} FROM camera_health_1m FINAL ORDER BY ALL"
    deadline = time.monotonic() + timeout_s
    while True:
        rows = client.query(query).result_rows
        live = sum(r[4] for r in rows if r[0] == "live-clip")
        dead_covered = sum(r[2] for r in rows if r[0] == "dead-cam")
        if live == published and dead_covered > dead_watched_s:
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"camera health did not arrive: {rows}")
        time.sleep(0.5)


def test_live_and_dead_cameras_report_their_health_into_the_warehouse(
    stack: Stack, footage_dir: Path, tmp_path: Path
) -> None:
    ingest = start_ingest(stack, cameras(footage_dir), tmp_path / "frames")
    # the sink starts while ingest runs: it reads the reports from the start of the topic
    sink_stop = threading.Event()
    sink = Sink(
        lambda: connect(stack.warehouse),
        stack.kafka,
        EventProducer(stack.kafka, client_id="test-sink"),
        SinkSettings(batch_s=0.5, group_id="test-health-sink"),
        QualityGate(),
    )
    sink_thread = threading.Thread(target=sink.run, args=(sink_stop,), daemon=True)
    sink_thread.start()
    try:
        ingest.stop_after(DEAD_CAMERA_RUN_S)
        refs = frame_refs(stack.kafka, "live-clip", expected=10 * SAMPLE_FPS)
        assert len(refs) == 10 * SAMPLE_FPS  # the whole 10 s clip, sampled
        rows = health_rows(stack.warehouse, len(refs), dead_watched_s=DEAD_CAMERA_RUN_S - 1)
    finally:
        sink_stop.set()
        sink_thread.join(30)
    reports = [dict(zip(COLUMNS, row, strict=True)) for row in rows]
    live = [r for r in reports if r["camera_id"] == "live-clip"]
    dead = [r for r in reports if r["camera_id"] == "dead-cam"]
    print(f"\nlive: {live}\ndead: {dead}")

    # the clip: every FrameRef counted, delivered throughout, at its sample rate, soon published
    assert sum(r["frames_decoded"] for r in live) == 250
    assert sum(r["reconnects"] for r in live) == 1 and not any(r["decode_errors"] for r in live)
    assert all(r["up_share"] > 0 and r["target_fps"] == SAMPLE_FPS for r in live)
    covered = sum(r["covered_s"] for r in live)
    assert 9.5 < covered < 12, "the worker ran as long as the clip played"
    assert len(refs) / covered == pytest.approx(SAMPLE_FPS, rel=0.1)
    assert all(r["fps"] == pytest.approx(SAMPLE_FPS, rel=0.25) for r in live if r["covered_s"] > 5)
    assert all(0 <= r["lag_ms_mean"] <= r["lag_ms_max"] < 5000 for r in live)

    # the dead camera: down for every second it was watched, retried all along
    assert all(r["up_share"] == 0 and r["frames_decoded"] == 0 for r in dead)
    assert all(r["lag_ms_mean"] is None and r["lag_ms_max"] is None for r in dead)
    assert sum(r["reconnects"] for r in dead) >= 5
    assert sum(r["covered_s"] for r in dead) > DEAD_CAMERA_RUN_S - 1

    quarantined = connect(stack.warehouse).command(
        "SELECT count() FROM quarantine WHERE table_name = 'camera_health_1m'"
    )
    assert quarantined == 0
