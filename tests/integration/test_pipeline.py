"""The whole pipeline on real footage: real broker, real ClickHouse engine behind its HTTP
endpoint, real PyAV decoding, real detector weights, every stage its own process.

Asserts that the facts in ClickHouse equal an independent aggregation of the detections
that were published, and that malformed messages land in the dead-letter topic (and
table) with a reason while everything else flows.
"""

from __future__ import annotations

import base64
import os
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from citycam.clickhouse import connect
from citycam.config import Settings, StreamsSettings
from citycam.demo import StageProcess, start_stages
from citycam.embedded import EmbeddedServices, start_services
from citycam.kafka import EventProducer, consumer_config, ensure_topics
from schemas import (
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    FRAMES_TOPIC,
    TOPICS,
    DeadLetter,
    FrameDetections,
    FrameRef,
)
from streams.density import count_vehicles, window_start
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

CAMERAS = """
cameras:
  - {{id: street-bikes, name: bikes, lat: 16.47, lon: 107.58, district: Phu Hoa,
     source: "{footage}/bikes.mp4", sample_fps: 2}}
  - {{id: crossing-vtest, name: vtest, lat: 16.46, lon: 107.59, district: Phu Hoi,
     source: "{footage}/vtest.avi", sample_fps: 0.25}}
"""
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


@pytest.fixture(scope="module")
def pipeline(footage_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    data_dir = tmp_path_factory.mktemp("pipeline")
    registry = data_dir / "cameras.yaml"
    registry.write_text(CAMERAS.format(footage=footage_dir))
    services = start_services(data_dir)
    env = {
        **services.env,
        "CITYCAM_DATA_DIR": str(data_dir),
        "CITYCAM_CAMERAS_FILE": str(registry),
        "CITYCAM_KAFKA__PARTITIONS": "2",
        "CITYCAM_STREAMS__FLUSH_INTERVAL_S": "1",
        "CITYCAM_INFERENCE__BATCH_SIZE": "4",
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
    frames = fact_frames = 0
    while time.monotonic() < deadline:
        for name, stage in pipeline.stages.items():
            proc = stage.process.proc
            assert name == "ingest" or (proc and proc.poll() is None), f"{name} died"
        frames = client.command("SELECT count() FROM frames FINAL")
        fact_frames = client.command(
            "SELECT sum(f) FROM (SELECT camera_id, window_start, max(frames) AS f "
            "FROM traffic_density_1m FINAL GROUP BY camera_id, window_start)"
        )
        if frames == want and fact_frames == want:
            return
        time.sleep(1)
    pytest.fail(
        f"pipeline did not settle: {frames} frames and {fact_frames} fact frames "
        f"in the warehouse, expected {want}"
    )


def independent_aggregation(detections: list[FrameDetections]) -> dict[tuple, tuple[int, int]]:
    """(camera, class, window start) -> (frames, boxes), computed here, not by the stream."""
    streams = StreamsSettings()
    frames: dict[tuple[str, int], set[str]] = defaultdict(set)
    boxes: dict[tuple[str, str, int], int] = defaultdict(int)
    for event in detections:
        start = window_start(event.captured_at.timestamp(), streams.window_s)
        frames[(event.camera_id, start)].add(event.frame_id)
        for vehicle_class, n in count_vehicles(event, streams).items():
            boxes[(event.camera_id, vehicle_class, start)] += n
    return {
        (cam, cls, start): (len(frame_ids), boxes[(cam, cls, start)])
        for (cam, start), frame_ids in frames.items()
        for cls in set(streams.vehicle_classes.values())
    }


def test_facts_in_warehouse_equal_aggregation_of_published_detections(pipeline: Pipeline) -> None:
    wait_for_warehouse(pipeline)
    messages = read_topic(
        pipeline.settings, DETECTIONS_TOPIC.name, sum(EXPECTED_FRAMES.values()) + 1
    )
    published = [
        FrameDetections.from_bytes(m.value())
        for m in messages
        if m.value() != pipeline.injected["garbage-detections"]
    ]
    per_camera = defaultdict(int)
    for event in published:
        per_camera[event.camera_id] += 1
    assert dict(per_camera) == EXPECTED_FRAMES
    assert sum(len(e.detections) for e in published) > 0, "the detector found nothing at all"
    expected = independent_aggregation(published)

    rows = (
        connect(pipeline.settings.warehouse)
        .query(
            "SELECT camera_id, vehicle_class, toUnixTimestamp(window_start), frames, "
            "detections, pcu, pcu_factor FROM traffic_density_1m FINAL"
        )
        .result_rows
    )
    stored = {(cam, cls, start): (frames, boxes) for cam, cls, start, frames, boxes, _, _ in rows}
    assert stored == expected
    assert all(abs(pcu - boxes * factor) < 1e-3 for *_, boxes, pcu, factor in rows)
    assert any(boxes > 0 for _, boxes in stored.values()), "no vehicle counted on street footage"


def test_raw_detections_reach_the_warehouse(pipeline: Pipeline) -> None:
    wait_for_warehouse(pipeline)
    client = connect(pipeline.settings.warehouse)
    frames_boxes = client.command("SELECT sum(detections) FROM frames FINAL")
    assert client.command("SELECT count() FROM detections FINAL") == frames_boxes > 0


def test_malformed_messages_are_dead_lettered_with_reason(pipeline: Pipeline) -> None:
    wait_for_warehouse(pipeline)
    letters = [
        DeadLetter.from_bytes(m.value())
        for m in read_topic(pipeline.settings, DEAD_LETTERS_TOPIC.name, 5)
    ]
    by_value = {letter.original_value(): letter for letter in letters}
    # three bad frames refused by inference; the bad detections by both of its consumers
    assert len(letters) == 5, [(lt.stage, lt.reason) for lt in letters]
    injected = pipeline.injected
    assert "not valid JSON" in by_value[injected["garbage-frame"]].reason
    assert "width" in by_value[injected["schema-violating-frame"]].reason
    assert "frame not found" in by_value[injected["missing-image"]].reason
    assert "camera_id" in by_value[injected["garbage-detections"]].reason
    assert sorted(lt.stage for lt in letters) == ["inference"] * 3 + ["sink", "streams"]
    assert all(lt.original_key() == b"street-bikes" for lt in letters)

    client = connect(pipeline.settings.warehouse)
    deadline = time.monotonic() + 30
    while (
        client.command("SELECT count() FROM dead_letters FINAL") < 5 and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    stored = {
        base64.b64decode(v)
        for v in client.query("SELECT value_b64 FROM dead_letters FINAL").result_columns[0]
    }
    assert stored == set(injected.values())
