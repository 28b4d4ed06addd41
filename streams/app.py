"""The streams job: detections -> per-minute facts, as a Faust app.

Facts: traffic density per camera and class (streams.density), and, for cameras whose
registry entry has geometry, line crossings per line, direction and class and occupancy per
zone (streams.counting). One agent reads the detections once: a refused message is
dead-lettered once, and every frame feeds both.

Emission model: a window's facts are re-emitted whenever it changed, at most every
flush_interval_s, and once more after a rebalance (state may have moved). Every emission
carries the window's running totals, never a delta, and the warehouse keeps the emission
with the most frames (ReplacingMergeTree(frames)). So a repeat is harmless, and the final
figures never hinge on a window "closing" -- the last window of a stream gets its facts too.

Run with `citycam streams` (a faust worker without its web server).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import Counter

from citycam.cameras import load_cameras
from citycam.config import KafkaSettings, Settings, get_settings
from schemas import (
    DEAD_LETTERS_TOPIC,
    DETECTIONS_TOPIC,
    LINE_CROSSINGS_TOPIC,
    TRAFFIC_DENSITY_TOPIC,
    ZONE_OCCUPANCY_TOPIC,
    ContractError,
    DeadLetter,
    FrameDetections,
    LineCrossings,
    ZoneOccupancy,
)
from streams.counting import count_frame, stale_tracks, tracked_road_users, window_facts
from streams.density import add_frame, facts_for, parse_window_key, window_key, window_start
from streams.layout import Layouts

log = logging.getLogger(__name__)

FRAMES_COUNTED = Counter("citycam_streams_frames", "Detection frames counted", ["camera"])
DUPLICATES = Counter("citycam_streams_duplicates", "Redelivered frames skipped", ["camera"])
LATE = Counter("citycam_streams_late_frames", "Frames older than the window expiry", ["camera"])
FACTS = Counter("citycam_streams_facts", "Density facts emitted", ["camera"])
DEAD = Counter("citycam_streams_dead_letters", "Detection messages refused")
CROSSINGS = Counter(
    "citycam_streams_line_crossings", "Line crossings counted", ["camera", "line", "direction"]
)
GEOMETRY_FACTS = Counter(
    "citycam_streams_geometry_facts", "Line-crossing and zone-occupancy facts emitted", ["camera"]
)


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
crossings_topic = app.topic(LINE_CROSSINGS_TOPIC.name, key_serializer="raw", value_serializer="raw")
occupancy_topic = app.topic(ZONE_OCCUPANCY_TOPIC.name, key_serializer="raw", value_serializer="raw")


class WindowStore:
    """A table of window states keyed "camera|window_start" and what the job keeps beside it:
    an in-memory index of each camera's window starts (for expiry), the windows changed since
    their last emission, and whether to re-emit everything once state is (re)assigned."""

    def __init__(self, table: Any, expires_s: int) -> None:
        self.table = table
        self.expires_s = expires_s
        self.changed: set[str] = set()
        self._starts: dict[str, set[int]] = {}
        self._everything = True

    def reassigned(self) -> None:
        self._everything = True
        self._starts.clear()

    def starts(self, camera_id: str) -> set[int]:
        if camera_id not in self._starts:
            keys = list(self.table.keys())
            self._starts[camera_id] = {
                start for cam, start in map(parse_window_key, keys) if cam == camera_id
            }
        return self._starts[camera_id]

    def too_late(self, camera_id: str, start: int) -> bool:
        """Whether a window starting at `start` has expired already."""
        return start < max(self.starts(camera_id), default=start) - self.expires_s

    def stored(self, camera_id: str, start: int) -> None:
        """Index a window just written; drop the camera's expired windows (inside the agent:
        table writes need the event's partition), except those whose final facts are still to
        go out: the next frame expires them."""
        known = self.starts(camera_id)
        newest = max(known, default=start)
        known.add(start)
        for old in [s for s in known if s < newest - self.expires_s]:
            key = window_key(camera_id, old)
            if key not in self.changed:
                self.table.pop(key, None)
                known.discard(old)

    def drain(self) -> Iterator[tuple[str, int, Any]]:
        """(camera, window start, state) of every window changed since the last drain."""
        if self._everything:
            self.changed.update(self.table.keys())
            self._everything = False
        for key in list(self.changed):
            self.changed.discard(key)
            state = self.table.get(key)
            if state is not None:
                camera_id, start = parse_window_key(key)
                yield camera_id, start, state


# Window states keyed "camera|window_start"; the changelog follows the source partition.
density_windows = WindowStore(
    app.Table("traffic-density-windows", default=None, key_type=str, value_type=None),
    settings.streams.window_expires_s,
)

# Line crossings and zone occupancy. Windows keyed "camera|window_start" as above; the state
# of each track keyed "camera|track_id", so a restarted worker resumes its tracks. Both tables'
# changelogs follow the source partition (frames are keyed by camera), so one worker owns a
# camera's windows and tracks together. The registry is read once, at start.
layouts = Layouts(load_cameras(settings.cameras_file), settings.streams)
geometry_windows = WindowStore(
    app.Table("geometry-windows", default=None, key_type=str, value_type=None),
    settings.streams.window_expires_s,
)
tracks = app.Table("line-crossing-tracks", default=None, key_type=str, value_type=None)
camera_tracks: dict[str, dict[int, float]] = {}  # in-memory index of tracks: id -> last seen


@app.on_rebalance_complete.connect  # type: ignore[arg-type]  # faust's stub omits async receivers
async def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    density_windows.reassigned()
    geometry_windows.reassigned()
    camera_tracks.clear()


@app.agent(detections_topic)
async def count_detections(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await handle(event)


async def handle(event: EventT) -> None:
    try:
        frame = FrameDetections.from_bytes(event.value)
    except ContractError as exc:
        await dead_letter(event, exc.reason)
        return
    count_density(frame)
    count_geometry(frame)


def count_density(frame: FrameDetections) -> None:
    ts = frame.captured_at.timestamp()
    start = window_start(ts, settings.streams.window_s)
    if density_windows.too_late(frame.camera_id, start):
        LATE.labels(frame.camera_id).inc()
        return
    key = window_key(frame.camera_id, start)
    state = add_frame(density_windows.table.get(key), frame, settings.streams)
    # a redelivery also re-marks: its window's facts may never have gone out
    density_windows.changed.add(key)
    if state is None:
        DUPLICATES.labels(frame.camera_id).inc()
        return
    density_windows.table[key] = state
    FRAMES_COUNTED.labels(frame.camera_id).inc()
    density_windows.stored(frame.camera_id, start)


def count_geometry(frame: FrameDetections) -> None:
    """Line crossings and zone occupancy of one frame (cameras with geometry only)."""
    layout = layouts.get(frame.camera_id, frame.width, frame.height)
    if layout is None or not layout.counts_anything:
        return
    camera_id, ts = frame.camera_id, frame.captured_at.timestamp()
    start = window_start(ts, settings.streams.window_s)
    if geometry_windows.too_late(camera_id, start):
        return  # LATE counted by density
    key = window_key(camera_id, start)
    states = {
        t: tracks.get(track_key(camera_id, t)) for t in tracked_road_users(frame, settings.streams)
    }
    window = geometry_windows.table.get(key)
    result = count_frame(frame, layout, window, states, settings.streams)
    geometry_windows.changed.add(key)
    if result is None:
        return  # a redelivery
    # The window first: if the worker dies between the two writes, a redelivered frame is
    # skipped by the window and its tracks count their crossing on their next frame instead.
    geometry_windows.table[key] = result.window
    seen = tracks_of(camera_id)
    for track_id, state in result.tracks.items():
        tracks[track_key(camera_id, track_id)] = state
        seen[track_id] = ts
    for track_id in stale_tracks(seen, ts, settings.streams):
        tracks.pop(track_key(camera_id, track_id), None)
        del seen[track_id]
    for crossing in result.crossings:
        CROSSINGS.labels(camera_id, crossing.line_id, crossing.direction).inc()
    geometry_windows.stored(camera_id, start)


def track_key(camera_id: str, track_id: int) -> str:
    return f"{camera_id}|{track_id}"


def tracks_of(camera_id: str) -> dict[int, float]:
    """The camera's tracks in the table and when each was last seen (capture time)."""
    if camera_id not in camera_tracks:
        index: dict[int, float] = {}
        for key in list(tracks.keys()):
            cam, track_id = key.rsplit("|", 1)
            state = tracks.get(key)
            if cam == camera_id and state is not None:
                index[int(track_id)] = state["ts"]
        camera_tracks[camera_id] = index
    return camera_tracks[camera_id]


async def dead_letter(event: EventT, reason: str) -> None:
    DEAD.inc()
    msg = event.message
    source = (msg.topic, msg.partition, msg.offset)
    letter = DeadLetter.about("streams", source, msg.key, msg.value, reason)
    log.warning("dead-lettered %s[%s]@%s: %s", msg.topic, msg.partition, msg.offset, reason)
    await dead_letter_topic.send(key=msg.key, value=letter.to_bytes())


@app.timer(interval=settings.streams.flush_interval_s)
async def flush_changed_windows() -> None:
    emitted_at = datetime.now(UTC)
    for camera_id, start, state in density_windows.drain():
        for fact in facts_for(camera_id, start, state, settings.streams, emitted_at):
            await facts_topic.send(
                key=camera_id.encode(),
                value=fact.to_bytes(),
                timestamp=fact.window_start.timestamp(),
            )
            FACTS.labels(camera_id).inc()


@app.timer(interval=settings.streams.flush_interval_s)
async def flush_changed_geometry_windows() -> None:
    """Line-crossing and zone-occupancy facts of changed windows, as density's timer does."""
    emitted_at = datetime.now(UTC)
    for camera_id, start, state in geometry_windows.drain():
        width, height = state["size"]
        layout = layouts.get(camera_id, width, height)
        if layout is None:
            continue  # not in this worker's registry any more
        for fact in window_facts(camera_id, start, state, layout, settings.streams, emitted_at):
            await send_fact(fact)
            GEOMETRY_FACTS.labels(camera_id).inc()


async def send_fact(fact: LineCrossings | ZoneOccupancy) -> None:
    topic = crossings_topic if isinstance(fact, LineCrossings) else occupancy_topic
    await topic.send(
        key=fact.camera_id.encode(), value=fact.to_bytes(), timestamp=fact.window_start.timestamp()
    )
