"""The topic registry: every Kafka topic citycam uses, its key, contract and retention.

Topics are created explicitly at start-up (`citycam topics create`) rather than auto-created,
so partition counts and retention are what this file says on every cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas._base import Event
from schemas.alerts import TrafficAlert
from schemas.deadletter import DeadLetter
from schemas.detections import FrameDetections
from schemas.facts import LineCrossings, TrafficDensity, ZoneOccupancy
from schemas.frames import FrameRef
from schemas.health import CameraHealth

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    schema: type[Event]
    retention_ms: int
    description: str
    partitions: int | None = None  # None: the cluster-wide default from config

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


FRAMES = TopicSpec(
    name="citycam.frames.v1",
    key="camera_id",
    schema=FrameRef,
    retention_ms=6 * HOUR_MS,
    description="Sampled frames, by reference to the frame store.",
)
DETECTIONS = TopicSpec(
    name="citycam.detections.v1",
    key="camera_id",
    schema=FrameDetections,
    retention_ms=3 * 24 * HOUR_MS,
    description="Detector output per frame (agencies may consume it).",
)
TRAFFIC_DENSITY = TopicSpec(
    name="citycam.facts.traffic-density.v1",
    key="camera_id",
    schema=TrafficDensity,
    retention_ms=7 * 24 * HOUR_MS,
    description="Per camera, class and minute: vehicles in view and PCU.",
)
LINE_CROSSINGS = TopicSpec(
    name="citycam.facts.line-crossings.v1",
    key="camera_id",
    schema=LineCrossings,
    retention_ms=7 * 24 * HOUR_MS,
    description="Per camera, counting line, direction, class and minute: crossings, PCU "
    "flow and ground speed.",
)
ZONE_OCCUPANCY = TopicSpec(
    name="citycam.facts.zone-occupancy.v1",
    key="camera_id",
    schema=ZoneOccupancy,
    retention_ms=7 * 24 * HOUR_MS,
    description="Per camera, zone and minute: road users inside the zone and its occupied share.",
)
ALERTS = TopicSpec(
    name="citycam.alerts.v1",
    key="camera_id",
    schema=TrafficAlert,
    retention_ms=30 * 24 * HOUR_MS,
    description="Congestion and abnormal-flow episodes per camera: open, ongoing, closed.",
)
CAMERA_HEALTH = TopicSpec(
    name="citycam.ops.camera-health.v1",
    key="camera_id",
    schema=CameraHealth,
    retention_ms=7 * 24 * HOUR_MS,
    description="Per camera and wall-clock minute, from ingest: frames decoded and published, "
    "decode errors, reconnects, fps, up share and capture-to-publish lag.",
)
DEAD_LETTERS = TopicSpec(
    name="citycam.dead-letters.v1",
    key="source topic key",
    schema=DeadLetter,
    retention_ms=30 * 24 * HOUR_MS,
    description="Messages a stage refused, with the reason and the original bytes.",
)

TOPICS: tuple[TopicSpec, ...] = (
    FRAMES,
    DETECTIONS,
    TRAFFIC_DENSITY,
    LINE_CROSSINGS,
    ZONE_OCCUPANCY,
    ALERTS,
    CAMERA_HEALTH,
    DEAD_LETTERS,
)


def topic_by_name(name: str) -> TopicSpec:
    for spec in TOPICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown topic {name!r}; known: {', '.join(t.name for t in TOPICS)}")
