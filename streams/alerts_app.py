"""Congestion and abnormal-flow alerts in the streams job, published on citycam.alerts.v1.

Registers agents on streams.app's Faust app (`citycam streams` imports this module; the logic
is streams.alerts):

- `pick_evidence` reads detections and forwards, per camera and minute, each frame that is
  the most crowded so far to the internal topic `citycam-streams-alert-evidence`, keyed by
  camera. The hop is a repartition: detections are partitioned by the inference producer
  (librdkafka's hash), facts by Faust (Kafka's murmur2), so only after it do a camera's
  evidence and facts share a partition number, and with it a worker and a table changelog
  partition. Unreadable detections are skipped here; the density agent dead-letters them.
- `keep_evidence` stores that evidence, `raise_alerts` buffers the line-crossings and
  zone-occupancy facts, judges each camera's minutes as they settle and publishes the
  alerts. They share one streams.alerts.Alerter over three changelogged tables
  (alert-states per camera, alert-pending and alert-evidence per camera and minute).
- Silence (streams.alerts, rule 4). `forward_health` repartitions ingest's camera-health
  reports (citycam.ops.camera-health.v1, librdkafka's hash) the same way, as
  (camera, minute, frames published), onto the internal topic `citycam-streams-alert-clock`;
  `keep_time` hands them to the Alerter, whose dead minutes settle a silent camera's minutes
  and close its episodes by event time. The wall-clock fallback: every SILENCE_CHECK_S the
  timer `find_silent_cameras` posts a check for each camera without facts for
  `silent_close_s` onto that topic, keyed by camera, and `keep_time` runs it. A timer cannot
  write tables (Faust writes a table's changelog partition from the event being processed),
  hence the message; its owner checks again that the camera is still silent, so a check sent
  by a standby replica or redelivered after a restart does nothing.
- Seeding (streams.alerts, "Seeding"). With `seed_from_warehouse`, `raise_alerts` reads a
  camera's flow history from the warehouse the first time it sees the camera with no flow
  learned, before the fact is buffered, in a thread (the event loop keeps running; other
  cameras' facts wait behind this one, as they would behind any slow fact).

Delivery: an alert is sent when the message that settled its minute (a fact, a dead health
minute or a silence check) is processed; one redelivered after a restart finds its minute
judged (if the table recovered it) and sends nothing, or judges it again and sends the same
alert (same alert_id, state and as_of) again. Consumers keep the message with the latest as_of
per alert_id, as the warehouse does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import EventT
from prometheus_client import Counter

from schemas import (
    ALERTS_TOPIC,
    CAMERA_HEALTH_TOPIC,
    LINE_CROSSINGS_TOPIC,
    ZONE_OCCUPANCY_TOPIC,
    CameraHealth,
    ContractError,
    FrameDetections,
    LineCrossings,
    TrafficAlert,
    ZoneOccupancy,
)
from streams.alerts import (
    CLOCK_TOPIC,
    EVIDENCE_TOPIC,
    Alerter,
    BaselineSeeder,
    EvidenceRecord,
    better_evidence,
    evidence_candidate,
    minute_of,
)
from streams.app import app, dead_letter, detections_topic, settings

log = logging.getLogger(__name__)

ALERTS = Counter(
    "citycam_streams_alerts", "Alerts published", ["camera", "kind", "state", "severity"]
)
LATE_FACTS = Counter(
    "citycam_streams_alert_late_facts", "Facts for minutes alerts had already judged", ["camera"]
)
SILENCE_CHECK_S = 30.0  # how often the wall-clock fallback looks for silent cameras

alert_settings = settings.streams.alerts
partitions = LINE_CROSSINGS_TOPIC.partitions or settings.kafka.partitions
facts_topic = app.topic(
    LINE_CROSSINGS_TOPIC.name,
    ZONE_OCCUPANCY_TOPIC.name,
    key_serializer="raw",
    value_serializer="raw",
)
evidence_topic = app.topic(
    EVIDENCE_TOPIC,
    key_serializer="raw",
    value_serializer="raw",
    partitions=partitions,
    internal=True,
    retention=24 * 3600,
)
health_topic = app.topic(CAMERA_HEALTH_TOPIC.name, key_serializer="raw", value_serializer="raw")
clock_topic = app.topic(
    CLOCK_TOPIC,
    key_serializer="raw",
    value_serializer="raw",
    partitions=partitions,
    internal=True,
    retention=24 * 3600,
)
alerts_topic = app.topic(ALERTS_TOPIC.name, key_serializer="raw", value_serializer="raw")

# value_type None: JSON as is. (value_type=dict would fail to decode the changelog at
# recovery: Faust calls dict.from_data.)
alert_states = app.Table("alert-states", default=None, key_type=str, value_type=None)
alert_pending = app.Table("alert-pending", default=None, key_type=str, value_type=None)
alert_evidence = app.Table("alert-evidence", default=None, key_type=str, value_type=None)
alerter = Alerter(alert_states, alert_pending, alert_evidence, alert_settings)
seeder = (
    BaselineSeeder(settings.warehouse, alert_settings)
    if alert_settings.seed_from_warehouse
    else None
)

best_frame: dict[str, tuple[int, EvidenceRecord]] = {}  # camera -> its newest minute's best


@app.on_rebalance_complete.connect  # type: ignore[arg-type]  # faust's stub omits async receivers
async def _after_rebalance(sender: Any, *args: Any, signal: Any, **kwargs: Any) -> None:
    alerter.forget_index()


@app.agent(detections_topic)
async def pick_evidence(stream: faust.StreamT) -> None:
    async for event in stream.events():
        try:
            frame = FrameDetections.from_bytes(event.value)
        except ContractError:
            continue
        minute, record = evidence_candidate(frame, settings.streams)
        current = best_frame.get(frame.camera_id)
        if current is not None and (
            minute < current[0]
            or (minute == current[0] and not better_evidence(current[1], record))
        ):
            continue
        best_frame[frame.camera_id] = (minute, record)
        payload = {"camera_id": frame.camera_id, "minute": minute, "frame": record}
        await evidence_topic.send(key=frame.camera_id.encode(), value=orjson.dumps(payload))


@app.agent(evidence_topic)
async def keep_evidence(stream: faust.StreamT) -> None:
    async for value in stream:
        try:
            data = orjson.loads(value)
            alerter.add_evidence(data["camera_id"], int(data["minute"]), list(data["frame"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("unreadable alert evidence skipped: %s", exc)


@app.agent(facts_topic)
async def raise_alerts(stream: faust.StreamT) -> None:
    async for event in stream.events():
        await handle_fact(event)


async def handle_fact(event: EventT) -> None:
    schema = LineCrossings if event.message.topic == LINE_CROSSINGS_TOPIC.name else ZoneOccupancy
    try:
        fact = schema.from_bytes(event.value)
    except ContractError as exc:
        await dead_letter(event, exc.reason)
        return
    await seed_camera(fact.camera_id, minute_of(fact.window_start.timestamp()))
    counted, alerts = alerter.add_fact(fact, datetime.now(UTC))
    if not counted:
        LATE_FACTS.labels(fact.camera_id).inc()
    await publish(alerts)


async def seed_camera(camera_id: str, until: int) -> None:
    """Seed the camera's flow baselines from history before minute `until`, if it is new."""
    if seeder is None or not alerter.claim_seed(camera_id):
        return
    baselines = await asyncio.to_thread(seeder.baselines, camera_id, until)
    alerter.seed(camera_id, baselines)


@app.agent(health_topic)
async def forward_health(stream: faust.StreamT) -> None:
    async for value in stream:
        try:
            report = CameraHealth.from_bytes(value)
        except ContractError:
            continue  # the sink dead-letters it
        payload = {
            "camera_id": report.camera_id,
            "minute": int(report.window_start.timestamp()),
            "published": report.frames_published,
        }
        await clock_topic.send(key=report.camera_id.encode(), value=orjson.dumps(payload))


@app.agent(clock_topic)
async def keep_time(stream: faust.StreamT) -> None:
    async for value in stream:
        try:
            data = orjson.loads(value)
            camera_id = str(data["camera_id"])
            health = None if data.get("silent") else (int(data["minute"]), int(data["published"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.warning("unreadable alert clock message skipped: %s", exc)
            continue
        now = datetime.now(UTC)
        if health is None:
            await publish(alerter.close_silent(camera_id, now, time.time()))
        else:
            await publish(alerter.add_health(camera_id, *health, now))


@app.timer(interval=SILENCE_CHECK_S)
async def find_silent_cameras() -> None:
    for camera_id in alerter.silent_cameras(time.time()):
        payload = {"camera_id": camera_id, "silent": True}
        await clock_topic.send(key=camera_id.encode(), value=orjson.dumps(payload))


async def publish(alerts: Iterable[TrafficAlert]) -> None:
    for alert in alerts:
        log.info(
            "%s %s %s (%s, since %s)",
            alert.kind,
            alert.state,
            alert.alert_id,
            alert.severity,
            alert.started_at.isoformat(),
        )
        await alerts_topic.send(
            key=alert.camera_id.encode(),
            value=alert.to_bytes(),
            timestamp=alert.as_of.timestamp(),
        )
        ALERTS.labels(alert.camera_id, alert.kind, alert.state, alert.severity).inc()
