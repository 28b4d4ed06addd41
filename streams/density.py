"""Traffic density per camera, vehicle class and tumbling window: pure logic, no Kafka.

A window's state is a small JSON-able dict so it can live in a Faust table (changelogged):
    {"frames": int, "last_ts": float, "classes": {vehicle_class: [boxes, max_in_frame]}}
`last_ts` makes adding idempotent: one camera's frames arrive in capture order on one
partition, so a frame not newer than the last one counted is a redelivery and is skipped.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from citycam.config import StreamsSettings
from schemas import FrameDetections, TrafficDensity

WindowState = dict[str, Any]


def window_start(ts: float, window_s: int) -> int:
    """Epoch seconds of the start of the tumbling window holding ts."""
    return int(math.floor(ts / window_s) * window_s)


def window_key(camera_id: str, start: int) -> str:
    return f"{camera_id}|{start}"


def parse_window_key(key: str) -> tuple[str, int]:
    camera_id, start = key.rsplit("|", 1)
    return camera_id, int(start)


def count_vehicles(frame: FrameDetections, settings: StreamsSettings) -> Counter[str]:
    """Boxes per vehicle class on one frame, above the counting score threshold.

    A rider (a person with ``rider_of`` set) is not counted: their vehicle is, once. That
    matters when ``vehicle_classes`` maps ``person`` to a class, e.g. pedestrians.
    """
    return Counter(
        settings.vehicle_classes[d.class_name]
        for d in frame.detections
        if d.class_name in settings.vehicle_classes
        and d.score >= settings.min_score
        and d.rider_of is None
    )


def add_frame(
    state: WindowState | None, frame: FrameDetections, settings: StreamsSettings
) -> WindowState | None:
    """The window state with the frame counted, or None if it was already counted."""
    ts = frame.captured_at.timestamp()
    state = state or {"frames": 0, "last_ts": -math.inf, "classes": {}}
    if ts <= state["last_ts"]:
        return None
    classes = {k: list(v) for k, v in state["classes"].items()}
    for vehicle_class, n in count_vehicles(frame, settings).items():
        boxes, most = classes.get(vehicle_class, [0, 0])
        classes[vehicle_class] = [boxes + n, max(most, n)]
    return {"frames": state["frames"] + 1, "last_ts": ts, "classes": classes}


def facts_for(
    camera_id: str,
    start: int,
    state: WindowState,
    settings: StreamsSettings,
    emitted_at: datetime | None = None,
) -> list[TrafficDensity]:
    """One fact per configured vehicle class, zeros included: no vehicles is information too."""
    begin = datetime.fromtimestamp(start, UTC)
    emitted_at = emitted_at or datetime.now(UTC)
    facts = []
    for vehicle_class in sorted(set(settings.vehicle_classes.values())):
        boxes, most = state["classes"].get(vehicle_class, [0, 0])
        factor = settings.factor(vehicle_class)
        facts.append(
            TrafficDensity(
                camera_id=camera_id,
                window_start=begin,
                window_end=begin + timedelta(seconds=settings.window_s),
                vehicle_class=vehicle_class,
                frames=state["frames"],
                detections=boxes,
                mean_in_view=round(boxes / state["frames"], 4),
                max_in_view=most,
                pcu_factor=factor,
                pcu=round(boxes * factor, 4),
                pcu_version=settings.pcu_version,
                emitted_at=emitted_at,
            )
        )
    return facts
