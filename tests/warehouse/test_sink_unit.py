"""Sink logic without a broker or server: row mapping, batching, commit-after-insert, retry."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError
from confluent_kafka import TopicPartition

from schemas import (
    CAMERA_HEALTH_TOPIC,
    DETECTIONS_TOPIC,
    TRAFFIC_DENSITY_TOPIC,
    CameraHealth,
    FrameDetections,
    TrafficDensity,
)
from warehouse import sink as sink_module
from warehouse.sink import (
    COLUMNS,
    Batch,
    Sink,
    camera_health_rows,
    density_rows,
    detection_rows,
)

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


class FakeMessage:
    def __init__(self, topic: str, value: bytes, offset: int, partition: int = 0) -> None:
        self._topic, self._value, self._offset, self._partition = topic, value, offset, partition

    def topic(self) -> str:
        return self._topic

    def value(self) -> bytes:
        return self._value

    def key(self) -> bytes:
        return b"cam"

    def offset(self) -> int:
        return self._offset

    def partition(self) -> int:
        return self._partition

    def error(self) -> None:
        return None


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        assert asynchronous is False
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


class FlakyClient:
    """Fails the first `failures` inserts, then records rows."""

    def __init__(self, failures: int, log: list[str]) -> None:
        self.failures = failures
        self.rows: dict[str, list[list[Any]]] = {}
        self.tokens: list[tuple[str, str]] = []
        self.log = log

    def insert(
        self, table: str, rows: list[list[Any]], column_names: list[str], settings: dict[str, str]
    ) -> None:
        self.tokens.append((table, settings["insert_deduplication_token"]))
        if self.failures:
            self.failures -= 1
            self.log.append("insert failed")
            raise OperationalError("connection refused")
        assert column_names == COLUMNS[table]
        assert all(len(r) == len(column_names) for r in rows)
        self.rows.setdefault(table, []).extend(rows)
        self.log.append(f"insert {table}")


class FakeProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def flush(self) -> None:
        self.log.append("flush")


def make_sink(client: FlakyClient, log: list[str]) -> tuple[Sink, FakeConsumer]:
    sink = Sink.__new__(Sink)
    sink._client_factory = lambda: client  # type: ignore[assignment,return-value]
    sink._client = None
    sink._inserting = ""
    sink.retry_initial_s = 0.001
    sink.retry_max_s = 0.01
    sink.producer = FakeProducer(log)  # type: ignore[assignment]
    consumer = FakeConsumer()
    sink.consumer = consumer  # type: ignore[assignment]
    sink._routes = {r.topic.name: r for r in sink_module.ROUTES}
    sink.dead_letters = None  # type: ignore[assignment]
    sink.gate = None
    sink.messages_committed = 0
    sink.first_message_at = None
    sink.stage_seconds = dict.fromkeys(sink_module.STAGES, 0.0)
    return sink, consumer


def test_detection_rows_match_table_columns() -> None:
    event = FrameDetections.from_bytes(example("frame_detections-1-0-0.json"))
    rows = detection_rows(event)
    assert len(rows["frames"]) == 1 and len(rows["detections"]) == len(event.detections)
    frame = dict(zip(COLUMNS["frames"], rows["frames"][0], strict=True))
    assert frame["detections"] == 2 and frame["camera_id"] == "hue-le-loi-01"
    box = dict(zip(COLUMNS["detections"], rows["detections"][1], strict=True))
    assert (box["det_index"], box["class_name"], box["x2"]) == (1, "person", 170)


@pytest.mark.parametrize("route", sink_module.ROUTES, ids=lambda r: r.topic.name)
def test_a_routes_fast_record_makes_the_rows_its_model_makes(route: sink_module.Route) -> None:
    schema = route.topic.schema
    payload = example(f"{schema.SCHEMA_NAME}-{schema.SCHEMA_VERSION}.json")
    record = route.decoder.decode_fast(payload)
    assert record is not None and not isinstance(record, schema)
    assert route.to_rows(record) == route.to_rows(schema.from_bytes(payload))


def test_riders_are_stored_with_their_vehicle() -> None:
    event = FrameDetections.from_bytes(example("frame_detections-1-1-0.json"))
    boxes = [
        dict(zip(COLUMNS["detections"], r, strict=True))
        for r in detection_rows(event)["detections"]
    ]
    stored = [(b["class_name"], b["riders"], b["rider_of"], b["track_id"]) for b in boxes]
    assert stored == [
        ("motorcycle", 1, None, 1795332611000000),
        ("person", 0, 0, 1795332611000001),  # rides box 0: not a pedestrian
        ("person", 0, None, 1795332611000002),
    ]


def test_density_rows_match_table_columns() -> None:
    fact = TrafficDensity.from_bytes(example("traffic_density-1-0-0.json"))
    row = dict(
        zip(COLUMNS["traffic_density_1m"], density_rows(fact)["traffic_density_1m"][0], strict=True)
    )
    assert row["pcu"] == pytest.approx(102.6) and row["frames"] == 120


def test_offsets_commit_only_after_insert_succeeds_and_retry_loses_nothing() -> None:
    log: list[str] = []
    client = FlakyClient(failures=2, log=log)
    sink, consumer = make_sink(client, log)
    batch = Batch()
    detections = example("frame_detections-1-0-0.json")
    for offset in (7, 8):
        sink._accept(batch, FakeMessage(DETECTIONS_TOPIC.name, detections, offset))  # type: ignore[arg-type]
    fact = example("traffic_density-1-0-0.json")
    sink._accept(batch, FakeMessage(TRAFFIC_DENSITY_TOPIC.name, fact, 3, partition=1))  # type: ignore[arg-type]
    sink.write(batch, threading.Event())
    assert log[:2] == ["insert failed", "insert failed"]
    assert log[-1] == "flush" and consumer.commits == [
        [(DETECTIONS_TOPIC.name, 0, 9), (TRAFFIC_DENSITY_TOPIC.name, 1, 4)]
    ]
    assert len(client.rows["frames"]) == 2 and len(client.rows["traffic_density_1m"]) == 1
    # every attempt at one batch carries the same token, so the server can drop a repeat
    frame_tokens = {token for table, token in client.tokens if table == "frames"}
    assert len(frame_tokens) == 1 and len(client.tokens) == 2 + 3  # 2 failed + 3 tables


def test_a_long_outage_is_retried_through_without_giving_up() -> None:
    log: list[str] = []
    client = FlakyClient(failures=1100, log=log)  # past 2.0**1024: the backoff must not overflow
    sink, consumer = make_sink(client, log)
    sink.retry_initial_s = sink.retry_max_s = 1e-6
    batch = Batch()
    fact = example("traffic_density-1-0-0.json")
    sink._accept(batch, FakeMessage(TRAFFIC_DENSITY_TOPIC.name, fact, 0))  # type: ignore[arg-type]
    sink.write(batch, threading.Event())
    assert log.count("insert failed") == 1100 and len(client.rows["traffic_density_1m"]) == 1
    assert consumer.commits == [[(TRAFFIC_DENSITY_TOPIC.name, 0, 1)]]


def test_stopping_during_an_outage_commits_nothing() -> None:
    log: list[str] = []
    sink, consumer = make_sink(FlakyClient(failures=10**6, log=log), log)
    batch = Batch()
    sink._accept(
        batch,
        FakeMessage(
            TRAFFIC_DENSITY_TOPIC.name,  # type: ignore[arg-type]
            example("traffic_density-1-0-0.json"),
            0,
        ),
    )
    stop = threading.Event()
    stop.set()
    with pytest.raises(RuntimeError, match="re-delivered"):
        sink.write(batch, stop)
    assert consumer.commits == []


def test_invalid_message_is_dead_lettered_and_still_committed() -> None:
    log: list[str] = []
    sink, consumer = make_sink(FlakyClient(0, log), log)
    refused: list[str] = []

    class Letters:
        def send(self, message: Any, reason: str) -> None:
            refused.append(reason)

    sink.dead_letters = Letters()  # type: ignore[assignment]
    batch = Batch()
    bad = json.dumps({"camera_id": "cam"}).encode()
    sink._accept(batch, FakeMessage(DETECTIONS_TOPIC.name, bad, 5))  # type: ignore[arg-type]
    sink.write(batch, threading.Event())
    assert refused and "frame_id: Field required" in refused[0]
    assert consumer.commits == [[(DETECTIONS_TOPIC.name, 0, 6)]]
    assert client_rows_empty(sink)


def test_batch_token_depends_on_table_positions_and_content() -> None:
    def batch_of(*offsets: int, content: bytes = b"x") -> Batch:
        batch = Batch()
        for offset in offsets:
            batch.messages.append(FakeMessage(DETECTIONS_TOPIC.name, content, offset))  # type: ignore[arg-type]
        return batch

    assert batch_of(5, 6, 7).token("frames") == batch_of(7, 5, 6).token("frames")  # a retry
    assert batch_of(5, 6, 7).token("frames") != batch_of(5, 6, 7, 8).token("frames")
    assert batch_of(5, 6, 7).token("frames") != batch_of(5, 6, 7).token("detections")
    # the same offsets with other messages (topic recreated, broker restarted) are new data,
    # not a repeat the server may drop
    assert batch_of(0, 1).token("frames") != batch_of(0, 1, content=b"y").token("frames")


def client_rows_empty(sink: Sink) -> bool:
    client = sink._client
    return client is None or not any(getattr(client, "rows", {}).values())


def test_rows_failing_their_suite_are_quarantined_with_their_source_and_the_rest_loads() -> None:
    from warehouse.quality import ROWS, QualityGate

    def loaded() -> float:
        return ROWS.labels("traffic_density_1m", "loaded")._value.get()

    log: list[str] = []
    client = FlakyClient(0, log)
    sink, consumer = make_sink(client, log)
    sink.gate = QualityGate()
    good = TrafficDensity.model_validate_json(example("traffic_density-1-0-0.json"))
    bad = good.model_copy(update={"pcu": good.pcu + 7, "vehicle_class": "tractor"})
    batch = Batch()
    for offset, fact in enumerate([good, bad, good]):
        message = FakeMessage(TRAFFIC_DENSITY_TOPIC.name, fact.model_dump_json().encode(), offset)
        sink._accept(batch, message)  # type: ignore[arg-type]
    before = loaded()
    sink.write(batch, threading.Event())

    assert len(client.rows["traffic_density_1m"]) == 2
    [quarantined] = client.rows["quarantine"]
    row = dict(zip(COLUMNS["quarantine"], quarantined, strict=True))
    assert row["failed_expectations"] == [
        "expect_column_values_to_be_in_set(vehicle_class)",
        "expect_column_values_to_be_between(pcu_error)",
    ]
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == (
        TRAFFIC_DENSITY_TOPIC.name,
        0,
        1,
    )
    assert row["table_name"] == "traffic_density_1m"
    assert json.loads(row["row_json"])["vehicle_class"] == "tractor"
    assert loaded() - before == 2
    assert consumer.commits == [[(TRAFFIC_DENSITY_TOPIC.name, 0, 3)]]  # bad row handled too


def test_tables_without_a_suite_are_inserted_while_the_others_are_validated() -> None:
    log: list[str] = []
    client = FlakyClient(0, log)
    sink, consumer = make_sink(client, log)

    class DetectionsFirstGate:
        """A suite for density only, whose check waits until detections were inserted."""

        def tables(self) -> set[str]:
            return {"traffic_density_1m"}

        def split(self, table: str, rows: list[Any], columns: list[str]) -> tuple[list, list]:
            deadline = time.monotonic() + 10
            while "insert detections" not in log and time.monotonic() < deadline:
                time.sleep(0.001)
            log.append(f"checked {table}")
            return rows, []

        def record_loaded(self, table: str, rows: int) -> None:
            log.append(f"loaded {table} {rows}")

    sink.gate = DetectionsFirstGate()  # type: ignore[assignment]
    batch = Batch()
    frame = example("frame_detections-1-0-0.json")
    sink._accept(batch, FakeMessage(DETECTIONS_TOPIC.name, frame, 0))  # type: ignore[arg-type]
    fact = example("traffic_density-1-0-0.json")
    sink._accept(batch, FakeMessage(TRAFFIC_DENSITY_TOPIC.name, fact, 0))  # type: ignore[arg-type]
    sink.write(batch, threading.Event())
    inserts = [entry for entry in log if entry.startswith(("insert", "checked"))]
    assert inserts.index("insert detections") < inserts.index("checked traffic_density_1m")
    assert inserts[-1] == "insert traffic_density_1m"  # only once checked
    assert "loaded traffic_density_1m 1" in log and log[-1] == "flush"
    assert len(consumer.commits) == 1


def test_a_client_side_error_stops_the_sink_instead_of_retrying() -> None:
    from clickhouse_connect.driver.exceptions import ProgrammingError

    class BrokenClient(FlakyClient):
        def insert(self, *args: Any, **kwargs: Any) -> None:
            self.log.append("insert")
            raise ProgrammingError("Insert data column count does not match column names")

    log: list[str] = []
    sink, consumer = make_sink(BrokenClient(0, log), log)
    batch = Batch()
    fact = example("traffic_density-1-0-0.json")
    sink._accept(batch, FakeMessage(TRAFFIC_DENSITY_TOPIC.name, fact, 0))  # type: ignore[arg-type]
    with pytest.raises(ProgrammingError):
        sink.write(batch, threading.Event())
    assert log == ["insert"] and consumer.commits == []


def health_report(**changes: Any) -> CameraHealth:
    report = CameraHealth.from_bytes(example("camera_health-1-0-0.json"))
    return report.model_copy(update=changes)


def test_camera_health_rows_match_table_columns() -> None:
    row = dict(
        zip(
            COLUMNS["camera_health_1m"],
            camera_health_rows(health_report())["camera_health_1m"][0],
            strict=True,
        )
    )
    assert (row["camera_id"], row["covered_s"], row["up_share"]) == ("hue-le-loi-01", 60, 0.9)
    assert (row["frames_published"], row["lag_ms_mean"], row["lag_ms_max"]) == (216, 182.4, 911)
    routes = {r.topic.name: r.to_rows for r in sink_module.ROUTES}
    assert routes[CAMERA_HEALTH_TOPIC.name] is camera_health_rows


def test_camera_health_suite_passes_live_and_dead_cameras_holds_back_the_inconsistent() -> None:
    from warehouse.quality import QualityGate

    dead = health_report(
        frames_decoded=0,
        frames_published=0,
        fps=0.0,
        up_share=0.0,
        lag_ms_mean=None,
        lag_ms_max=None,
        reconnects=7,
    )
    partial = health_report(covered_s=20.5, frames_published=41, fps=2.0, lag_ms_mean=None)
    wrong_fps = health_report(fps=9.5)
    up_without_frames = dead.model_copy(update={"up_share": 0.5})
    rows = [
        camera_health_rows(r)["camera_health_1m"][0]
        for r in (health_report(), dead, partial, wrong_fps, up_without_frames)
    ]
    valid, failed = QualityGate().split("camera_health_1m", rows, COLUMNS["camera_health_1m"])
    assert valid == rows[:2]
    assert {q.index: q.failed_expectations for q in failed} == {
        2: ("expect_column_values_to_be_in_set(lag_without_frames)",),
        3: ("expect_column_values_to_be_between(fps_error)",),
        4: ("expect_column_values_to_be_in_set(up_without_frames)",),
    }


class ScriptedConsumer(FakeConsumer):
    """Hands out one density fact per `consume` (offsets 0, 1, ...), then sets `stop`.

    On the call that hands out offset `release_at` it first lets `released` go, so the
    writer's first insert is held while the reader goes on reading.
    """

    def __init__(self, messages: int, release_at: int, stop: threading.Event) -> None:
        super().__init__()
        self.fact = example("traffic_density-1-0-0.json")
        self.messages, self.release_at, self.stop = messages, release_at, stop
        self.handed = 0
        self.released = threading.Event()
        self.closed = False

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        assert TRAFFIC_DENSITY_TOPIC.name in topics
        self.callbacks = callbacks  # on_assign, on_revoke, on_lost: called inside consume

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        if self.handed == self.release_at:
            self.released.set()
        if self.handed == self.messages:
            self.stop.set()
            return []
        self.handed += 1
        return [FakeMessage(TRAFFIC_DENSITY_TOPIC.name, self.fact, self.handed - 1)]

    def close(self) -> None:
        self.closed = True


class HeldClient(FlakyClient):
    """Holds its first insert until `released`; records what each insert held."""

    def __init__(self, released: threading.Event, log: list[str]) -> None:
        super().__init__(0, log)
        self.released = released
        self.batches: list[int] = []

    def insert(
        self, table: str, rows: list[list[Any]], column_names: list[str], settings: dict[str, str]
    ) -> None:
        assert self.released.wait(10), "the reader never got past the held insert"
        self.batches.append(len(rows))
        super().insert(table, rows, column_names, settings)


def run_scripted(messages: int, release_at: int) -> tuple[Sink, ScriptedConsumer, HeldClient]:
    log: list[str] = []
    stop = threading.Event()
    consumer = ScriptedConsumer(messages, release_at, stop)
    client = HeldClient(consumer.released, log)
    sink, _ = make_sink(client, log)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.batch_rows, sink.batch_s = 1000, 0.0  # every batch is due at once, by age
    sink.run(stop)
    return sink, consumer, client


def test_reading_goes_on_while_a_batch_is_stored_and_batches_commit_in_order() -> None:
    sink, consumer, client = run_scripted(messages=6, release_at=4)
    # the first batch (offset 0) closed at once; while its insert was held, offsets 1-3 were
    # read into the next batch, which could not close before the first was stored
    assert client.batches[0] == 1 and client.batches[1] >= 3
    assert sum(client.batches) == 6 and len(client.rows["traffic_density_1m"]) == 6
    committed = [offset for commit in consumer.commits for _, _, offset in commit]
    assert committed == sorted(committed) and committed[0] == 1 and committed[-1] == 6
    assert len(consumer.commits) == len(client.batches)  # one commit per stored batch
    assert sink.messages_committed == 6 and consumer.closed


def test_a_batch_ages_from_its_first_message_not_from_an_idle_spell_before_it() -> None:
    class IdleFirst(ScriptedConsumer):
        """Nothing for `idle_s` (a quiet street, a group join), then messages at once."""

        idle_s = 1.0

        def consume(self, n: int, timeout: float) -> list[FakeMessage]:
            if not hasattr(self, "started"):
                self.started = time.monotonic()
            if time.monotonic() - self.started < self.idle_s:
                time.sleep(0.01)
                return []
            return super().consume(n, timeout)

    log: list[str] = []
    stop = threading.Event()
    consumer = IdleFirst(messages=5, release_at=0, stop=stop)
    client = HeldClient(consumer.released, log)
    sink, _ = make_sink(client, log)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.batch_rows, sink.batch_s = 1000, 0.8  # shorter than the idle spell
    sink.run(stop)
    assert client.batches == [5]  # not [1, 4]: the first message found a batch already "old"


def test_a_failed_store_stops_the_run_with_its_error_and_commits_nothing_of_it() -> None:
    from clickhouse_connect.driver.exceptions import ProgrammingError

    class BrokenClient(HeldClient):
        def insert(self, *args: Any, **kwargs: Any) -> None:
            raise ProgrammingError("Insert data column count does not match column names")

    stop = threading.Event()
    log: list[str] = []
    consumer = ScriptedConsumer(messages=3, release_at=0, stop=stop)
    sink, _ = make_sink(BrokenClient(consumer.released, log), log)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.batch_rows, sink.batch_s = 1000, 0.0
    with pytest.raises(ProgrammingError):
        sink.run(stop)
    assert consumer.commits == [] and sink.messages_committed == 0 and consumer.closed


def test_a_failed_read_stops_a_writer_retrying_through_an_outage() -> None:
    from confluent_kafka import KafkaException

    class FailingConsumer(ScriptedConsumer):
        def consume(self, n: int, timeout: float) -> list[FakeMessage]:
            if self.handed == 1:
                raise KafkaException("broker gone")
            return super().consume(n, timeout)

    stop = threading.Event()
    log: list[str] = []
    consumer = FailingConsumer(messages=3, release_at=0, stop=stop)
    sink, _ = make_sink(FlakyClient(failures=10**6, log=log), log)  # the warehouse is down
    sink.consumer = consumer  # type: ignore[assignment]
    sink.batch_rows, sink.batch_s = 1000, 0.0
    raised: list[BaseException] = []

    def run() -> None:
        try:
            sink.run(stop)
        except BaseException as exc:
            raised.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(30)
    hung = runner.is_alive()
    stop.set()  # lets a hung writer go, whatever happened
    assert not hung, "the sink kept waiting for a writer that retries forever"
    assert [type(e) for e in raised] == [KafkaException]
    assert "insert failed" in log and consumer.commits == [] and consumer.closed


def test_a_gate_that_cannot_load_its_suites_stops_the_sink_before_it_consumes() -> None:
    class UnloadableGate:
        def tables(self) -> set[str]:
            raise ValueError("widgets.json: no value for suite parameters ['colours']")

    stop = threading.Event()
    log: list[str] = []
    consumer = ScriptedConsumer(messages=3, release_at=0, stop=stop)
    sink, _ = make_sink(FlakyClient(failures=0, log=log), log)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.gate = UnloadableGate()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="no value for suite parameters"):
        sink.run(stop)
    assert consumer.handed == 0 and consumer.commits == [] and consumer.closed


class RebalancingConsumer(ScriptedConsumer):
    """Calls `callback` (on_revoke or on_lost) inside the `consume` call that would hand out
    offset `at`, as librdkafka does when the group rebalances; records the offsets committed
    when the callback returned."""

    def __init__(self, messages: int, at: int, callback: str, stop: threading.Event) -> None:
        super().__init__(messages, release_at=0, stop=stop)
        self.at, self.callback = at, callback
        self.committed_by_then: list[int] | None = None  # set once the callback has run

    def consume(self, n: int, timeout: float) -> list[FakeMessage]:
        if self.handed == self.at and self.committed_by_then is None:
            partitions = [TopicPartition(TRAFFIC_DENSITY_TOPIC.name, 0)]
            self.callbacks[self.callback](self, partitions)
            self.committed_by_then = [o for c in self.commits for _, _, o in c]
        return super().consume(n, timeout)


def run_rebalanced(callback: str) -> tuple[Sink, RebalancingConsumer, FlakyClient]:
    log: list[str] = []
    stop = threading.Event()
    consumer = RebalancingConsumer(messages=8, at=5, callback=callback, stop=stop)
    client = FlakyClient(failures=0, log=log)
    sink, _ = make_sink(client, log)
    sink.consumer = consumer  # type: ignore[assignment]
    sink.batch_rows, sink.batch_s = 3, 3600.0  # batches close at 3 messages, never by age
    sink.run(stop)
    return sink, consumer, client


def test_partitions_revoked_mid_batch_are_stored_and_committed_before_they_move() -> None:
    sink, consumer, client = run_rebalanced("on_revoke")
    # offsets 0-2 were a full batch, 3-4 a partial one: both stored and committed in the
    # callback, so the next owner starts at offset 5 and nothing is inserted twice
    assert consumer.committed_by_then is not None and consumer.committed_by_then[-1] == 5
    assert len(client.rows["traffic_density_1m"]) == 8 and sink.messages_committed == 8


def test_partitions_lost_drop_what_is_held_uncommitted_for_the_new_owner() -> None:
    sink, consumer, client = run_rebalanced("on_lost")
    # the group moved on: offsets 3-4 (being read) can no longer be committed by this
    # replica; they are dropped, neither inserted nor committed, and the rest goes on
    assert (
        consumer.committed_by_then is not None and max(consumer.committed_by_then, default=0) <= 3
    )
    committed = [o for c in consumer.commits for _, _, o in c]
    assert 5 not in committed and committed[-1] == 8
    assert len(client.rows["traffic_density_1m"]) == 6 and sink.messages_committed == 6
