"""The sink's exactly-once effect, with the real broker and the real warehouse endpoint.

- SIGKILL at random points, several times, ends with the same warehouse as a run that was
  never interrupted: nothing lost, nothing doubled (compared with FINAL, and again by raw
  row counts after the tables are merged).
- The warehouse endpoint going away for a while: the sink waits, retries, and loses nothing.
- Sink replicas joining and leaving one consumer group while events stream in: no row is
  inserted twice, counted before any merge.
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from citycam.clickhouse import connect
from citycam.config import KafkaSettings, WarehouseSettings
from citycam.embedded import ManagedProcess, free_port, start_broker, start_warehouse
from citycam.kafka import EventProducer, ensure_topics
from schemas import (
    DETECTIONS_TOPIC,
    TOPICS,
    TRAFFIC_DENSITY_TOPIC,
    BoundingBox,
    Detection,
    FrameDetections,
    TrafficDensity,
)
from warehouse.migrate import migrate

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
CAMERAS = [f"cam-{i}" for i in range(5)]
# Columns written by the warehouse or the sink at insert time differ between runs by nature.
VOLATILE = {
    "frames": ["loaded_at"],
    "traffic_density_1m": ["loaded_at"],
    "dead_letters": ["failed_at"],
    "quarantine": ["quarantined_at"],
}
TABLES = ["frames", "detections", "traffic_density_1m", "dead_letters", "quarantine"]
NO_MERGES = "max_bytes_to_merge_at_max_space_in_pool = 1"  # no two parts fit: none merge


@dataclass
class Warehouse:
    data_dir: Path
    port: int
    process: ManagedProcess
    settings: WarehouseSettings

    def client(self, database: str | None) -> Client:
        return connect(self.settings, database=database)

    def restart(self) -> None:
        self.process, _ = start_warehouse(
            self.data_dir, self.data_dir, self.data_dir / "users.json", "default", self.port
        )


def frame_events(rng: random.Random, n: int) -> list[FrameDetections]:
    events = []
    for i in range(n):
        camera = CAMERAS[i % len(CAMERAS)]
        ts = T0 + timedelta(seconds=i // len(CAMERAS) * 0.5)
        boxes = tuple(
            Detection(
                class_name=rng.choice(["car", "motorcycle", "person", "bus"]),
                class_id=3,
                score=round(rng.uniform(0.3, 1), 3),
                bbox=BoundingBox(x1=10, y1=10, x2=10 + rng.randint(5, 90), y2=60),
            )
            for _ in range(rng.randint(0, 4))
        )
        events.append(
            FrameDetections(
                camera_id=camera,
                frame_id=f"{camera}-{i}",
                captured_at=ts,
                frame_uri=f"file:///f/{camera}-{i}.jpg",
                width=640,
                height=480,
                model_name="m",
                model_version="1",
                inferred_at=ts + timedelta(seconds=1),
                detections=boxes,
            )
        )
    return events


def fact_events(rng: random.Random) -> list[TrafficDensity]:
    """Running totals re-emitted as windows fill, as the streams job does."""
    facts = []
    for camera in CAMERAS:
        for minute in range(6):
            start = T0 + timedelta(minutes=minute)
            frames = boxes = 0
            for _ in range(rng.randint(1, 4)):
                frames += rng.randint(1, 30)
                boxes += rng.randint(0, 40)
                facts.append(
                    TrafficDensity(
                        camera_id=camera,
                        window_start=start,
                        window_end=start + timedelta(minutes=1),
                        vehicle_class="motorbike",
                        frames=frames,
                        detections=boxes,
                        mean_in_view=round(boxes / frames, 4),
                        max_in_view=min(boxes, 9),
                        pcu_factor=0.3,
                        pcu=round(boxes * 0.3, 4),
                        pcu_version="t",
                        emitted_at=T0 + timedelta(minutes=minute + 1),
                    )
                )
    return facts


def facts_failing_quality() -> list[TrafficDensity]:
    """Facts the contract accepts but the expectation suite refuses: they go to quarantine."""
    start = T0 + timedelta(minutes=30)
    good = TrafficDensity(
        camera_id="cam-0",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        vehicle_class="car",
        frames=10,
        detections=20,
        mean_in_view=2.0,
        max_in_view=4,
        pcu_factor=1.0,
        pcu=20.0,
        pcu_version="t",
        emitted_at=start + timedelta(minutes=1),
    )
    two_minutes = {
        "window_start": start + timedelta(minutes=1),
        "window_end": start + timedelta(minutes=3),
    }
    return [
        good.model_copy(update={"pcu": 55.0}),  # pcu != detections x factor
        good.model_copy(update={**two_minutes, "vehicle_class": "tractor"}),
    ]


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaSettings]:
    broker, bootstrap = start_broker(tmp_path_factory.mktemp("broker"))
    try:
        settings = KafkaSettings(bootstrap_servers=bootstrap, partitions=3)
        ensure_topics(settings, TOPICS)
        yield settings
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    data_dir = tmp_path_factory.mktemp("warehouse")
    (data_dir / "users.json").write_text(
        json.dumps([{"name": "writer", "password": "w-secret", "role": "writer"}])
    )
    port = free_port()
    process, url = start_warehouse(data_dir, data_dir, data_dir / "users.json", "default", port)
    settings = WarehouseSettings(url=url, username="writer", password="w-secret")  # type: ignore[arg-type]
    wh = Warehouse(data_dir, port, process, settings)
    try:
        yield wh
    finally:
        wh.process.stop()


@pytest.fixture(scope="module")
def dataset(kafka: KafkaSettings) -> tuple[list[FrameDetections], list[TrafficDensity]]:
    rng = random.Random(20261122)
    frames, facts = frame_events(rng, 1500), fact_events(rng)
    publish(kafka, frames, [*facts, *facts_failing_quality()])
    return frames, facts


def publish(kafka: KafkaSettings, frames: list, facts: list) -> None:
    producer = EventProducer(kafka, client_id="test-dataset")
    for event in frames:
        producer.publish(DETECTIONS_TOPIC, event.camera_id, event)
    for fact in facts:
        producer.publish(TRAFFIC_DENSITY_TOPIC, fact.camera_id, fact)
    producer.send(DETECTIONS_TOPIC.name, b"cam-0", b"not json at all")  # one dead letter
    producer.flush()


def start_sink(
    kafka: KafkaSettings, wh: Warehouse, database: str, group: str, log: Path
) -> ManagedProcess:
    env = {
        "CITYCAM_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CITYCAM_WAREHOUSE__URL": wh.settings.url,
        "CITYCAM_WAREHOUSE__USERNAME": "writer",
        "CITYCAM_WAREHOUSE__PASSWORD": "w-secret",
        "CITYCAM_WAREHOUSE__DATABASE": database,
        "CITYCAM_SINK__GROUP_ID": group,
        "CITYCAM_SINK__BATCH_ROWS": "40",
        "CITYCAM_SINK__BATCH_S": "0.2",
        "CITYCAM_SINK__RETRY_INITIAL_S": "0.2",
        "CITYCAM_SINK__RETRY_MAX_S": "1",
        "CITYCAM_DATA_DIR": str(log.parent),
    }
    import sys

    sink = ManagedProcess("sink", [sys.executable, "-m", "citycam.cli", "sink"], log, env)
    sink.start()
    return sink


def frame_count(client: Client) -> int:
    return int(client.command("SELECT count() FROM frames FINAL"))


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the endpoint may be restarting
            pass
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def complete(client: Client, frames: list, facts: list) -> bool:
    fact_keys = {(f.camera_id, f.window_start) for f in facts}
    return (
        frame_count(client) == len(frames)
        and int(client.command("SELECT count() FROM traffic_density_1m FINAL")) == len(fact_keys)
        and int(client.command("SELECT count() FROM dead_letters FINAL")) >= 1
        and int(client.command("SELECT count() FROM quarantine FINAL")) == 2
    )


def snapshot(client: Client, table: str) -> list[tuple]:
    columns = [
        name
        for name in client.query(f"DESCRIBE TABLE {table}").result_columns[0]
        if name not in VOLATILE.get(table, [])
    ]
    listed = ", ".join(columns)
    return client.query(f"SELECT {listed} FROM {table} FINAL ORDER BY {listed}").result_rows


def fresh_database(wh: Warehouse, name: str) -> Client:
    migrate(wh.client(None), name, 7)
    return wh.client(name)


def test_sigkill_at_random_points_ends_identical_to_uninterrupted_run(
    kafka: KafkaSettings, warehouse: Warehouse, dataset: tuple, tmp_path: Path
) -> None:
    frames, facts = dataset
    reference = fresh_database(warehouse, "reference")
    sink = start_sink(kafka, warehouse, "reference", "sink-reference", tmp_path / "ref.log")
    wait_for(lambda: complete(reference, frames, facts), "the uninterrupted run")
    sink.stop()

    chaos = fresh_database(warehouse, "chaos")
    rng = random.Random(7)
    targets = sorted(rng.sample(range(50, len(frames) - 50), 5))
    kills_mid_run = 0
    for i, target in enumerate(targets):
        sink = start_sink(kafka, warehouse, "chaos", "sink-chaos", tmp_path / f"chaos-{i}.log")
        wait_for(lambda target=target: frame_count(chaos) >= target, f"progress to {target}")
        assert sink.proc is not None
        sink.proc.send_signal(signal.SIGKILL)  # no cleanup, no commit, no flush
        sink.proc.wait()
        kills_mid_run += frame_count(chaos) < len(frames)
    assert kills_mid_run >= 4, "the kills must land while work is still in flight"
    sink = start_sink(kafka, warehouse, "chaos", "sink-chaos", tmp_path / "chaos-final.log")
    wait_for(lambda: complete(chaos, frames, facts), "the killed run to finish")
    time.sleep(1)  # let any late duplicate land before comparing
    sink.stop()

    for table in TABLES:
        assert snapshot(chaos, table) == snapshot(reference, table), table
    # at rest, after merges, no table holds a doubled row either
    for client in (reference, chaos):
        for table in TABLES:
            client.command(f"OPTIMIZE TABLE {table} FINAL")
    for table in TABLES:
        raw = f"SELECT count() FROM {table}"
        assert chaos.command(raw) == reference.command(raw), table
    # and the warehouse holds what was published, not just the same as the other run
    assert frame_count(chaos) == len(frames)
    boxes = sum(len(e.detections) for e in frames)
    assert int(chaos.command("SELECT count() FROM detections")) == boxes
    latest = {(f.camera_id, f.window_start.replace(tzinfo=None)): f.detections for f in facts}
    stored = chaos.query(
        "SELECT camera_id, window_start, detections FROM traffic_density_1m"
    ).result_rows
    assert {(c, w): d for c, w, d in stored} == latest
    quarantined = chaos.query(
        "SELECT table_name, failed_expectations, source_topic, JSONExtractString(row_json, "
        "'vehicle_class') FROM quarantine FINAL ORDER BY source_offset"
    ).result_rows
    assert sorted(quarantined, key=lambda r: r[3]) == [
        (
            "traffic_density_1m",
            ["expect_column_values_to_be_between(pcu_error)"],
            TRAFFIC_DENSITY_TOPIC.name,
            "car",
        ),
        (
            "traffic_density_1m",
            [
                "expect_column_values_to_be_in_set(vehicle_class)",
                "expect_column_values_to_be_between(window_length_s)",
            ],
            TRAFFIC_DENSITY_TOPIC.name,
            "tractor",
        ),
    ]


def test_warehouse_outage_loses_nothing(
    kafka: KafkaSettings, warehouse: Warehouse, dataset: tuple, tmp_path: Path
) -> None:
    frames, facts = dataset
    client = fresh_database(warehouse, "outage")
    log = tmp_path / "outage.log"
    sink = start_sink(kafka, warehouse, "outage", "sink-outage", log)
    try:
        wait_for(lambda: complete(client, frames, facts), "the first part")
        warehouse.process.stop()  # the endpoint goes away...
        rng = random.Random(99)
        more = [
            e.model_copy(
                update={
                    "frame_id": f"late-{e.frame_id}",
                    "captured_at": e.captured_at + timedelta(hours=1),
                    "inferred_at": e.inferred_at + timedelta(hours=1),
                }
            )
            for e in frame_events(rng, 300)
        ]
        publish(kafka, more, [])  # ...while new data keeps arriving
        wait_for(lambda: "failed (attempt" in log.read_text(), "the sink to notice", 60)
        time.sleep(3)  # several retries with backoff
        warehouse.restart()
        client = warehouse.client("outage")
        wait_for(lambda: frame_count(client) == len(frames) + len(more), "catch-up after outage")
    finally:
        sink.stop()
    assert sink.proc is not None and sink.proc.returncode == 0, "the sink survived the outage"
    assert int(client.command("SELECT count() FROM detections FINAL")) == sum(
        len(e.detections) for e in [*frames, *more]
    )


def test_sinks_scaled_out_in_one_group_load_every_row_once(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    """Replicas join and leave one consumer group while events stream in (a deployment
    scaling its sinks): a replica gives partitions up only after storing and committing what
    it holds, so no row reaches the warehouse twice, not even before merges."""
    broker, bootstrap = start_broker(tmp_path / "broker")  # topics of this test's own
    kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=3)
    ensure_topics(kafka, TOPICS)
    rng = random.Random(20261123)
    frames, facts = frame_events(rng, 2000), fact_events(rng)
    client = fresh_database(warehouse, "scaled")
    for table in TABLES:  # merges would hide a row inserted twice: hold them
        client.command(f"ALTER TABLE {table} MODIFY SETTING {NO_MERGES}")
    logs = {name: tmp_path / f"{name}.log" for name in ("first", "second")}
    first = start_sink(kafka, warehouse, "scaled", "sink-scaled", logs["first"])
    second = None
    try:
        wait_for(lambda: "assigned" in logs["first"].read_text(), "the first replica to join")
        hurry = threading.Event()
        streaming = threading.Thread(
            target=publish_steadily, args=(kafka, frames, facts, 60, hurry)
        )
        streaming.start()
        second = start_sink(kafka, warehouse, "scaled", "sink-scaled", logs["second"])
        wait_for(lambda: "assigned" in logs["second"].read_text(), "the second replica to join")
        assert streaming.is_alive(), "the second replica must join while events stream in"
        time.sleep(3)  # both consume
        first.stop(timeout_s=60)  # scaled in: its partitions move to the second replica
        assert first.proc is not None and first.proc.returncode == 0
        assert streaming.is_alive(), "the first replica must leave while events stream in"
        hurry.set()
        streaming.join()
        wait_for(lambda: complete(client, frames, facts), "the second replica to finish")
        time.sleep(1)  # let any late duplicate land before counting
    finally:
        first.stop()
        if second is not None:
            second.stop()
        broker.stop()
    assert "revoked" in logs["first"].read_text()
    # raw counts, before any merge: nothing was inserted twice
    assert int(client.command("SELECT count() FROM frames")) == len(frames)
    boxes = sum(len(e.detections) for e in frames)
    assert int(client.command("SELECT count() FROM detections")) == boxes
    assert int(client.command("SELECT count() FROM quarantine")) == 2
    assert int(client.command("SELECT count() FROM dead_letters")) == 1
    # re-emitted facts collapse within an insert by design: their latest value must be there
    latest = {(f.camera_id, f.window_start.replace(tzinfo=None)): f.detections for f in facts}
    stored = client.query(
        "SELECT camera_id, window_start, detections FROM traffic_density_1m FINAL"
    ).result_rows
    assert {(c, w): d for c, w, d in stored} == latest


def publish_steadily(
    kafka: KafkaSettings, frames: list, facts: list, seconds: float, hurry: threading.Event
) -> None:
    """The dataset, spread evenly over `seconds` as cameras would send it, the rest at once
    when `hurry` is set."""
    producer = EventProducer(kafka, client_id="test-stream")
    started = time.monotonic()
    for i, event in enumerate(frames):
        producer.publish(DETECTIONS_TOPIC, event.camera_id, event)
        hurry.wait(max(0.0, started + seconds * i / len(frames) - time.monotonic()))
    producer.flush()
    publish(kafka, [], [*facts, *facts_failing_quality()])
