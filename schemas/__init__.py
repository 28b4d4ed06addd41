"""citycam's event contracts: the only thing stages share about data."""

from schemas._base import ContractError, Event
from schemas.deadletter import DeadLetter
from schemas.detections import BoundingBox, Detection, FrameDetections
from schemas.facts import TrafficDensity
from schemas.frames import FrameRef
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
    TOPICS,
    TopicSpec,
    topic_by_name,
)
from schemas.topics import (
    TRAFFIC_DENSITY as TRAFFIC_DENSITY_TOPIC,
)

CONTRACTS: tuple[type[Event], ...] = (FrameRef, FrameDetections, TrafficDensity, DeadLetter)

__all__ = [
    "CONTRACTS",
    "DEAD_LETTERS_TOPIC",
    "DETECTIONS_TOPIC",
    "FRAMES_TOPIC",
    "TOPICS",
    "TRAFFIC_DENSITY_TOPIC",
    "BoundingBox",
    "ContractError",
    "DeadLetter",
    "Detection",
    "Event",
    "FrameDetections",
    "FrameRef",
    "TopicSpec",
    "TrafficDensity",
    "topic_by_name",
]
