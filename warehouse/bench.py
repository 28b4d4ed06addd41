"""Warehouse benchmark: sink throughput against a direct bulk insert, and rollup query latency.

    python -m warehouse.bench [--frames N] [--detection-rows N] [--out results.json]

Runs on the embedded defaults (tansu broker, chDB-backed endpoint), started on loopback on
free ports in a temporary folder. Each figure comes with a baseline measured in the same run:

- sink: the same FrameDetections (and density facts) are published to Kafka and loaded by the
  real `Sink` (consume, contract check, quality gate, insert, commit), and, as the baseline,
  their rows are inserted straight into an identical database with one bulk insert per table
  (best of two). Reported: rows/s of each and sink / direct (target >= 0.8), and the CPU
  seconds each side used per process, which say how far more cores could take the ratio,
  and the peak memory of each sink and validation process.
  With `--sinks N` (default: one per two CPUs beyond two, at least 2, at most 8) that many
  sink processes share the topics' partitions in one consumer group, as replicas of `citycam
  sink` do in a deployment, as many partitions each; each has its own validation process.
  The frames published grow with N: by default five full batches per sink (100,000 frames
  at 20,000 messages a batch).
  That is a sustained rate, with the reading of each batch overlapping the storing of the one
  before; a backlog of one batch would measure one batch's read-then-store latency instead,
  and a small one its linger (`batch_s`).
- rollups: >= 10M synthetic detection rows (50 cameras, 7 days, a frame every 30 s) and the
  per-minute facts derived from them by SQL (density, and crossings of one counting line per
  camera), so the hourly and daily rollups fill through their materialized views as in
  production. Reported: latency (median and max of repeated runs) of the planners'
  per-minute and hourly queries, and of the same hourly profiles computed from raw
  detections and from the minute crossings, the baselines the rollups exist to beat.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from citycam.clickhouse import connect
from citycam.config import KafkaSettings, SinkSettings, WarehouseSettings
from citycam.embedded import running_services
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
from warehouse.quality import QualityGate
from warehouse.rollups import wait_for_rollups
from warehouse.sink import (
    COLUMNS,
    STAGES,
    Rows,
    Sink,
    density_rows,
    detection_rows,
    tune_gc_for_batches,
)

CLASSES = [("car", 3), ("motorcycle", 4), ("bicycle", 2), ("bus", 6), ("truck", 8), ("person", 1)]
ROLLUP_CAMERAS = 50
ROLLUP_DAYS = 7
FRAME_EVERY_S = 30
BATCHES_PER_SINK = 5


@dataclass
class Services:
    kafka: KafkaSettings
    warehouse: WarehouseSettings
    pids: dict[str, int]  # the broker's and the warehouse endpoint's processes, by name

    def client(self, database: str | None = None) -> Client:
        return connect(self.warehouse, database=database)


@contextmanager
def embedded_services(folder: Path, partitions: int = 3) -> Iterator[Services]:
    """The embedded broker and warehouse endpoint, as `citycam up` starts them; the bench's
    topics get `partitions` each."""
    with running_services(folder, "default") as services:
        env = services.env
        yield Services(
            KafkaSettings(
                bootstrap_servers=env["CITYCAM_KAFKA__BOOTSTRAP_SERVERS"], partitions=partitions
            ),
            WarehouseSettings(
                url=env["CITYCAM_WAREHOUSE__URL"],
                username=env["CITYCAM_WAREHOUSE__USERNAME"],
                password=env["CITYCAM_WAREHOUSE__PASSWORD"],  # type: ignore[arg-type]
            ),
            {p.name: p.proc.pid for p in services.processes if p.proc is not None},
        )


def cpu_s(pids: dict[str, int], client: bool = True) -> dict[str, float]:
    """CPU seconds (user + system, all threads) used so far by each of `pids` and, with
    `client`, by this process.

    Wall-clock ratios on a small machine hide how much work each side does: this is what says
    whether more cores would help (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {"client": time.process_time()} if client else {}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        used[name] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return used


def cpu_since(pids: dict[str, int], before: dict[str, float]) -> dict[str, float]:
    now = cpu_s(pids, client="client" in before)
    return {name: round(now[name] - before[name], 3) for name in now}


def peak_memory_mib(pids: dict[str, int]) -> dict[str, int]:
    """Each process's peak resident memory so far (Linux /proc: VmHWM), in MiB."""
    peaks = {}
    for name, pid in pids.items():
        peak = re.search(r"^VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
        peaks[name] = int(peak[1]) // 1024 if peak else 0
    return peaks


# -- sink throughput ---------------------------------------------------------------------------


def synthetic_frames(n: int, cameras: int = 20, seed: int = 1) -> Iterator[FrameDetections]:
    """Frames of busy streets: 0-20 boxes each (mean ~10), riders on some motorbikes.

    Made one at a time: a backlog of several batches per sink process is millions of boxes."""
    rng = random.Random(seed)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for i in range(n):
        camera = f"bench-cam-{i % cameras:02d}"
        captured = start + timedelta(seconds=(i // cameras) * 0.5)
        boxes = []
        for k in range(rng.randint(0, 20)):
            name, class_id = rng.choice(CLASSES)
            x, y = rng.uniform(0, 1800), rng.uniform(0, 1000)
            box = BoundingBox(x1=x, y1=y, x2=x + rng.uniform(10, 120), y2=y + rng.uniform(10, 80))
            boxes.append(
                Detection(
                    class_name=name,
                    class_id=class_id,
                    score=round(rng.uniform(0.3, 1), 3),
                    bbox=box,
                    track_id=i * 100 + k,
                )
            )
        yield FrameDetections(
            camera_id=camera,
            frame_id=f"{camera}-{i}",
            captured_at=captured,
            frame_uri=f"file:///frames/{camera}/{i}.jpg",
            width=1920,
            height=1080,
            model_name="bench",
            model_version="1",
            inferred_at=captured + timedelta(seconds=1),
            detections=tuple(boxes),
        )


class DensityWindows:
    """Counts of frames as they go by, per camera, minute and vehicle class: the density facts
    the streams job would emit at the end."""

    VEHICLES = ("car", "motorcycle", "bicycle", "bus", "truck")
    VEHICLE_CLASS = {"motorcycle": "motorbike"}

    def __init__(self) -> None:
        self.boxes: dict[tuple[str, datetime, str], list[int]] = {}  # boxes, peak in one frame
        self.frames: dict[tuple[str, datetime], int] = {}

    def add(self, event: FrameDetections) -> None:
        minute = event.captured_at.replace(second=0, microsecond=0)
        self.frames[(event.camera_id, minute)] = self.frames.get((event.camera_id, minute), 0) + 1
        counts: dict[str, int] = {}
        for d in event.detections:
            counts[d.class_name] = counts.get(d.class_name, 0) + 1
        for name in self.VEHICLES:
            totals = self.boxes.setdefault((event.camera_id, minute, name), [0, 0])
            totals[0] += counts.get(name, 0)
            totals[1] = max(totals[1], counts.get(name, 0))

    def facts(self) -> list[TrafficDensity]:
        return [
            TrafficDensity(
                camera_id=camera,
                window_start=minute,
                window_end=minute + timedelta(minutes=1),
                vehicle_class=self.VEHICLE_CLASS.get(name, name),
                frames=self.frames[(camera, minute)],
                detections=boxes,
                mean_in_view=boxes / self.frames[(camera, minute)],
                max_in_view=peak,
                pcu_factor=1.0,
                pcu=float(boxes),
                pcu_version="bench",
                emitted_at=minute + timedelta(minutes=1),
            )
            for (camera, minute, name), (boxes, peak) in self.boxes.items()
        ]


def publish_workload(kafka: KafkaSettings, frames_n: int) -> tuple[Rows, int]:
    """Publish `frames_n` synthetic frames, then their density facts; return the rows they
    make (what the direct insert gets) and the number of messages. Only the rows are kept.

    Ten cameras per partition, each camera's messages in one partition, as keys spread a
    city's cameras. The cameras are dealt out evenly rather than by the keys' hash: over a
    few dozen cameras the hash leaves some partitions twice as full as others (20 cameras
    over 3 partitions: 2, 10 and 8), and the sink holding the fullest would set the pace."""
    ensure_topics(kafka, TOPICS)
    producer = EventProducer(kafka, client_id="bench-publisher")
    rows: Rows = {table: [] for table in COLUMNS}
    windows = DensityWindows()
    cameras = 10 * kafka.partitions
    partition_of: dict[str, int] = {}
    messages = 0
    for i, event in enumerate(synthetic_frames(frames_n, cameras)):
        partition = partition_of.setdefault(event.camera_id, i % cameras % kafka.partitions)
        producer.publish(DETECTIONS_TOPIC, event.camera_id, event, partition=partition)
        windows.add(event)
        extend_rows(rows, detection_rows(event))
        messages += 1
    for fact in windows.facts():
        partition = partition_of[fact.camera_id]
        producer.publish(TRAFFIC_DENSITY_TOPIC, fact.camera_id, fact, partition=partition)
        extend_rows(rows, density_rows(fact))
        messages += 1
    producer.flush()
    return rows, messages


def extend_rows(rows: Rows, more: Rows) -> None:
    for table, table_rows in more.items():
        rows[table].extend(table_rows)


def direct_insert(services: Services, rows: Rows, database: str) -> tuple[float, dict[str, float]]:
    """Wall and CPU seconds (client and servers) of one bulk insert per table."""
    migrate(services.client(None), database, raw_ttl_days=3650)
    client = services.client(database)
    started, cpu = time.perf_counter(), cpu_s(services.pids)
    for table, table_rows in rows.items():
        if table_rows:
            client.insert(table, table_rows, column_names=COLUMNS[table])
    return time.perf_counter() - started, cpu_since(services.pids, cpu)


def sink_replica(
    kafka: KafkaSettings,
    warehouse: WarehouseSettings,
    database: str,
    settings: SinkSettings,
    reports: Any,  # multiprocessing queue: (sink pid, validation pid), then stage seconds
    go: Any,  # multiprocessing events
    done: Any,
    committed: Any,  # multiprocessing values: messages committed, first message's time
    first_message_at: Any,
) -> None:
    """One sink process, set up as `citycam sink` sets itself up; it reports its progress
    through shared values until `done`. Its start-up (suites, connections) happens before
    `go`: it is not the sink's work per row."""
    gate = QualityGate(isolated=True)
    gate.tables()
    (validation,) = multiprocessing.active_children()
    producer = EventProducer(kafka, client_id=f"bench-sink-{os.getpid()}")
    sink = Sink(lambda: connect(warehouse, database=database), kafka, producer, settings, gate)
    tune_gc_for_batches()
    reports.put((os.getpid(), validation.pid))
    go.wait()
    stop = threading.Event()
    worker = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    worker.start()
    try:
        while not done.is_set() and worker.is_alive():
            committed.value = sink.messages_committed
            first_message_at.value = sink.first_message_at or 0.0  # CLOCK_MONOTONIC: shared
            time.sleep(0.02)
    finally:
        stop.set()
        worker.join()
        gate.close()
    reports.put(sink.stage_seconds)


@dataclass
class SinkRun:
    seconds: float  # from the first message any sink read to the commit of the last one
    cpu_s: dict[str, float]  # per process: sinks, their validation processes, servers
    stage_s: dict[str, float]  # the sinks' stage seconds, summed
    messages: list[int]  # committed by each sink
    peak_memory_mib: dict[str, int]  # of each sink and validation process


def run_sinks(
    services: Services, messages: int, database: str, settings: SinkSettings, replicas: int
) -> SinkRun:
    """Run `replicas` sink processes in one group until they committed `messages`."""
    migrate(services.client(None), database, raw_ttl_days=3650)
    spawn = multiprocessing.get_context("spawn")
    reports, go, done = spawn.Queue(), spawn.Event(), spawn.Event()
    progress = [(spawn.Value("q", 0), spawn.Value("d", 0.0)) for _ in range(replicas)]
    processes = [
        spawn.Process(
            target=sink_replica,
            args=(services.kafka, services.warehouse, database, settings, reports, go, done, *p),
            name=f"bench-sink-{i}",
        )
        for i, p in enumerate(progress)
    ]
    for process in processes:
        process.start()
    try:
        pids = dict(services.pids)
        for i in range(replicas):
            pids[f"sink-{i}"], pids[f"validation-{i}"] = reports.get(timeout=600)
        cpu = cpu_s(pids, client=False)
        go.set()
        deadline = time.monotonic() + 1800
        while sum(committed.value for committed, _ in progress) < messages:
            if not all(p.is_alive() for p in processes) or time.monotonic() > deadline:
                done_n = sum(committed.value for committed, _ in progress)
                raise RuntimeError(f"the sinks stopped at {done_n} of {messages} messages")
            time.sleep(0.005)
        seconds = time.monotonic() - min(f.value for _, f in progress if f.value > 0)
        cpu = cpu_since(pids, cpu)
        shares = [committed.value for committed, _ in progress]
        memory = peak_memory_mib({n: pid for n, pid in pids.items() if n not in services.pids})
    finally:
        done.set()
        stages = dict.fromkeys(STAGES, 0.0)
        for process in processes:
            process.join(60)
        while not reports.empty():
            for stage, spent in reports.get().items():
                stages[stage] += spent
        for process in processes:
            process.kill()
    return SinkRun(seconds, cpu, stages, shares, memory)


def bench_sink(
    services: Services, frames_n: int, settings: SinkSettings, replicas: int = 1
) -> dict[str, Any]:
    rows, messages = publish_workload(services.kafka, frames_n)
    total_rows = sum(len(r) for r in rows.values())
    print(f"sink: {frames_n} frames + {messages - frames_n} facts published = {total_rows} rows")

    direct, direct_cpu = min(
        (direct_insert(services, rows, f"bench_direct_{i}") for i in range(2)), key=lambda r: r[0]
    )
    del rows  # free the memory before the sinks start
    run = run_sinks(services, messages, "bench_sink", settings, replicas)
    loaded, sink_cpu = run.seconds, run.cpu_s
    cpus = os.cpu_count() or 1
    stored = services.client("bench_sink").query(
        "SELECT (SELECT count() FROM frames) + (SELECT count() FROM detections) "
        "+ (SELECT count() FROM traffic_density_1m)"
    )
    stored_rows = int(stored.result_rows[0][0])
    if stored_rows != total_rows:
        raise RuntimeError(f"the sink stored {stored_rows} rows, expected {total_rows}")
    result = {
        "messages": messages,
        "rows": total_rows,
        "direct_bulk_insert_s": round(direct, 3),
        "direct_rows_per_s": round(total_rows / direct),
        "sink_s": round(loaded, 3),
        "sink_rows_per_s": round(total_rows / loaded),
        "sink_over_direct": round(direct / loaded, 3),
        "target_sink_over_direct": 0.8,
        "sink_stage_s": {stage: round(s, 3) for stage, s in run.stage_s.items()},
        # CPU seconds of each side, client and servers: the work per row, whatever the cores
        "direct_cpu_s": direct_cpu,
        "sink_cpu_s": sink_cpu,
        "sink_cpu_over_direct_cpu": round(sum(sink_cpu.values()) / sum(direct_cpu.values()), 3),
        # the best ratio this machine's cores allow: the sink's CPU seconds spread perfectly
        # over all of them, against the direct insert as measured
        "ratio_ceiling_with_these_cpus": round(min(1.0, direct * cpus / sum(sink_cpu.values())), 3),
        "sink_processes": replicas,
        "batches_per_sink_process": round(messages / replicas / settings.batch_rows, 2),
        "messages_per_sink_process": run.messages,
        "peak_memory_mib": run.peak_memory_mib,
        "topic_partitions": services.kafka.partitions,
        "sink_settings": settings.model_dump(mode="json"),
    }
    print(
        f"sink {result['sink_rows_per_s']} rows/s, direct {result['direct_rows_per_s']} rows/s: "
        f"ratio {result['sink_over_direct']}\n  CPU seconds: sink {sink_cpu}, direct {direct_cpu}: "
        f"at most {result['ratio_ceiling_with_these_cpus']} on {cpus} CPUs"
    )
    return result


# -- rollup query latency ----------------------------------------------------------------------

ROLLUP_QUERIES: dict[str, str] = {
    # planners' per-minute views
    "minute_one_camera_one_day": (
        "SELECT window_start, sum(detections) AS vehicles, sum(pcu) AS pcu "
        "FROM traffic_density_1m FINAL WHERE camera_id = 'cam-07' "
        "AND window_start >= {day:DateTime} AND window_start < {day:DateTime} + INTERVAL 1 DAY "
        "GROUP BY window_start ORDER BY window_start"
    ),
    "minute_busiest_cameras_last_hour": (
        "SELECT camera_id, sum(detections) AS vehicles FROM traffic_density_1m_recent FINAL "
        "WHERE window_start >= {last_hour:DateTime} GROUP BY camera_id "
        "ORDER BY vehicles DESC, camera_id LIMIT 10"
    ),
    # the same from the facts sorted by camera: what traffic_density_1m_recent is there to beat
    "minute_busiest_cameras_last_hour_from_all_minutes": (
        "SELECT camera_id, sum(detections) AS vehicles FROM traffic_density_1m FINAL "
        "WHERE window_start >= {last_hour:DateTime} GROUP BY camera_id "
        "ORDER BY vehicles DESC, camera_id LIMIT 10"
    ),
    # hourly and daily rollups
    "hourly_profile_all_cameras_week": (
        "SELECT toHour(hour) AS hour_of_day, vehicle_class, avg(mean_in_view) AS mean_in_view "
        "FROM traffic_density_1h GROUP BY hour_of_day, vehicle_class ORDER BY ALL"
    ),
    "hourly_one_camera_week": (
        "SELECT hour, sum(detections) AS vehicles, sum(pcu) AS pcu FROM traffic_density_1h "
        "WHERE camera_id = 'cam-07' GROUP BY hour ORDER BY hour"
    ),
    "daily_busiest_cameras": (
        "SELECT camera_id, sum(pcu) AS pcu FROM traffic_density_1d GROUP BY camera_id "
        "ORDER BY pcu DESC LIMIT 10"
    ),
    # traffic flow over the counting lines: hourly rollup, and the minutes it is made of
    "hourly_flow_all_cameras_week": (
        "SELECT toHour(hour) AS hour_of_day, vehicle_class, "
        "sum(pcu) * 60 / sum(minutes_covered) AS pcu_per_hour "
        "FROM line_crossings_1h GROUP BY hour_of_day, vehicle_class ORDER BY ALL"
    ),
    "minute_flow_all_cameras_week": (
        "SELECT toHour(window_start) AS hour_of_day, vehicle_class, "
        "sum(pcu) * 60 / count() AS pcu_per_hour "
        "FROM line_crossings_1m FINAL GROUP BY hour_of_day, vehicle_class ORDER BY ALL"
    ),
    # baseline: the hourly profile without rollups, from the raw detections
    "raw_hourly_profile_all_cameras_week": (
        "SELECT toHour(captured_at) AS hour_of_day, class_name, count() / uniqExact(frame_id) "
        "AS mean_in_view FROM detections GROUP BY hour_of_day, class_name ORDER BY ALL"
    ),
}


def load_rollup_data(client: Client, detection_rows_n: int) -> datetime:
    """Fill detections (and frames, facts) in the warehouse itself; returns the first day."""
    frames_per_camera = ROLLUP_DAYS * 86400 // FRAME_EVERY_S
    boxes_per_frame = -(-detection_rows_n // (ROLLUP_CAMERAS * frames_per_camera))
    first = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    first -= timedelta(days=ROLLUP_DAYS)
    start = first.strftime("%Y-%m-%d %H:%M:%S")
    frame = (
        f"intDiv(number, {boxes_per_frame}) AS f, "
        f"concat('cam-', leftPad(toString(f % {ROLLUP_CAMERAS}), 2, '0')) AS cam, "
        f"toDateTime64('{start}', 3, 'UTC') + toIntervalSecond(intDiv(f, {ROLLUP_CAMERAS}) "
        f"* {FRAME_EVERY_S}) AS ts"
    )
    total = ROLLUP_CAMERAS * frames_per_camera * boxes_per_frame
    client.command(
        "INSERT INTO detections (camera_id, frame_id, captured_at, det_index, class_name, "
        "class_id, score, x1, y1, x2, y2, track_id, model_name, model_version) "
        f"SELECT cam, concat(cam, '-', toString(f)), ts, number % {boxes_per_frame}, "
        "['car','motorcycle','motorcycle','motorcycle','bicycle','bus','truck','person']"
        "[(cityHash64(number) % 8) + 1], 3, 0.5 + (number % 50) / 100, 10, 10, 60, 60, "
        f"number, 'bench', '1' FROM (SELECT number, {frame} FROM numbers({total}))",
        settings={"max_insert_threads": 2},
    )
    client.command(
        "INSERT INTO frames (camera_id, frame_id, captured_at, frame_uri, width, height, "
        "model_name, model_version, inferred_at, detections) "
        "SELECT camera_id, frame_id, captured_at, 'file:///bench', 1920, 1080, 'bench', '1', "
        "captured_at, count() FROM detections GROUP BY camera_id, frame_id, captured_at"
    )
    client.command(
        "INSERT INTO traffic_density_1m (camera_id, window_start, window_end, vehicle_class, "
        "frames, detections, mean_in_view, max_in_view, pcu_factor, pcu, pcu_version, "
        "emitted_at) "
        "SELECT camera_id, window_start, window_start + INTERVAL 1 MINUTE, vehicle_class, "
        "frames, boxes, boxes / frames, peak, factor, boxes * factor, 'bench', "
        "window_start + INTERVAL 1 MINUTE FROM ("
        " SELECT camera_id, toStartOfMinute(captured_at) AS window_start,"
        " if(class_name = 'motorcycle', 'motorbike', class_name) AS vehicle_class,"
        " uniqExact(frame_id) AS frames, count() AS boxes, 1 AS peak,"
        " multiIf(class_name = 'motorcycle', 0.3, class_name = 'bicycle', 0.2,"
        " class_name IN ('bus', 'truck'), 2.5, 1.0) AS factor"
        " FROM detections WHERE class_name != 'person'"
        " GROUP BY camera_id, window_start, vehicle_class, factor)"
    )
    # one counting line per camera, both ways: a share of the minute's vehicles crossed it
    client.command(
        "INSERT INTO line_crossings_1m (camera_id, line_id, window_start, window_end, "
        "direction, orientation, vehicle_class, frames, crossings, pcu_factor, pcu, "
        "pcu_per_hour, pcu_version, speed_samples, speed_kmh_mean, speed_kmh_p85, emitted_at) "
        "SELECT camera_id, 'stop-line', window_start, window_end, "
        "if(way = 'positive', 'inbound', 'outbound'), way, vehicle_class, frames, n, "
        "pcu_factor, n * pcu_factor, n * pcu_factor * 60, 'bench', n, 30, 42, emitted_at "
        "FROM (SELECT camera_id, window_start, window_end, vehicle_class, frames, "
        "pcu_factor, emitted_at, way, intDiv(detections, if(way = 'positive', 3, 5)) AS n "
        "FROM traffic_density_1m FINAL ARRAY JOIN ['positive', 'negative'] AS way)"
    )
    return first


def rollup_lag_s(client: Client, first: datetime, timeout_s: float = 600) -> float:
    """Seconds until the refreshed hourly and daily rollups hold every minute fact."""
    started = time.perf_counter()
    if not wait_for_rollups(client, first, timeout_s):
        raise RuntimeError("the rollups did not catch up with the minute facts")
    return time.perf_counter() - started


def timed(client: Client, sql: str, params: dict[str, Any], repeats: int) -> dict[str, Any]:
    client.query(sql, parameters=params)  # warm-up: caches, marks
    samples = []
    rows = 0
    for _ in range(repeats):
        started = time.perf_counter()
        rows = len(client.query(sql, parameters=params).result_rows)
        samples.append(time.perf_counter() - started)
    return {
        "median_ms": round(statistics.median(samples) * 1000, 1),
        "max_ms": round(max(samples) * 1000, 1),
        "rows_returned": rows,
    }


def bench_rollups(services: Services, detection_rows_n: int, repeats: int) -> dict[str, Any]:
    database = "bench_rollups"
    migrate(services.client(None), database, raw_ttl_days=3650)
    client = services.client(database)
    started = time.perf_counter()
    first = load_rollup_data(client, detection_rows_n)
    load_s = time.perf_counter() - started
    refresh_s = rollup_lag_s(client, first)
    counts = {
        table: int(client.query(f"SELECT count() FROM {table}").result_rows[0][0])
        for table in (
            "detections",
            "frames",
            "traffic_density_1m",
            "traffic_density_1h",
            "line_crossings_1m",
            "line_crossings_1h",
        )
    }
    print(f"rollups: loaded {counts} in {load_s:.1f}s, rolled up {refresh_s:.1f}s later")
    last = first + timedelta(days=ROLLUP_DAYS)
    params = {"day": first + timedelta(days=3), "last_hour": last - timedelta(hours=1)}
    params = {k: v.replace(tzinfo=None) for k, v in params.items()}
    latency = {name: timed(client, sql, params, repeats) for name, sql in ROLLUP_QUERIES.items()}
    recent, all_minutes = (
        client.query(ROLLUP_QUERIES[name], parameters=params).result_rows
        for name in (
            "minute_busiest_cameras_last_hour",
            "minute_busiest_cameras_last_hour_from_all_minutes",
        )
    )
    if recent != all_minutes:
        raise RuntimeError(f"recent minutes disagree with all minutes: {recent} != {all_minutes}")
    for name, figures in latency.items():
        print(f"  {name}: median {figures['median_ms']} ms, max {figures['max_ms']} ms")
    return {
        "rows": counts,
        "load_s": round(load_s, 1),
        "rollups_complete_after_load_s": round(refresh_s, 1),
        "repeats": repeats,
        "queries": {name: {"sql": ROLLUP_QUERIES[name], **f} for name, f in latency.items()},
        "hourly_rollup_over_raw": ratio(
            latency, "hourly_profile_all_cameras_week", "raw_hourly_profile_all_cameras_week"
        ),
        "hourly_flow_rollup_over_minutes": ratio(
            latency, "hourly_flow_all_cameras_week", "minute_flow_all_cameras_week"
        ),
        "recent_minutes_over_all_minutes": ratio(
            latency,
            "minute_busiest_cameras_last_hour",
            "minute_busiest_cameras_last_hour_from_all_minutes",
        ),
    }


def ratio(latency: dict[str, dict[str, Any]], query: str, baseline: str) -> float | None:
    """Median latency of `query` over that of `baseline`."""
    base = latency[baseline]["median_ms"]
    return round(latency[query]["median_ms"] / base, 4) if base else None


def environment() -> dict[str, Any]:
    import chdb

    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "chdb": chdb.__version__,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def default_sinks() -> int:
    """One sink process per two CPUs beyond the two the broker and the warehouse endpoint
    keep busy (a sink and its validation process use about one and a half), at least two and
    at most 8.

    At least two because one sink's reading and its insert share one interpreter lock: on
    2 CPUs one sink sustained 0.39-0.49 of the direct insert, two 0.52-0.62."""
    return max(2, min(8, ((os.cpu_count() or 1) - 2) // 2))


def bench_partitions(sinks: int) -> int:
    """At least 3 (the deployment's default), and as many for each sink: a sink with more
    partitions than the others would have more to do."""
    return sinks * -(-3 // sinks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--frames",
        type=int,
        help=f"FrameDetections for the sink (default: {BATCHES_PER_SINK} batches' worth per sink "
        "process, so that each sustains its pipeline instead of reading then storing one batch)",
    )
    parser.add_argument("--detection-rows", type=int, default=10_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-rows", type=int, help="sink batch size (default: configured)")
    parser.add_argument(
        "--sinks", type=int, default=default_sinks(), help="sink processes in one group"
    )
    parser.add_argument("--only", choices=["sink", "rollups"], help="run one part")
    parser.add_argument("--out", type=Path, default=Path(".data/bench/warehouse.json"))
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="citycam-bench-") as tmp,
        embedded_services(Path(tmp), partitions=bench_partitions(args.sinks)) as services,
    ):
        settings = SinkSettings(group_id="bench-sink")
        if args.batch_rows:
            settings.batch_rows = args.batch_rows
        results: dict[str, Any] = {"benchmark": "warehouse", "environment": environment()}
        if args.only in (None, "sink"):
            frames = args.frames or settings.batch_rows * BATCHES_PER_SINK * args.sinks
            results["sink"] = bench_sink(services, frames, settings, args.sinks)
        if args.only in (None, "rollups"):
            results["rollups"] = bench_rollups(services, args.detection_rows, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
