"""The streams job: detections -> per-minute traffic-density facts, as a Faust app.

Emission model: a window's facts are re-emitted whenever it changed, at most every
flush_interval_s, and once more after a rebalance (state may have moved). Every emission
carries the window's running totals, never a delta, and the warehouse keeps the emission
with the most frames (ReplacingMergeTree(frames)). So a repeat is harmless, and the final
figures never hinge on a window "closing" -- the last window of a stream gets its facts too.

Run with `citycam streams` (a faust worker without its web server).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import Counter

from citycam.config import KafkaSettings, Settings, get_settings
from schemas import (
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    TRAFFIC_DENSITY_TOPIC,
    ContractError,
    DeadLetter,
    FrameDetections,
)
from streams.density import add_frame, facts_for, parse_window_key, window_key, window_start

log = logging.getLogger(__name__)

FRAMES_COUNTED = Counter("citycam_streams_frames", "Detection frames counted", ["camera"])
DUPLICATES = Counter("citycam_streams_duplicates", "Redelivered frames skipped", ["camera"])
LATE = Counter("citycam_streams_late_frames", "Frames older than the window expiry", ["camera"])
FACTS = Counter("citycam_streams_facts", "Density facts emitted", ["camera"])
DEAD = Counter("citycam_streams_dead_letters", "Detection messages refused")


def broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "broker": [f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(",")],
        "broker_session_timeout": kafka.session_timeout_s,
        "broker_heartbeat_interval": 1,
    }
    if kafka.sasl_mechanism:
        ssl_context = None
        if kafka.security_protocol == "SASL_SSL":
            import ssl

            ssl_context = ssl.create_default_context(
                cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None
            )
        options["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username or "",
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else "",
            mechanism=kafka.sasl_mechanism,
            ssl_context=ssl_context,
        )
    elif kafka.security_protocol == "SSL":
        import ssl

        options["broker_credentials"] = faust.SSLCredentials(
            ssl.create_default_context(
                cafile=str(kafka.ssl_ca_location) if kafka.ssl_ca_location else None
            )
        )
    return options


def create_app(settings: Settings) -> faust.App:
    (settings.data_dir / "streams").mkdir(parents=True, exist_ok=True)
    partitions = DETECTIONS_TOPIC.partitions or settings.kafka.partitions
    return faust.App(
        "citycam-streams",
        **broker_options(settings.kafka),
        store="memory://",
        datadir=str(settings.data_dir / "streams"),
        topic_partitions=partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        # aiokafka's idempotent producer is not portable across Kafka-protocol brokers; the
        # job is idempotent by construction instead (see module docstring).
        processing_guarantee="at_least_once",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )


settings = get_settings()
app = create_app(settings)
detections_topic = app.topic(DETECTIONS_TOPIC.name, key_serializer="raw", value_serializer="raw")
facts_topic = app.topic(TRAFFIC_DENSITY_TOPIC.name, key_serializer="raw", value_serializer="raw")
dead_letter_topic = app.topic(DEAD_LETTERS_TOPIC.name, key_serializer="raw", value_serializer="raw")

# Window states keyed "camera|window_start"; the changelog follows the source partition.
windows = app.Table("traffic-density-windows", default=None, key_type=str, value_type=dict)

dirty: set[str] = set()  # windows changed since their last emission
camera_windows: dict[str, set[int]] = {}  # in-memory index of the table, for expiry
_refresh_all = True  # re-emit everything this worker holds once state is (re)assigned


@app.on_rebalance_complete.connect  # type: ignore[arg-type]  # faust's stub omits async receivers
async def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    global _refresh_all
    _refresh_all = True
    camera_windows.clear()


@app.agent(detections_topic)
async def count_density(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await handle(event)


async def handle(event: EventT) -> None:
    try:
        frame = FrameDetections.from_bytes(event.value)
    except ContractError as exc:
        await dead_letter(event, exc.reason)
        return
    ts = frame.captured_at.timestamp()
    start = window_start(ts, settings.streams.window_s)
    known = windows_of(frame.camera_id)
    newest = max(known, default=start)
    if start < newest - settings.streams.window_expires_s:
        LATE.labels(frame.camera_id).inc()
        return
    key = window_key(frame.camera_id, start)
    state = add_frame(windows.get(key), frame, settings.streams)
    dirty.add(key)  # a redelivery also re-marks: its window's facts may never have gone out
    if state is None:
        DUPLICATES.labels(frame.camera_id).inc()
        return
    windows[key] = state
    known.add(start)
    FRAMES_COUNTED.labels(frame.camera_id).inc()
    expire(frame.camera_id, known, newest)


def windows_of(camera_id: str) -> set[int]:
    if camera_id not in camera_windows:
        camera_windows[camera_id] = {
            start for cam, start in map(parse_window_key, list(windows.keys())) if cam == camera_id
        }
    return camera_windows[camera_id]


def expire(camera_id: str, known: set[int], newest: int) -> None:
    """Drop windows past expiry (inside the agent: table writes need the event's partition)."""
    for start in [s for s in known if s < newest - settings.streams.window_expires_s]:
        key = window_key(camera_id, start)
        if key in dirty:
            continue  # emit its final facts first; the next frame expires it
        windows.pop(key, None)
        known.discard(start)


async def dead_letter(event: EventT, reason: str) -> None:
    DEAD.inc()
    msg = event.message
    source = (msg.topic, msg.partition, msg.offset)
    letter = DeadLetter.about("streams", source, msg.key, msg.value, reason)
    log.warning("dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
    await dead_letter_topic.send(key=msg.key, value=letter.to_bytes())


@app.timer(interval=settings.streams.flush_interval_s)
async def flush_changed_windows() -> None:
    global _refresh_all
    if _refresh_all:
        dirty.update(windows.keys())
        _refresh_all = False
    emitted_at = datetime.now(UTC)
    for key in list(dirty):
        dirty.discard(key)
        state = windows.get(key)
        if state is None:
            continue
        camera_id, start = parse_window_key(key)
        for fact in facts_for(camera_id, start, state, settings.streams, emitted_at):
            await facts_topic.send(
                key=camera_id.encode(),
                value=fact.to_bytes(),
                timestamp=fact.window_start.timestamp(),
            )
            FACTS.labels(camera_id).inc()
