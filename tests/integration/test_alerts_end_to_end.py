"""Alerts open and close exactly once per episode, through the real broker, worker and sink.

A camera's jam is replayed as the streams job would emit it: zone-occupancy facts re-emitted
as each minute fills (running totals, the last one final), some twice, line-crossing facts
beside them, and a malformed fact in the middle; the camera's detections go first, so the
worker picks evidence frames from them. The real Faust worker (`citycam streams`) judges the
minutes and publishes alerts; the real sink loads them through the quality gate into the
embedded warehouse. Two jams, with flapping around the thresholds, must give exactly one open
and one closed message each, and two rows in `alerts` FINAL, closed, with the right start,
end and evidence.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from citycam.clickhouse import connect
from citycam.config import Settings
from citycam.embedded import EmbeddedServices, ManagedProcess, start_services
from citycam.kafka import EventProducer, consumer_config, ensure_topics
from schemas import (
    ALERTS_TOPIC,
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    LINE_CROSSINGS_TOPIC,
    TOPICS,
    ZONE_OCCUPANCY_TOPIC,
    BoundingBox,
    DeadLetter,
    Detection,
    FrameDetections,
    LineCrossings,
    TrafficAlert,
    ZoneOccupancy,
)
from streams.alerts import EVIDENCE_TOPIC
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

CAMERA = "jam-cam"
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # a Monday morning in Hue
# (occupied share, mean PCU) per minute; open: >= 0.9 and >= 3 for 3 minutes; hold: >= 0.7
# and >= 1.5; closed after 5 minutes not holding (AlertSettings defaults).
QUIET, JAMMED, SLOWING = (0.5, 1.0), (0.95, 3.4), (0.8, 2.0)
PLAN = [
    *[QUIET] * 3,  # 0-2
    JAMMED,  # 3
    (0.85, 3.4),  # 4 under the open share: no run of 3 yet
    *[JAMMED] * 2,  # 5-6
    (0.95, 2.8),  # 7 under the open PCU
    *[JAMMED] * 3,  # 8-10: episode 1 opens, started at 8
    (0.97, 6.5),  # 11 worst minute (2.2x): severity high
    SLOWING,  # 12 holds
    QUIET,  # 13 fails
    SLOWING,  # 14 holds: the close run starts over
    *[QUIET] * 5,  # 15-19: closed, ended at 15
    *[JAMMED] * 4,  # 20-23: episode 2, started at 20
    *[QUIET, SLOWING] * 3,  # 24-29: flapping around the close threshold
    *[QUIET] * 5,  # 30-34: closed, ended at 30
    *[QUIET] * 3,  # 35-37: facts that let the last minutes settle
]
EVIDENCE_CHANGELOG = "citycam-streams-alert-evidence-changelog"  # Faust: app id, table name
EPISODES = {  # started minute -> (ended minute, worst minute, its crowded frame)
    8: (15, 11, f"{CAMERA}-11-3"),
    20: (30, 20, f"{CAMERA}-20-3"),
}


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def detections(minute: int, frame: int, vehicles: int) -> FrameDetections:
    boxes = tuple(
        Detection(
            class_name="car",
            class_id=3,
            score=0.9,
            bbox=BoundingBox(x1=10 + 40 * i, y1=10, x2=40 + 40 * i, y2=40),
            track_id=i,
        )
        for i in range(vehicles)
    )
    captured = at(minute) + timedelta(seconds=10 * frame + 1)
    return FrameDetections(
        camera_id=CAMERA,
        frame_id=f"{CAMERA}-{minute}-{frame}",
        captured_at=captured,
        frame_uri=f"file:///frames/{CAMERA}-{minute}-{frame}.jpg",
        width=640,
        height=480,
        model_name="m",
        model_version="1",
        inferred_at=captured,
        detections=boxes,
    )


def frames_of(minute: int) -> list[FrameDetections]:
    """Five frames a minute; frame 3 is the most crowded, and most crowded at minute 11."""
    crowd = 12 if minute == 11 else 6
    return [detections(minute, f, crowd if f == 3 else 2 + f % 2) for f in range(5)]


def zone_fact(minute: int, share: float, pcu: float, frames: int) -> ZoneOccupancy:
    occupied = round(share * frames)
    objects = max(occupied, round(pcu * 2 * frames))
    return ZoneOccupancy(
        camera_id=CAMERA,
        zone_id="junction",
        zone_kind="junction",
        window_start=at(minute),
        window_end=at(minute + 1),
        frames=frames,
        objects=objects,
        mean_objects=round(objects / frames, 4),
        max_objects=min(objects, 30),
        occupied_frames=occupied,
        occupied_share=round(occupied / frames, 4),
        mean_pcu=pcu,
        pcu_version="tcvn4054-2005",
        emitted_at=at(minute + frames / 60 + 0.05),
    )


def line_fact(minute: int, frames: int) -> LineCrossings:
    return LineCrossings(
        camera_id=CAMERA,
        line_id="main-road",
        direction="eastbound",
        orientation="positive",
        vehicle_class="car",
        window_start=at(minute),
        window_end=at(minute + 1),
        frames=frames,
        crossings=frames // 4,
        pcu_factor=1.0,
        pcu=frames // 4,
        pcu_per_hour=frames // 4 * 60,
        pcu_version="tcvn4054-2005",
        speed_samples=0,
        emitted_at=at(minute + frames / 60 + 0.05),
    )


def fact_stream() -> list[tuple[str, bytes]]:
    """(topic, payload) in the order the stream would send them: each minute re-emitted at
    20, 40 and 60 frames (early emissions look quiet), the final one of every 4th minute
    twice, and a malformed fact after minute 16."""
    out = []
    for minute, (share, pcu) in enumerate(PLAN):
        for frames in (20, 40, 60):
            early = frames < 60
            zone = zone_fact(minute, *(QUIET if early else (share, pcu)), frames)
            out.append((ZONE_OCCUPANCY_TOPIC.name, zone.to_bytes()))
            out.append((LINE_CROSSINGS_TOPIC.name, line_fact(minute, frames).to_bytes()))
        if minute % 4 == 0:
            out.append(out[-2])
        if minute == 16:
            out.append((ZONE_OCCUPANCY_TOPIC.name, b'{"camera_id": "jam-cam", "zone_id": 5}'))
    return out


@dataclass
class Stack:
    settings: Settings
    services: EmbeddedServices
    stages: list[ManagedProcess]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("alerts")
    services = start_services(data_dir)
    env = {
        **services.env,
        "CITYCAM_DATA_DIR": str(data_dir),
        "CITYCAM_KAFKA__PARTITIONS": "2",
        "CITYCAM_SINK__BATCH_S": "0.5",
    }
    saved = dict(os.environ)
    os.environ.update(env)
    stages: list[ManagedProcess] = []
    try:
        settings = Settings()
        ensure_topics(settings.kafka, TOPICS)
        migrate(connect(settings.warehouse, database=None), settings.warehouse.database, 7)
        for name in ("sink", "streams"):
            stage = ManagedProcess(
                name,
                [sys.executable, "-m", "citycam.cli", name],
                data_dir / "run" / f"{name}.log",
                env,
            )
            stage.start()
            stages.append(stage)
        yield Stack(settings, services, stages)
    finally:
        for stage in stages:
            stage.stop()
        services.stop()
        os.environ.clear()
        os.environ.update(saved)


def consume(
    settings: Settings, topic: str, until: int | Callable[[list[bytes]], bool], timeout_s: float
) -> list[bytes]:
    """Values on `topic` from the start: until `until` arrived (a count, or a test of the
    values), then 3 s more (an extra message must show up as a failure), or the timeout."""
    done = until if callable(until) else lambda values: len(values) >= until
    consumer = Consumer(consumer_config(settings.kafka, f"test-{topic}-{time.time()}"))
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not done(values):
            values += read(consumer)
        settle = time.monotonic() + 3
        while time.monotonic() < settle:
            values += read(consumer)
    finally:
        consumer.close()
    return values


def read(consumer: Consumer) -> list[bytes]:
    return [v for m in consumer.consume(500, 0.5) if m.error() is None and (v := m.value())]


def wait_for_topic(settings: Settings, topic: str, timeout_s: float) -> None:
    admin = AdminClient(settings.kafka.client_config())
    deadline = time.monotonic() + timeout_s
    while topic not in admin.list_topics(timeout=5).topics:
        assert time.monotonic() < deadline, f"{topic} was never created"
        time.sleep(0.5)


def check_alive(stack: Stack) -> None:
    for stage in stack.stages:
        assert stage.proc is not None and stage.proc.poll() is None, (
            f"{stage.name} died; see {stage.log_path}"
        )


def test_alerts_open_and_close_exactly_once_per_episode_in_a_replayed_jam(stack: Stack) -> None:
    settings = stack.settings
    inference = EventProducer(settings.kafka, client_id="test-inference")
    minutes = range(len(PLAN))
    for minute in minutes:
        for frame in frames_of(minute):
            inference.publish(DETECTIONS_TOPIC, CAMERA, frame)
    inference.flush()
    # The worker is up and has forwarded and stored the evidence before facts arrive: per
    # minute the frames with 2, 3 and 6 vehicles (each the most crowded so far), not the
    # other two. Stored = written to the evidence table, whose changelog we can read.
    wait_for_topic(settings, EVIDENCE_TOPIC, timeout_s=60)
    forwarded = consume(settings, EVIDENCE_TOPIC, 3 * len(minutes), timeout_s=60)
    assert len(forwarded) == 3 * len(minutes)
    stored = consume(settings, EVIDENCE_CHANGELOG, 3 * len(minutes), timeout_s=30)
    assert len(stored) == 3 * len(minutes)
    check_alive(stack)

    # Facts as Faust would partition them (Kafka's murmur2), like the evidence topic.
    streams = EventProducer(settings.kafka, "test-streams", partitioner="murmur2_random")
    for topic, payload in fact_stream():
        streams.send(topic, CAMERA.encode(), payload)
    streams.flush()

    # per episode open and closed, and episode 1 once ongoing: its severity rose at minute 11
    values = consume(settings, ALERTS_TOPIC.name, until=5, timeout_s=30)
    check_alive(stack)
    alerts = [TrafficAlert.from_bytes(v) for v in values]
    states = Counter((a.alert_id, a.state) for a in alerts if a.state != "ongoing")
    expected_ids = {
        f"congestion:{CAMERA}:junction:{at(start):%Y%m%dT%H%M%SZ}": start for start in EPISODES
    }
    assert states == {(i, s): 1 for i in expected_ids for s in ("open", "closed")}, alerts
    assert [(a.state, a.started_at) for a in alerts] == [
        ("open", at(8)),
        ("ongoing", at(8)),
        ("closed", at(8)),
        ("open", at(20)),
        ("closed", at(20)),
    ]
    assert all(a.kind == "congestion" for a in alerts), "no flow alert while learning"
    closed = {a.alert_id: a for a in alerts if a.state == "closed"}
    for alert_id, start in expected_ids.items():
        ended, worst, frame_id = EPISODES[start]
        alert = closed[alert_id]
        assert (alert.started_at, alert.ended_at, alert.as_of) == (
            at(start),
            at(ended),
            at(ended + 5),
        )
        assert alert.value == PLAN[worst][1]
        assert alert.evidence is not None and alert.evidence.frame_id == frame_id
    assert closed[next(iter(expected_ids))].severity == "high"

    def streams_refused(values: list[bytes]) -> list[DeadLetter]:
        letters = [DeadLetter.from_bytes(v) for v in values]
        return [letter for letter in letters if letter.stage == "streams"]

    letters = consume(
        settings, DEAD_LETTERS_TOPIC.name, lambda values: bool(streams_refused(values)), 20
    )
    refused = streams_refused(letters)
    assert len(refused) == 1 and "zone_id" in refused[0].reason
    assert refused[0].source_topic == ZONE_OCCUPANCY_TOPIC.name

    # The warehouse: one row per episode, in its final state.
    client = connect(settings.warehouse)
    query = (
        "SELECT alert_id, state, toUnixTimestamp(started_at), toUnixTimestamp(ended_at), "
        "evidence_frame_id FROM alerts FINAL ORDER BY started_at"
    )
    expected_rows = []
    for alert_id, start in expected_ids.items():
        ended, _, frame_id = EPISODES[start]
        epoch = int(at(start).timestamp()), int(at(ended).timestamp())
        expected_rows.append((alert_id, "closed", *epoch, frame_id))
    deadline = time.monotonic() + 30
    rows: list = []
    while time.monotonic() < deadline and rows != expected_rows:
        time.sleep(0.5)
        rows = [tuple(r) for r in client.query(query).result_rows]
    assert rows == expected_rows
    versions = client.command("SELECT count() FROM alerts")
    assert isinstance(versions, int) and versions <= len(alerts)  # every version, or merged
    assert client.command("SELECT count() FROM quarantine WHERE table_name = 'alerts'") == 0
