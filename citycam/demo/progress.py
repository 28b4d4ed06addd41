"""Live progress of the demo: stage metrics scraped over HTTP plus warehouse row counts."""

from __future__ import annotations

import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from citycam.cameras import load_cameras
from citycam.clickhouse import connect, query_table
from citycam.config import KafkaSettings, Settings
from citycam.kafka import consumer_config
from schemas import FRAMES_TOPIC

# (stage, metric sample name) -> column shown
COLUMNS = {
    ("ingest", "citycam_ingest_frames_decoded_total"): "decoded",
    ("infer", "citycam_inference_frames_total"): "inferred",
    ("infer", "citycam_inference_detections_total"): "boxes",
    ("streams", "citycam_streams_frames_total"): "counted",
    ("streams", "citycam_streams_facts_total"): "facts",
}
WAREHOUSE_COLUMNS = ("wh frames", "wh boxes", "wh fact frames", "wh line frames")
PUBLISHED = "sampled"  # FrameRefs on the frames topic, counted by reading it


@dataclass
class Progress:
    counts: dict[str, dict[str, float]] = field(default_factory=dict)  # camera -> column -> n
    ingest_done: bool = False
    settled: bool = False


def scrape(url: str) -> dict[tuple[str, str], float]:
    """Per (sample name, camera label) values of one stage's metrics; empty if not up yet.

    A file:// URL reads the text file a stage writes when it exits.
    """
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            text = resp.read().decode()
    except (OSError, ValueError):
        return {}
    values: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "camera" in sample.labels:
                values[(sample.name, sample.labels["camera"])] = sample.value
    return values


def warehouse_counts(settings: Settings, since: datetime) -> dict[str, dict[str, float]]:
    client = connect(settings.warehouse)
    params = {"since": since.replace(tzinfo=None)}
    counts: dict[str, dict[str, float]] = defaultdict(dict)
    for cam, frames, boxes in client.query(
        "SELECT camera_id, count(), sum(detections) FROM frames FINAL "
        "WHERE captured_at >= {since:DateTime64(3, 'UTC')} GROUP BY camera_id",
        parameters=params,
    ).result_rows:
        counts[cam]["wh frames"], counts[cam]["wh boxes"] = frames, boxes
    for cam, fact_frames in client.query(
        "SELECT camera_id, sum(f) FROM (SELECT camera_id, window_start, max(frames) AS f "
        "FROM traffic_density_1m FINAL WHERE window_start >= "
        "toStartOfMinute({since:DateTime64(3, 'UTC')}) GROUP BY camera_id, window_start) "
        "GROUP BY camera_id",
        parameters=params,
    ).result_rows:
        counts[cam]["wh fact frames"] = fact_frames
    for cam, line_frames in client.query(
        "SELECT camera_id, sum(f) FROM (SELECT camera_id, window_start, max(frames) AS f "
        "FROM line_crossings_1m FINAL WHERE window_start >= "
        "toStartOfMinute({since:DateTime64(3, 'UTC')}) GROUP BY camera_id, window_start) "
        "GROUP BY camera_id",
        parameters=params,
    ).result_rows:
        counts[cam]["wh line frames"] = line_frames
    return counts


@lru_cache(maxsize=4)
def line_cameras(cameras_file: Path) -> frozenset[str]:
    """Cameras with counting lines: their crossing facts must be in before the demo settles."""
    registry = load_cameras(cameras_file)
    return frozenset(c.id for c in registry.cameras if c.geometry and c.geometry.lines)


class PublishedFrames:
    """Counts FrameRefs per camera by reading the frames topic (ingest may already be gone)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        group = f"citycam-demo-progress-{uuid.uuid4().hex[:8]}"
        self.consumer = Consumer(consumer_config(kafka, group))
        self.consumer.subscribe([FRAMES_TOPIC.name])
        self.counts: dict[str, int] = defaultdict(int)

    def poll(self) -> dict[str, int]:
        for message in self.consumer.consume(1000, timeout=0.2):
            key = message.key()
            if message.error() is None and key:
                self.counts[key.decode()] += 1
        return self.counts

    def close(self) -> None:
        self.consumer.close()


class MetricsWatcher:
    """Scrapes each stage; keeps the last values of a stage that has exited (ingest ends)."""

    def __init__(self, metrics_urls: dict[str, list[str]]) -> None:
        self.urls = metrics_urls
        self.last: dict[str, dict[tuple[str, str], float]] = {name: {} for name in metrics_urls}

    def scrape_all(self) -> dict[str, dict[tuple[str, str], float]]:
        for stage, urls in self.urls.items():
            self.last[stage] = next(filter(None, map(scrape, urls)), self.last[stage])
        return self.last


def read_progress(
    settings: Settings,
    watcher: MetricsWatcher,
    published: PublishedFrames,
    cameras: list[str],
    since: datetime,
    ingest_done: bool,
) -> Progress:
    scraped = watcher.scrape_all()
    sampled = published.poll()
    try:
        stored = warehouse_counts(settings, since)
    except Exception:  # the warehouse may be busy or starting; progress is best effort
        stored = {}
    progress = Progress(ingest_done=ingest_done)
    for cam in cameras:
        row = {
            col: scraped.get(stage, {}).get((name, cam), 0.0)
            for (stage, name), col in COLUMNS.items()
        }
        row[PUBLISHED] = float(sampled.get(cam, 0))
        row.update({col: float(stored.get(cam, {}).get(col, 0)) for col in WAREHOUSE_COLUMNS})
        progress.counts[cam] = row
    counting = line_cameras(settings.cameras_file)
    progress.settled = ingest_done and all(
        row["sampled"] > 0
        and row["sampled"] == row["wh frames"] == row["wh fact frames"]
        and (cam not in counting or row["wh line frames"] == row["sampled"])
        for cam, row in progress.counts.items()
    )
    return progress


def render_progress(progress: Progress) -> Table:
    columns = ["decoded", PUBLISHED, *list(COLUMNS.values())[1:], *WAREHOUSE_COLUMNS]
    state = "ingest finished, draining" if progress.ingest_done else "ingesting"
    table = Table("camera", *columns, title=f"citycam demo: {state}")
    for cam, row in progress.counts.items():
        table.add_row(cam, *(f"{row[c]:.0f}" for c in columns))
    return table


def run_parameters(since: datetime) -> dict[str, Any]:
    return {"since": since.replace(tzinfo=None)}


def render_table(client: Client, since: datetime) -> Table:
    """The result, read back from ClickHouse: per camera and vehicle class over the run."""
    return query_table(
        client,
        "SELECT camera_id, vehicle_class, count() AS minutes, sum(frames) AS frames_seen, "
        "sum(detections) AS boxes, round(boxes / frames_seen, 3) AS mean_in_view, "
        "max(max_in_view) AS peak, round(sum(pcu), 1) AS pcu "
        "FROM traffic_density_1m FINAL WHERE window_start >= "
        "toStartOfMinute({since:DateTime64(3, 'UTC')}) "
        "GROUP BY camera_id, vehicle_class ORDER BY camera_id, vehicle_class",
        run_parameters(since),
        title="Traffic density read back from ClickHouse",
    )


def render_crossings(client: Client, since: datetime) -> Table:
    """Line crossings of the run, read back from ClickHouse: per camera, line, way and class."""
    return query_table(
        client,
        "SELECT camera_id, line_id, direction, vehicle_class, sum(crossings) AS crossings, "
        "round(sum(pcu), 1) AS pcu, sum(speed_samples) AS speed_samples "
        "FROM line_crossings_1m FINAL WHERE window_start >= "
        "toStartOfMinute({since:DateTime64(3, 'UTC')}) "
        "GROUP BY camera_id, line_id, direction, vehicle_class HAVING crossings > 0 "
        "ORDER BY camera_id, line_id, direction, vehicle_class",
        run_parameters(since),
        title="Line crossings read back from ClickHouse",
        caption="classes that did not cross are left out (the table holds their zeros)",
    )


def render_alerts(client: Client, since: datetime) -> Table:
    """Congestion and abnormal-flow alerts of the run, in their latest state."""
    table = query_table(
        client,
        "SELECT camera_id, kind, zone_id, state, severity, started_at, ended_at, metric, "
        "round(value, 2) AS value, round(threshold, 2) AS threshold "
        "FROM alerts FINAL WHERE started_at >= {since:DateTime64(3, 'UTC')} "
        "ORDER BY camera_id, started_at",
        run_parameters(since),
        title="Alerts read back from ClickHouse",
    )
    if not table.row_count:
        table.min_width = 100  # room for the caption on one line
        table.caption = (
            "none is expected from the short demo clips: congestion needs minutes of a "
            "full zone, abnormal flow three days of history per hour of day"
        )
    return table
