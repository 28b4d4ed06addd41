"""The whole pipeline on real footage: real broker, real ClickHouse engine behind its HTTP
endpoint, real PyAV decoding, real detector weights, every stage its own process.

Asserts that the facts in ClickHouse (density, line crossings, zone occupancy) equal an
independent aggregation of the detections that were published, and that malformed messages
land in the dead-letter topic (and table) with a reason while everything else flows.
"""

from __future__ import annotations

import base64
import time
from collections import Counter, defaultdict

import pytest

from citycam.cameras import load_cameras
from citycam.clickhouse import connect
from citycam.config import Settings, StreamsSettings
from schemas import (
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    DeadLetter,
    FrameDetections,
)
from streams.density import count_vehicles, window_start
from streams.geometry import LineCounter, anchors, in_polygon
from tests.integration.pipeline import (
    EXPECTED_FRAMES,
    Pipeline,
    read_topic,
    wait_for_warehouse,
)

pytestmark = pytest.mark.integration


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
    boxes = [d for e in published for d in e.detections]
    assert boxes and all(d.track_id is not None for d in boxes), "a published box has no track"
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
