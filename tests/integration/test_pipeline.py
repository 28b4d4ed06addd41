"""The whole pipeline on real footage: real broker, real ClickHouse engine behind its HTTP
endpoint, real PyAV decoding, real detector weights, every stage its own process.

Asserts that the facts in ClickHouse (density, line crossings, zone occupancy) equal an
independent aggregation of the detections that were published, and that malformed messages
land in the dead-letter topic (and table) with a reason while everything else flows.
"""

from __future__ import annotations

import base64
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Consumer

from citycam.cameras import load_cameras
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
from streams.geometry import LineCounter, anchors, in_polygon
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

# Geometry drawn at half the frame size: the stream scales it to the frames it gets.
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
        # No dead band: the independent count below is streams.geometry's LineCounter rule.
        "CITYCAM_STREAMS__CROSSING_BAND_PX": "0",
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


def published_detections(pipeline: Pipeline) -> list[FrameDetections]:
    messages = read_topic(
        pipeline.settings, DETECTIONS_TOPIC.name, sum(EXPECTED_FRAMES.values()) + 1
    )
    return [
        FrameDetections.from_bytes(m.value())
        for m in messages
        if m.value() != pipeline.injected["garbage-detections"]
    ]


def independent_crossings(
    settings: Settings, detections: list[FrameDetections]
) -> dict[tuple[str, str, str, str, int], int]:
    """(camera, line, direction, class, window start) -> crossings, counted here with
    streams.geometry.LineCounter (the reference rule) on each camera's frames in capture order.
    A track's class is its most frequent label so far (latest wins a tie); riders never count."""
    streams = StreamsSettings()
    classes = streams.road_user_classes
    registry = load_cameras(settings.cameras_file)
    counts: dict[tuple[str, str, str, str, int], int] = defaultdict(int)
    by_camera: dict[str, list[FrameDetections]] = defaultdict(list)
    for event in detections:
        by_camera[event.camera_id].append(event)
    for camera_id, events in by_camera.items():
        geometry = registry.get(camera_id).geometry
        assert geometry is not None
        counters: list[LineCounter] = []
        votes: dict[int, Counter[str]] = defaultdict(Counter)
        for event in sorted(events, key=lambda e: e.captured_at):
            if not counters:
                scaled = geometry.scaled((event.width, event.height))
                counters = [LineCounter(line) for line in scaled.lines]
            start = window_start(event.captured_at.timestamp(), streams.window_s)
            seen: set[int] = set()
            for d in event.detections:
                if d.track_id is None or d.class_name not in classes or d.track_id in seen:
                    continue
                seen.add(d.track_id)
                label = "rider" if d.rider_of is not None else classes[d.class_name]
                votes[d.track_id][label] += 1
                top = max(votes[d.track_id].values())
                tied = [k for k, n in votes[d.track_id].items() if n == top]
                cls = label if label in tied else tied[0]
                anchor = ((d.bbox.x1 + d.bbox.x2) / 2, d.bbox.y2)
                for counter in counters:
                    direction = counter.update(d.track_id, anchor)
                    if direction is not None and cls != "rider":
                        counts[(camera_id, counter.line.id, direction, cls, start)] += 1
    return counts


def independent_occupancy(
    settings: Settings, detections: list[FrameDetections]
) -> dict[tuple[str, str, int], tuple[int, int]]:
    """(camera, zone, window start) -> (frames, objects inside), counted here."""
    streams = StreamsSettings()
    registry = load_cameras(settings.cameras_file)
    frames: dict[tuple[str, str, int], int] = defaultdict(int)
    objects: dict[tuple[str, str, int], int] = defaultdict(int)
    for event in detections:
        geometry = registry.get(event.camera_id).geometry
        assert geometry is not None
        scaled = geometry.scaled((event.width, event.height))
        start = window_start(event.captured_at.timestamp(), streams.window_s)
        users = [
            d
            for d in event.detections
            if d.class_name in streams.road_user_classes
            and d.score >= streams.min_score
            and d.rider_of is None
        ]
        for zone in scaled.zones:
            key = (event.camera_id, zone.id, start)
            frames[key] += 1
            if users:
                points = anchors([[d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2] for d in users])
                objects[key] += int(in_polygon(points, zone.polygon).sum())
    return {key: (n, objects[key]) for key, n in frames.items()}


def test_facts_in_warehouse_equal_aggregation_of_published_detections(pipeline: Pipeline) -> None:
    wait_for_warehouse(pipeline)
    published = published_detections(pipeline)
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


def test_crossing_and_occupancy_facts_equal_an_independent_count(pipeline: Pipeline) -> None:
    wait_for_warehouse(pipeline)
    published = published_detections(pipeline)
    assert any(d.track_id is not None for e in published for d in e.detections), "no tracks"
    client = connect(pipeline.settings.warehouse)

    rows = client.query(
        "SELECT camera_id, line_id, direction, vehicle_class, toUnixTimestamp(window_start), "
        "crossings, pcu, pcu_factor, pcu_per_hour FROM line_crossings_1m FINAL"
    ).result_rows
    stored = {tuple(r[:5]): r[5] for r in rows if r[5] > 0}
    print(f"\ncrossings in the warehouse: {stored}")
    assert stored == independent_crossings(pipeline.settings, published)
    assert all(abs(pcu - n * factor) < 1e-3 for *_, n, pcu, factor, _ in rows)
    assert all(abs(per_hour - pcu * 60) < 1e-2 for *_, pcu, _, per_hour in rows)
    # every line, way and class of every window, zeros included: 2 ways x 6 classes
    windows = client.command(
        "SELECT count() FROM (SELECT DISTINCT camera_id, toStartOfMinute(captured_at) "
        "FROM frames FINAL)"
    )
    assert len(rows) == windows * 2 * len(set(StreamsSettings().road_user_classes.values()))

    occupancy = {
        (cam, zone, start): (frames, objects)
        for cam, zone, start, frames, objects in client.query(
            "SELECT camera_id, zone_id, toUnixTimestamp(window_start), frames, objects "
            "FROM zone_occupancy_1m FINAL"
        ).result_rows
    }
    assert occupancy == independent_occupancy(pipeline.settings, published)
    assert sum(objects for _, objects in occupancy.values()) > 0, "nobody in any zone"
