"""citycam's event contracts: the only thing stages share about data."""

from schemas._base import ContractError, Event
from schemas.alerts import Evidence, TrafficAlert
from schemas.deadletter import DeadLetter
from schemas.detections import BoundingBox, Detection, FrameDetections
from schemas.facts import LineCrossings, TrafficDensity, ZoneOccupancy
from schemas.frames import FrameRef
from schemas.health import CameraHealth
from schemas.topics import (
    ALERTS as ALERTS_TOPIC,
)
from schemas.topics import (
    CAMERA_HEALTH as CAMERA_HEALTH_TOPIC,
)
from schemas.topics import (
    DEAD_LETTERS as DEAD_LETTERS_TOPIC,
)
from schemas.topics import (
    DETECTIONS as DETECTIONS_TOPIC,
)
from schemas.topics import (
    FRAMES as FRAMES_TOPIC,
)
from schemas.topics import (
    LINE_CROSSINGS as LINE_CROSSINGS_TOPIC,
)
from schemas.topics import (
    TOPICS,
    TopicSpec,
    topic_by_name,
)
from schemas.topics import (
    TRAFFIC_DENSITY as TRAFFIC_DENSITY_TOPIC,
)
from schemas.topics import (
    ZONE_OCCUPANCY as ZONE_OCCUPANCY_TOPIC,
)

CONTRACTS: tuple[type[Event], ...] = (
    FrameRef,
    FrameDetections,
    TrafficDensity,
    LineCrossings,
    ZoneOccupancy,
    TrafficAlert,
    CameraHealth,
    DeadLetter,
)

__all__ = [
    "ALERTS_TOPIC",
    "CAMERA_HEALTH_TOPIC",
    "CONTRACTS",
    "DEAD_LETTERS_TOPIC",
    "DETECTIONS_TOPIC",
    "FRAMES_TOPIC",
    "LINE_CROSSINGS_TOPIC",
    "TOPICS",
    "TRAFFIC_DENSITY_TOPIC",
    "ZONE_OCCUPANCY_TOPIC",
    "BoundingBox",
    "CameraHealth",
    "ContractError",
    "DeadLetter",
    "Detection",
    "Event",
    "Evidence",
    "FrameDetections",
    "FrameRef",
    "LineCrossings",
    "TopicSpec",
    "TrafficAlert",
    "TrafficDensity",
    "ZoneOccupancy",
    "topic_by_name",
]
