"""Live progress of the demo: stage metrics scraped over HTTP plus warehouse row counts."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from citycam.clickhouse import connect
from citycam.config import Settings

# (stage, metric sample name) -> column shown
COLUMNS = {
    ("ingest", "citycam_ingest_frames_decoded_total"): "decoded",
    ("ingest", "citycam_ingest_frames_published_total"): "sampled",
    ("infer", "citycam_inference_frames_total"): "inferred",
    ("infer", "citycam_inference_detections_total"): "boxes",
    ("streams", "citycam_streams_frames_total"): "counted",
}
WAREHOUSE_COLUMNS = ("wh frames", "wh boxes", "wh fact frames")


@dataclass
class Progress:
    counts: dict[str, dict[str, float]] = field(default_factory=dict)  # camera -> column -> n
    ingest_done: bool = False
    settled: bool = False


def scrape(url: str) -> dict[tuple[str, str], float]:
    """Per (sample name, camera label) values of one stage's metrics; empty if not up yet."""
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
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
    return counts


def read_progress(
    settings: Settings,
    metrics_urls: dict[str, str],
    cameras: list[str],
    since: datetime,
    ingest_done: bool,
) -> Progress:
    scraped = {stage: scrape(url) for stage, url in metrics_urls.items()}
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
        row.update({col: float(stored.get(cam, {}).get(col, 0)) for col in WAREHOUSE_COLUMNS})
        progress.counts[cam] = row
    progress.settled = ingest_done and all(
        row["sampled"] > 0 and row["sampled"] == row["wh frames"] == row["wh fact frames"]
        for row in progress.counts.values()
    )
    return progress


def render_progress(progress: Progress) -> Table:
    columns = [*COLUMNS.values(), *WAREHOUSE_COLUMNS]
    state = "ingest finished, draining" if progress.ingest_done else "ingesting"
    table = Table("camera", *columns, title=f"citycam demo: {state}")
    for cam, row in progress.counts.items():
        table.add_row(cam, *(f"{row[c]:.0f}" for c in columns))
    return table


def render_table(settings: Settings, since: datetime) -> Table:
    """The result, read back from ClickHouse: per camera and vehicle class over the run."""
    client = connect(settings.warehouse)
    result = client.query(
        "SELECT camera_id, vehicle_class, count() AS minutes, sum(frames) AS frames, "
        "sum(detections) AS boxes, round(sum(detections) / sum(frames), 3) AS mean_in_view, "
        "max(max_in_view) AS peak, round(sum(pcu), 1) AS pcu "
        "FROM traffic_density_1m FINAL WHERE window_start >= "
        "toStartOfMinute({since:DateTime64(3, 'UTC')}) "
        "GROUP BY camera_id, vehicle_class ORDER BY camera_id, vehicle_class",
        parameters={"since": since.replace(tzinfo=None)},
    )
    table = Table(*result.column_names, title="Traffic density read back from ClickHouse")
    for row in result.result_rows:
        table.add_row(*(str(v) for v in row))
    return table
