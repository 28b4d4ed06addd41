"""`citycam demo`: the whole pipeline on the demo cameras, every stage its own process.

Starts the embedded broker and warehouse, creates topics, migrates, launches ingest,
inference, streams and sink, shows live progress (from each stage's Prometheus metrics and
the warehouse), waits until every sampled frame has reached the warehouse as facts, then
prints the per-camera per-class table read back from ClickHouse. Then, unless told not to,
it brings up Superset with the planners' dashboards on that warehouse and serves them until
Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live

from citycam.cameras import load_cameras
from citycam.clickhouse import connect
from citycam.config import SERVICES_ENV_FILE, Settings
from citycam.demo.progress import (
    MetricsWatcher,
    Progress,
    PublishedFrames,
    read_progress,
    render_alerts,
    render_crossings,
    render_progress,
    render_table,
)
from citycam.embedded import ManagedProcess, free_port, running_services
from warehouse.rollups import wait_for_rollups

STAGES = ("sink", "streams", "infer", "ingest")  # consumers first, so nothing waits on them


@dataclass
class StageProcess:
    name: str
    process: ManagedProcess
    metrics_url: str
    metrics_file: Path


def start_stages(settings: Settings, env: dict[str, str]) -> dict[str, StageProcess]:
    stages = {}
    run_dir = settings.data_dir / "run"
    for name in STAGES:
        port = free_port()
        metrics_file = (run_dir / f"{name}.prom").resolve()
        metrics_file.unlink(missing_ok=True)
        args = ["--metrics-port", str(port), "--metrics-file", str(metrics_file)]
        proc = ManagedProcess(
            name, [sys.executable, "-m", "citycam.cli", name, *args], run_dir / f"{name}.log", env
        )
        proc.start()
        stages[name] = StageProcess(name, proc, f"http://127.0.0.1:{port}/metrics", metrics_file)
    return stages


def run_demo(timeout_s: float = 900, superset: bool = True) -> int:
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # logs: room for every column
    settings = Settings()
    registry = load_cameras(settings.cameras_file)
    missing = [
        c.source_path for c in registry.enabled if c.source_path and not c.source_path.exists()
    ]
    if missing:
        console.print(f"[red]footage missing: {missing}; run `make footage` first")
        return 2
    with running_services(
        settings.data_dir, settings.warehouse.database, SERVICES_ENV_FILE
    ) as services:
        os.environ.update(services.env)
        settings = Settings()
        since = prepare(settings, console)
        wait_until(since, console)
        env = {**services.env, "CITYCAM_INGEST__REPLAY_START": since.isoformat()}
        stages = start_stages(settings, env)
        try:
            progress = watch(
                settings, stages, [c.id for c in registry.enabled], since, timeout_s, console
            )
        finally:
            for stage in stages.values():
                stage.process.stop()
        if not progress.settled:
            console.print(
                f"[red]pipeline did not settle within {timeout_s:.0f}s; "
                f"see logs in {settings.data_dir / 'run'}"
            )
            return 1
        console.print()
        client = connect(settings.warehouse)
        for render in (render_table, render_crossings, render_alerts):
            console.print(render(client, since))
        console.print(how_to_query(settings))
        if not wait_for_rollups(client, since):
            console.print(
                "[yellow]the hourly rollups are still catching up: the open-data "
                "export may miss the last minutes; run `citycam export` again later"
            )
        publish_open_data(settings, since, console)
        if superset:
            serve_dashboards(settings, console)
    return 0


def publish_open_data(settings: Settings, since: datetime, console: Console) -> None:
    """`citycam export` of this run's UTC day, as citizens would download it."""
    import subprocess

    day = since.strftime("%Y-%m-%d")
    command = [sys.executable, "-m", "citycam.cli", "export", "--period", "day", "--date", day]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        console.print(f"[red]open-data export of {day} failed:[/red]\n{done.stderr.strip()}")
        return
    portal = Path(settings.data_dir, "open-data", "index.html").resolve()
    console.print(f"Open data for {day} published; portal page: {portal.as_uri()}")


def serve_dashboards(settings: Settings, console: Console) -> None:
    """Superset on the demo's warehouse until Ctrl-C (the services stay up meanwhile)."""
    from citycam.cli import stop_on_signals
    from dashboards.serve import serve_dashboards as serve

    console.print(
        "starting Superset and importing the dashboards (first run: about a minute). Ctrl-C "
        f"stops Superset and the services; the login is kept in "
        f"{Path(settings.data_dir, 'superset').resolve()}; `make demo SUPERSET=0` skips this."
    )
    serve(settings, stop_on_signals(), console.print)


def prepare(settings: Settings, console: Console) -> datetime:
    """Topics, migrations, dimensions; return where this run's replayed capture times start."""
    from citycam.cli import migrate_warehouse
    from citycam.kafka import ensure_topics
    from schemas import TOPICS

    ensure_topics(settings.kafka, TOPICS)
    applied = migrate_warehouse(settings)
    console.print(
        f"broker {settings.kafka.bootstrap_servers}, warehouse {settings.warehouse.url}, "
        f"migrations applied now: {len(applied)}"
    )
    return replay_start(settings)


def replay_start(settings: Settings) -> datetime:
    """When this run's first frame is captured: now, or, after earlier runs, the next whole
    minute past their data, so that each run's one-minute windows are its own.

    The demo cameras replay their files at native speed (`realtime: true`), as live cameras
    deliver: capture times never lie ahead of the clock, which the data-quality suites check.
    """
    rows = (
        connect(settings.warehouse)
        .query("SELECT toUnixTimestamp64Milli(max(captured_at)) FROM frames")
        .result_rows
    )
    now = time.time()
    if not rows or not rows[0][0]:
        return datetime.fromtimestamp(now, UTC)
    after = max(now, rows[0][0] / 1000 + 1)
    return datetime.fromtimestamp((int(after) // 60 + 1) * 60, UTC)


def wait_until(moment: datetime, console: Console) -> None:
    delay = moment.timestamp() - time.time()
    if delay > 0:
        console.print(f"waiting {delay:.0f} s for the next minute: this run gets its own windows")
        time.sleep(delay)


def watch(
    settings: Settings,
    stages: dict[str, StageProcess],
    cameras: list[str],
    since: datetime,
    timeout_s: float,
    console: Console,
) -> Progress:
    deadline = time.monotonic() + timeout_s
    next_print = time.monotonic() + 15
    watcher = MetricsWatcher(
        {name: [stage.metrics_url, stage.metrics_file.as_uri()] for name, stage in stages.items()}
    )
    published = PublishedFrames(settings.kafka)
    ingest = stages["ingest"].process
    progress = read_progress(settings, watcher, published, cameras, since, ingest_done=False)
    with Live(render_progress(progress), console=console, refresh_per_second=2) as live:
        while time.monotonic() < deadline:
            time.sleep(1)
            crashed = [
                s.name
                for s in stages.values()
                if s.name != "ingest" and s.process.proc and s.process.proc.poll() is not None
            ]
            if crashed:
                raise RuntimeError(f"stage(s) {crashed} exited; see {settings.data_dir / 'run'}")
            ingest_done = ingest.proc is not None and ingest.proc.poll() is not None
            progress = read_progress(settings, watcher, published, cameras, since, ingest_done)
            live.update(render_progress(progress))
            if not console.is_terminal and time.monotonic() >= next_print:
                console.print(render_progress(progress))  # a log gets snapshots instead
                next_print = time.monotonic() + 15
            if progress.settled:
                break
    published.close()
    return progress


def how_to_query(settings: Settings) -> str:
    return (
        "\nQuery it yourself (start the services with `citycam up` in another terminal):\n"
        '  .venv/bin/citycam sql "SELECT camera_id, vehicle_class, sum(detections) AS boxes, '
        'round(sum(pcu), 1) AS pcu FROM traffic_density_1m FINAL GROUP BY ALL ORDER BY ALL"\n'
        f"Warehouse data lives in {Path(settings.data_dir, 'warehouse').resolve()}; "
        "stage logs in .data/run/.\n"
    )
