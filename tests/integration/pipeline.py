"""The whole pipeline on two short clips, shared by the integration tests of one session.

Real broker, real ClickHouse engine behind its HTTP endpoint, real PyAV decoding, real
detector weights, every stage its own process. Malformed and contract-violating messages are
injected too, so every consumer of this run also sees that they do not stop the pipeline.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from citycam.clickhouse import connect
from citycam.config import Settings
from citycam.demo import StageProcess, start_stages
from citycam.embedded import EmbeddedServices, start_services
from citycam.kafka import EventProducer, consumer_config, ensure_topics
from schemas import (
    DETECTIONS_TOPIC,
    FRAMES_TOPIC,
    TOPICS,
    FrameRef,
)
from warehouse.migrate import migrate

CAMERAS = """
cameras:
  - {{id: street-bikes, name: bikes, lat: 16.47, lon: 107.58, district: Phu Hoa,
     source: "{footage}/bikes.mp4", sample_fps: 2,
     geometry: {{frame_size: [320, 136],
       lines: [{{id: main-road, points: [[200, 125], [200, 60]],
                directions: {{positive: eastbound, negative: westbound}}}}],
       zones: [{{id: street, polygon: [[0, 50], [320, 50], [320, 136], [0, 136]]}}]}}}}
  - {{id: crossing-vtest, name: vtest, lat: 16.46, lon: 107.59, district: Phu Hoi,
     source: "{footage}/vtest.avi", sample_fps: 0.25,
     geometry: {{frame_size: [384, 288],
       lines: [{{id: footway-west, points: [[150, 157.5], [150, 100]],
                directions: {{positive: eastbound, negative: westbound}}}}],
       zones: [{{id: junction, kind: junction,
                polygon: [[220, 102], [280, 96], [345, 107],
                          [365, 165], [300, 192], [220, 165]]}}]}}}}
"""
REPLAY_LEAD = timedelta(minutes=2)  # longer than either clip's stream time
EXPECTED_FRAMES = {"street-bikes": 20, "crossing-vtest": 20}


@dataclass
class Pipeline:
    settings: Settings
    services: EmbeddedServices
    stages: dict[str, StageProcess]
    injected: dict[str, bytes]


def bad_messages(frames_dir: Path) -> dict[str, tuple[str, bytes]]:
    """Malformed or contract-violating inputs, by what is wrong with them."""
    valid_ref = FrameRef(
        camera_id="street-bikes",
        frame_id="street-bikes-1",
        captured_at="2026-11-22T07:00:00Z",  # type: ignore[arg-type]
        frame_uri=(frames_dir / "never-written.jpg").as_uri(),
        width=640,
        height=272,
        sequence=0,
        session_id="x",
    )
    wrong_width = {**valid_ref.model_dump(mode="json"), "width": -5}
    return {
        "garbage-frame": (FRAMES_TOPIC.name, b"\x00\x9f not json"),
        "schema-violating-frame": (FRAMES_TOPIC.name, orjson.dumps(wrong_width)),
        "missing-image": (FRAMES_TOPIC.name, valid_ref.to_bytes()),
        "garbage-detections": (DETECTIONS_TOPIC.name, b'{"camera_id": 7}'),
    }


@contextlib.contextmanager
def run_pipeline(footage_dir: Path, data_dir: Path) -> Iterator[Pipeline]:
    """The demo-like pipeline on two short clips, every stage its own process."""
    registry = data_dir / "cameras.yaml"
    registry.write_text(CAMERAS.format(footage=footage_dir))
    services = start_services(data_dir)
    env = {
        **services.env,
        "CITYCAM_DATA_DIR": str(data_dir),
        "CITYCAM_CAMERAS_FILE": str(registry),
        "CITYCAM_KAFKA__PARTITIONS": "2",
        "CITYCAM_STREAMS__FLUSH_INTERVAL_S": "1",
        # No dead band: the independent count below is streams.geometry's LineCounter rule.
        "CITYCAM_STREAMS__CROSSING_BAND_PX": "0",
        "CITYCAM_INFERENCE__BATCH_SIZE": "4",
        # The clips replay faster than real time: starting their capture times in the past
        # keeps them behind the clock, as live cameras' are. Otherwise the last vtest frames
        # (76 s of stream time at 0.25 fps) lie over a minute ahead of their inference time,
        # and the frames quality suite rightly quarantines them: the run would never settle.
        "CITYCAM_INGEST__REPLAY_START": (datetime.now(UTC) - REPLAY_LEAD).isoformat(),
    }
    saved = dict(os.environ)
    os.environ.update(env)
    stages: dict[str, StageProcess] = {}
    try:
        settings = Settings()
        ensure_topics(settings.kafka, TOPICS)
        migrate(connect(settings.warehouse, database=None), settings.warehouse.database, 7)
        injected = {}
        producer = EventProducer(settings.kafka, client_id="test-injector")
        for name, (topic, payload) in bad_messages(data_dir / "frames").items():
            producer.send(topic, b"street-bikes", payload)
            injected[name] = payload
        producer.flush()
        stages = start_stages(settings, env)
        yield Pipeline(settings, services, stages, injected)
    finally:
        for stage in stages.values():
            stage.process.stop()
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


def read_topic(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> list:
    consumer = Consumer(consumer_config(settings.kafka, f"test-reader-{topic}-{time.time()}"))
    consumer.subscribe([topic])
    messages: list = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            messages += [m for m in consumer.consume(500, 1) if m.error() is None]
            if len(messages) >= expected:
                # read on a little: more than expected must show up as a failure
                messages += [m for m in consumer.consume(500, 2) if m.error() is None]
                break
    finally:
        consumer.close()
    return messages


def wait_for_warehouse(pipeline: Pipeline, timeout_s: float = 400) -> None:
    client = connect(pipeline.settings.warehouse)
    want = sum(EXPECTED_FRAMES.values())
    deadline = time.monotonic() + timeout_s
    frames = fact_frames = line_frames = zone_frames = 0
    while time.monotonic() < deadline:
        for name, stage in pipeline.stages.items():
            proc = stage.process.proc
            assert name == "ingest" or (proc and proc.poll() is None), f"{name} died"
        frames = client.command("SELECT count() FROM frames FINAL")
        fact_frames = client.command(
            "SELECT sum(f) FROM (SELECT camera_id, window_start, max(frames) AS f "
            "FROM traffic_density_1m FINAL GROUP BY camera_id, window_start)"
        )
        line_frames, zone_frames = (
            client.command(
                "SELECT sum(f) FROM (SELECT camera_id, window_start, max(frames) AS f "
                f"FROM {table} FINAL GROUP BY camera_id, window_start)"
            )
            for table in ("line_crossings_1m", "zone_occupancy_1m")
        )
        if frames == want and fact_frames == line_frames == zone_frames == want:
            return
        time.sleep(1)
    pytest.fail(
        f"pipeline did not settle: {frames} frames, {fact_frames} density, {line_frames} "
        f"line and {zone_frames} zone fact frames in the warehouse, expected {want}"
    )
