"""The sink: Kafka topics -> ClickHouse tables in batches; offsets move after the insert.

A batch closes at `batch_rows` messages, or once it is `batch_s` seconds old and the batch
before it is stored; it is validated and inserted table by table (by a writer thread, while
the next batch is read), and only then are the consumed offsets committed. So under load
batches grow towards `batch_rows` by themselves, which spreads the fixed cost of a
validation run and an insert over more rows, and at a trickle they close every `batch_s`.
A failed insert is retried with backoff while the batch is held (the warehouse may be down
for a while); nothing is skipped.

Exactly-once effect from at-least-once delivery, in two layers:
1. Every table is a ReplacingMergeTree whose sorting key is the row's natural identity
   (frame id + box index, camera/class/window, topic/partition/offset...). Any re-delivery,
   whatever batch it lands in, collapses to one row: reads with FINAL are exact at once,
   and merges remove the copies at rest. This is what correctness rests on, because a batch
   re-delivered after a crash need not have the same boundaries as the one that was lost.
2. Each insert carries an `insert_deduplication_token` derived from the batch's messages
   ranges, and the tables keep a deduplication window: a retried insert of the very same
   batch (the server wrote it but the acknowledgement was lost) is dropped by the server
   before it reaches materialized views or needs a merge.
We chose this over a transactional offset store in ClickHouse: it needs no second write per
batch, works the same on a real server and the embedded endpoint, and keeps the sink
stateless.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError, ProgrammingError
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import Counter

from citycam.config import KafkaSettings, SinkSettings
from citycam.kafka import DeadLetterQueue, EventProducer, commit_processed, consumer_config, is_data
from citycam.retry import backoff_s
from schemas import (
    ALERTS_TOPIC,
    CAMERA_HEALTH_TOPIC,
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    LINE_CROSSINGS_TOPIC,
    TRAFFIC_DENSITY_TOPIC,
    ZONE_OCCUPANCY_TOPIC,
    CameraHealth,
    ContractError,
    DeadLetter,
    FrameDetections,
    LineCrossings,
    TopicSpec,
    TrafficAlert,
    TrafficDensity,
    ZoneOccupancy,
)
from schemas.fast_decoding import FastDecoder
from warehouse.quality import QUARANTINE_COLUMNS, QualityGate, quarantine_row

log = logging.getLogger(__name__)

ROWS_WRITTEN = Counter("citycam_sink_rows", "Rows inserted", ["table"])
INSERT_RETRIES = Counter("citycam_sink_insert_retries", "Failed insert attempts")
SINK_DEAD_LETTERS = Counter("citycam_sink_dead_letters", "Messages refused")
STAGE_SECONDS = Counter(
    "citycam_sink_stage_seconds",
    "Time spent per stage (the writer's quality and insert overlap the reading and each "
    "other): fetch (waiting for messages), read (contract check, rows), wait (for the writer "
    "to store the batch before), quality (expectation suites), insert (including retries), "
    "commit (dead letters flushed, offsets committed)",
    ["stage"],
)
STAGES = ("fetch", "read", "wait", "quality", "insert", "commit")

Rows = dict[str, list[list[Any]]]

# Row builders read their event's attributes only: they take the contract's model or the
# record its fast decoder returns (schemas/fast_decoding.py), which has the same fields.


def detection_rows(event: FrameDetections) -> Rows:
    frame = [
        event.camera_id,
        event.frame_id,
        event.captured_at,
        event.frame_uri,
        event.width,
        event.height,
        event.model_name,
        event.model_version,
        event.inferred_at,
        len(event.detections),
    ]
    boxes = [
        [
            event.camera_id,
            event.frame_id,
            event.captured_at,
            i,
            d.class_name,
            d.class_id,
            d.score,
            d.bbox.x1,
            d.bbox.y1,
            d.bbox.x2,
            d.bbox.y2,
            d.track_id,
            d.riders,
            d.rider_of,
            event.model_name,
            event.model_version,
        ]
        for i, d in enumerate(event.detections)
    ]
    return {"frames": [frame], "detections": boxes}


def density_rows(fact: TrafficDensity) -> Rows:
    return {
        "traffic_density_1m": [
            [
                fact.camera_id,
                fact.window_start,
                fact.window_end,
                fact.vehicle_class,
                fact.frames,
                fact.detections,
                fact.mean_in_view,
                fact.max_in_view,
                fact.pcu_factor,
                fact.pcu,
                fact.pcu_version,
                fact.emitted_at,
            ]
        ]
    }


def line_crossing_rows(fact: LineCrossings) -> Rows:
    return {
        "line_crossings_1m": [
            [
                fact.camera_id,
                fact.line_id,
                fact.window_start,
                fact.window_end,
                fact.direction,
                fact.orientation,
                fact.vehicle_class,
                fact.frames,
                fact.crossings,
                fact.pcu_factor,
                fact.pcu,
                fact.pcu_per_hour,
                fact.pcu_version,
                fact.speed_samples,
                fact.speed_kmh_mean,
                fact.speed_kmh_p85,
                fact.emitted_at,
            ]
        ]
    }


def zone_occupancy_rows(fact: ZoneOccupancy) -> Rows:
    return {
        "zone_occupancy_1m": [
            [
                fact.camera_id,
                fact.zone_id,
                fact.zone_kind,
                fact.window_start,
                fact.window_end,
                fact.frames,
                fact.objects,
                fact.mean_objects,
                fact.max_objects,
                fact.occupied_frames,
                fact.occupied_share,
                fact.mean_pcu,
                fact.pcu_version,
                dict(fact.mean_objects_by_class),
                fact.emitted_at,
            ]
        ]
    }


def alert_rows(alert: TrafficAlert) -> Rows:
    evidence = alert.evidence
    return {
        "alerts": [
            [
                alert.alert_id,
                alert.camera_id,
                alert.kind,
                alert.zone_id,
                alert.state,
                alert.severity,
                alert.started_at,
                alert.ended_at,
                alert.as_of,
                alert.metric,
                alert.value,
                alert.threshold,
                alert.baseline,
                alert.baseline_std,
                alert.z_score,
                alert.deviation,
                alert.occupied_share,
                alert.speed_kmh,
                alert.speed_threshold_kmh,
                evidence.frame_id if evidence else None,
                evidence.frame_uri if evidence else None,
                evidence.captured_at if evidence else None,
                alert.emitted_at,
            ]
        ]
    }


def camera_health_rows(report: CameraHealth) -> Rows:
    return {
        "camera_health_1m": [
            [
                report.camera_id,
                report.window_start,
                report.window_end,
                report.covered_s,
                report.frames_decoded,
                report.frames_published,
                report.decode_errors,
                report.reconnects,
                report.fps,
                report.target_fps,
                report.up_share,
                report.lag_ms_mean,
                report.lag_ms_max,
                report.emitted_at,
            ]
        ]
    }


def dead_letter_rows(letter: DeadLetter) -> Rows:
    return {
        "dead_letters": [
            [
                letter.stage,
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                letter.reason,
                letter.value_b64,
                letter.failed_at,
            ]
        ],
    }


COLUMNS: dict[str, list[str]] = {
    "frames": [
        "camera_id",
        "frame_id",
        "captured_at",
        "frame_uri",
        "width",
        "height",
        "model_name",
        "model_version",
        "inferred_at",
        "detections",
    ],
    "detections": [
        "camera_id",
        "frame_id",
        "captured_at",
        "det_index",
        "class_name",
        "class_id",
        "score",
        "x1",
        "y1",
        "x2",
        "y2",
        "track_id",
        "riders",
        "rider_of",
        "model_name",
        "model_version",
    ],
    "traffic_density_1m": [
        "camera_id",
        "window_start",
        "window_end",
        "vehicle_class",
        "frames",
        "detections",
        "mean_in_view",
        "max_in_view",
        "pcu_factor",
        "pcu",
        "pcu_version",
        "emitted_at",
    ],
    "line_crossings_1m": [
        "camera_id",
        "line_id",
        "window_start",
        "window_end",
        "direction",
        "orientation",
        "vehicle_class",
        "frames",
        "crossings",
        "pcu_factor",
        "pcu",
        "pcu_per_hour",
        "pcu_version",
        "speed_samples",
        "speed_kmh_mean",
        "speed_kmh_p85",
        "emitted_at",
    ],
    "zone_occupancy_1m": [
        "camera_id",
        "zone_id",
        "zone_kind",
        "window_start",
        "window_end",
        "frames",
        "objects",
        "mean_objects",
        "max_objects",
        "occupied_frames",
        "occupied_share",
        "mean_pcu",
        "pcu_version",
        "mean_objects_by_class",
        "emitted_at",
    ],
    "alerts": [
        "alert_id",
        "camera_id",
        "kind",
        "zone_id",
        "state",
        "severity",
        "started_at",
        "ended_at",
        "as_of",
        "metric",
        "value",
        "threshold",
        "baseline",
        "baseline_std",
        "z_score",
        "deviation",
        "occupied_share",
        "speed_kmh",
        "speed_threshold_kmh",
        "evidence_frame_id",
        "evidence_frame_uri",
        "evidence_captured_at",
        "emitted_at",
    ],
    "camera_health_1m": [
        "camera_id",
        "window_start",
        "window_end",
        "covered_s",
        "frames_decoded",
        "frames_published",
        "decode_errors",
        "reconnects",
        "fps",
        "target_fps",
        "up_share",
        "lag_ms_mean",
        "lag_ms_max",
        "emitted_at",
    ],
    "dead_letters": [
        "stage",
        "source_topic",
        "source_partition",
        "source_offset",
        "reason",
        "value_b64",
        "failed_at",
    ],
    "quarantine": QUARANTINE_COLUMNS,
}


def tune_gc_for_batches() -> None:
    """Call once in a sink's process, after start-up.

    A sink holds a batch of up to ~10^5 rows, each a list, between reading and inserting.
    Python's collector runs every 700 allocations, and in full as the heap grows. It then
    spends more time walking the batch than the contract check spends building it. In the
    bench, the sink process's CPU seconds fell by about a fifth: 5.6-5.7 to 4.0-4.6.
    What was alive after start-up is frozen out of the collector's sight, and collections
    become rarer. Rows have no reference cycles for it to find."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


@dataclass(frozen=True)
class Route:
    """A topic, read with its contract's fast decoder, and the rows its events become."""

    topic: TopicSpec
    to_rows: Callable[[Any], Rows]
    decoder: FastDecoder[Any] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "decoder", FastDecoder(self.topic.schema))


ROUTES: tuple[Route, ...] = (
    Route(DETECTIONS_TOPIC, detection_rows),
    Route(TRAFFIC_DENSITY_TOPIC, density_rows),
    Route(LINE_CROSSINGS_TOPIC, line_crossing_rows),
    Route(ZONE_OCCUPANCY_TOPIC, zone_occupancy_rows),
    Route(ALERTS_TOPIC, alert_rows),
    Route(CAMERA_HEALTH_TOPIC, camera_health_rows),
    Route(DEAD_LETTERS_TOPIC, dead_letter_rows),
)


@dataclass
class Batch:
    rows: Rows = field(default_factory=lambda: {table: [] for table in COLUMNS})
    # per table, the message each row came from (quarantined rows name their source)
    sources: dict[str, list[Message]] = field(default_factory=lambda: {t: [] for t in COLUMNS})
    messages: list[Message] = field(default_factory=list)
    # when its first message was read: a batch's age counts from there, as Kafka's linger
    # does, so the first batch after an idle spell (or a group join) is not closed at once
    opened_at: float = 0.0
    _digest: str | None = field(default=None, init=False, repr=False)

    def token(self, table: str) -> str:
        """Deterministic per batch content: every message's position and bytes.

        Positions alone are not enough: offsets start again at 0 when a topic is recreated
        or an in-memory broker restarts, and the server would then drop a new batch as a
        repeat of an old one with the same offsets (found by the demo: rows lost silently).
        """
        if self._digest is None:
            digest = hashlib.sha256()
            for m in sorted(self.messages, key=lambda m: (m.topic(), m.partition(), m.offset())):
                digest.update(f"{m.topic()}/{m.partition()}@{m.offset()}:".encode())
                digest.update(hashlib.sha256(m.value() or b"").digest())
            self._digest = digest.hexdigest()
        return hashlib.sha256(f"{table}|{self._digest}".encode()).hexdigest()

    def add(self, message: Message, rows: Rows) -> None:
        if not self.messages:
            self.opened_at = time.monotonic()
        self.messages.append(message)
        for table, table_rows in rows.items():
            self.rows[table].extend(table_rows)
            self.sources[table].extend([message] * len(table_rows))

    def hold_back(self, gate: QualityGate) -> None:
        """Move the rows that fail their table's suite to the quarantine table's rows."""
        now = datetime.now(UTC)
        for table in sorted(gate.tables() & self.rows.keys()):
            valid, failed = gate.split(table, self.rows[table], COLUMNS[table])
            if not failed:
                continue
            sources = self.sources[table]
            for q in failed:
                source = sources[q.index]
                self.rows["quarantine"].append(
                    quarantine_row(
                        q, source.topic() or "", source.partition() or 0, source.offset() or 0, now
                    )
                )
            refused = {q.index for q in failed}
            self.sources[table] = [m for i, m in enumerate(sources) if i not in refused]
            self.rows[table] = valid


class Sink:
    def __init__(
        self,
        client_factory: Callable[[], Client],
        kafka: KafkaSettings,
        producer: EventProducer,
        settings: SinkSettings,
        gate: QualityGate | None = None,
    ) -> None:
        # clickhouse-connect imports pandas at its first insert (to tell data frames from
        # rows), ~0.5 s of CPU: spent at start-up rather than by the first batch
        import pandas  # noqa: F401

        self._inserting = ""
        self.gate = gate
        self._client_factory = client_factory
        self._client: Client | None = None
        self.batch_rows = settings.batch_rows
        self.batch_s = settings.batch_s
        self.retry_initial_s = settings.retry_initial_s
        self.retry_max_s = settings.retry_max_s
        self.producer = producer
        self.dead_letters = DeadLetterQueue(producer, stage="sink")
        self.consumer = Consumer(consumer_config(kafka, settings.group_id))
        self._routes = {route.topic.name: route for route in ROUTES}
        self.messages_committed = 0  # progress, read by benchmarks and tests
        self.stage_seconds = dict.fromkeys(STAGES, 0.0)  # where the time went (benchmarks)
        self.first_message_at: float | None = None  # monotonic time of the first message
        self._reading = Batch()  # the batch being read
        self._stored: tuple[Batch, Future[None]] | None = None  # the batch the writer has
        self._writer: ThreadPoolExecutor | None = None  # while consuming
        self._stop = threading.Event()

    def run(self, stop_event: threading.Event) -> None:
        """Consume until `stop_event`, writing each batch as it closes.

        Two batches at most are in hand: one being read here while a writer thread validates
        and inserts the one before it. Validation (in the gate's own process when it is
        isolated) and the server's insert work then overlap the reading of the next batch.
        The consumer stays on this thread (a synchronous commit from another thread while
        this one consumes was seen to hang): each batch is committed here once stored,
        strictly in order.

        Replicas of the sink share the partitions of one consumer group. Before this one
        gives partitions up (another replica joined or left), it stores and commits what it
        holds, so the next owner starts where it stopped and no batch is inserted twice.
        """
        self._stop, self._reading, self._stored = stop_event, Batch(), None
        self.consumer.subscribe(
            list(self._routes),
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            if self.gate is not None:
                # an isolated gate loads while the consumer joins its group (seconds each);
                # a broken suite stops the sink here, before anything is consumed
                self.gate.tables()
            with ThreadPoolExecutor(1, thread_name_prefix="sink-writer") as writer:
                self._writer = writer
                try:
                    self._consume(stop_event)
                except BaseException:
                    stop_event.set()  # a writer retrying through an outage gives up too
                    raise
                finally:
                    self._writer = None  # closing hands nothing over after a failure
        finally:
            self.consumer.close()

    def _consume(self, stop_event: threading.Event) -> None:
        while not stop_event.is_set():
            with self._timed("fetch"):
                messages = self.consumer.consume(500, timeout=0.2)
            with self._timed("read"):
                for message in messages:
                    self._accept(self._reading, message)
            if self._stored is not None and self._stored[1].done():
                self._commit_stored()
            batch = self._reading
            full = len(batch.messages) >= self.batch_rows
            due = time.monotonic() - batch.opened_at >= self.batch_s and self._stored is None
            if batch.messages and (full or due):
                self._hand_to_writer()
        self._store_all()

    def _hand_to_writer(self) -> None:
        """Start storing the batch being read (after the writer's batch is committed)."""
        assert self._writer is not None
        self._commit_stored()
        self._stored = self._reading, self._writer.submit(self.store, self._reading, self._stop)
        self._reading = Batch()

    def _store_all(self) -> None:
        """Store and commit both batches in hand, in order."""
        if self._reading.messages:
            self._hand_to_writer()
        self._commit_stored()

    def _commit_stored(self) -> None:
        """Wait for the writer's batch (its error, if any, stops the sink here), commit it."""
        if self._stored is None:
            return
        batch, storing = self._stored
        with self._timed("wait"):
            storing.result()
        self._stored = None
        self.commit(batch)

    def _held(self) -> int:
        """Messages read but not yet committed."""
        stored = len(self._stored[0].messages) if self._stored else 0
        return stored + len(self._reading.messages)

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", _partition_list(partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Called inside `consume` before partitions move to another replica: store and
        commit everything read so far while this replica still owns it."""
        if self._writer is None:
            return  # closing after a failure: what is in hand stays uncommitted
        held = self._held()
        self._store_all()
        log.info("revoked %s, after storing %d messages", _partition_list(partitions), held)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """The group moved on without this replica (it was too slow to answer): its offsets
        can no longer be committed, so what it holds is dropped, to be re-delivered to the
        new owner (the tables collapse any row that lands twice)."""
        if self._stored is not None:
            with self._timed("wait"):
                self._stored[1].result()
        dropped = self._held()
        self._stored, self._reading = None, Batch()
        log.warning(
            "lost %s; %d messages left to their new owner", _partition_list(partitions), dropped
        )

    def _accept(self, batch: Batch, message: Message) -> None:
        if not is_data(message):
            return
        if self.first_message_at is None:
            self.first_message_at = time.monotonic()
        route = self._routes[message.topic() or ""]
        try:
            event = route.decoder.decode(message.value())
        except ContractError as exc:
            if route.topic is DEAD_LETTERS_TOPIC:
                log.error(
                    "unreadable dead letter at %s@%s skipped: %s",
                    message.partition(),
                    message.offset(),
                    exc.reason,
                )
            else:
                SINK_DEAD_LETTERS.inc()
                self.dead_letters.send(message, exc.reason)
            batch.add(message, {})  # refused is handled: its offset may move on
            return
        batch.add(message, route.to_rows(event))

    def write(self, batch: Batch, stop_event: threading.Event) -> None:
        """Store the batch, then commit its offsets."""
        self.store(batch, stop_event)
        self.commit(batch)

    def store(self, batch: Batch, stop_event: threading.Event) -> None:
        """Validate, then insert every table's rows, retrying until done.

        Validation runs once, before the retry loop: every attempt inserts the same rows, so
        the deduplication token stays truthful. Tables without a suite (detections: most of
        the rows) are inserted while the others are validated, which the isolated gate does
        in its own process. A client-side error (rows that do not fit the table) is a bug
        that retrying cannot fix: it stops the sink, offsets uncommitted.
        """
        checked = self.gate.tables() & batch.rows.keys() if self.gate is not None else set()
        unchecked = [t for t in batch.rows if t not in checked and t != "quarantine"]
        with ThreadPoolExecutor(1, thread_name_prefix="sink-quality") as checker:
            checking = checker.submit(self._check, batch) if checked else None
            with self._timed("insert"):
                self._insert_retrying(batch, unchecked, stop_event)
            if checking is not None:
                checking.result()
        with self._timed("insert"):
            self._insert_retrying(batch, [*sorted(checked), "quarantine"], stop_event)
        if self.gate is not None:
            for table, table_rows in batch.rows.items():
                if table != "quarantine":
                    self.gate.record_loaded(table, len(table_rows))

    def _check(self, batch: Batch) -> None:
        assert self.gate is not None
        with self._timed("quality"):
            batch.hold_back(self.gate)

    def commit(self, batch: Batch) -> None:
        """Move the offsets past a stored batch (dead letters acknowledged first)."""
        with self._timed("commit"):
            self.producer.flush()
            commit_processed(self.consumer, batch.messages)
        self.messages_committed += len(batch.messages)

    @contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            self.stage_seconds[stage] += elapsed
            STAGE_SECONDS.labels(stage).inc(elapsed)

    def _insert_retrying(
        self, batch: Batch, tables: list[str], stop_event: threading.Event
    ) -> None:
        attempt = 0
        while True:
            try:
                self._insert_all(batch, tables)
                break
            except (ProgrammingError, DataError):
                raise
            except (ClickHouseError, OSError) as exc:
                attempt += 1
                INSERT_RETRIES.inc()
                self._client = None  # reconnect: the endpoint may have restarted
                delay = backoff_s(attempt, self.retry_initial_s, self.retry_max_s)
                log.warning(
                    "insert into %s failed (attempt %d), retrying in %.1fs: %s",
                    self._inserting,
                    attempt,
                    delay,
                    exc,
                )
                if stop_event.wait(delay):
                    raise RuntimeError(
                        "sink stopped while the warehouse was unreachable; "
                        "the batch stays uncommitted and will be re-delivered"
                    ) from exc

    def _insert_all(self, batch: Batch, tables: list[str]) -> None:
        client = self._client or self._client_factory()
        self._client = client
        for table in tables:
            if batch.rows[table]:
                self._inserting = table
                client.insert(
                    table,
                    batch.rows[table],
                    column_names=COLUMNS[table],
                    settings={"insert_deduplication_token": batch.token(table)},
                )
                ROWS_WRITTEN.labels(table).inc(len(batch.rows[table]))


def _partition_list(partitions: list[TopicPartition]) -> str:
    """`topic[0,2] other[1]`: what a log line needs to say who owns what."""
    by_topic: dict[str, list[int]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p.partition)
    listed = (f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items()))
    return " ".join(listed) or "no partitions"
