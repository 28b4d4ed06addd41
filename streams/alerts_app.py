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
  alerts. Both share one streams.alerts.Alerter over three changelogged tables
  (alert-states per camera, alert-pending and alert-evidence per camera and minute).

Delivery: an alert is sent when the fact that settled its minute is processed; a fact
redelivered after a restart finds its minute judged (if the table recovered it) and sends
nothing, or judges it again and sends the same alert (same alert_id, state and as_of) again.
Consumers keep the message with the latest as_of per alert_id, as the warehouse does.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
from faust.types import EventT
from prometheus_client import Counter

from schemas import (
    ALERTS_TOPIC,
    LINE_CROSSINGS_TOPIC,
    ZONE_OCCUPANCY_TOPIC,
    ContractError,
    FrameDetections,
    LineCrossings,
    ZoneOccupancy,
)
from streams.alerts import (
    EVIDENCE_TOPIC,
    Alerter,
    EvidenceRecord,
    better_evidence,
    evidence_candidate,
)
from streams.app import app, dead_letter, detections_topic, settings

log = logging.getLogger(__name__)

ALERTS = Counter(
    "citycam_streams_alerts", "Alerts published", ["camera", "kind", "state", "severity"]
)
LATE_FACTS = Counter(
    "citycam_streams_alert_late_facts", "Facts for minutes alerts had already judged", ["camera"]
)

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
alerts_topic = app.topic(ALERTS_TOPIC.name, key_serializer="raw", value_serializer="raw")

# value_type None: JSON as is. (value_type=dict would fail to decode the changelog at
# recovery: Faust calls dict.from_data.)
alert_states = app.Table("alert-states", default=None, key_type=str, value_type=None)
alert_pending = app.Table("alert-pending", default=None, key_type=str, value_type=None)
alert_evidence = app.Table("alert-evidence", default=None, key_type=str, value_type=None)
alerter = Alerter(alert_states, alert_pending, alert_evidence, settings.streams.alerts)

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
    counted, alerts = alerter.add_fact(fact, datetime.now(UTC))
    if not counted:
        LATE_FACTS.labels(fact.camera_id).inc()
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
