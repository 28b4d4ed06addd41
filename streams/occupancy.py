"""Zone occupancy per camera, zone and window: pure logic, no Kafka.

An object is in a zone when its anchor (bottom centre of its box: where it touches the
ground) lies inside the zone's polygon, edges included (streams.geometry.in_polygon). Objects
are the road-user classes (vehicles and pedestrians) at or above `min_score`, tracked or not:
occupancy is a per-frame count and needs no identity. A person riding a vehicle is not
counted; the vehicle is, once.

The `zones` part of streams.counting's window state, JSON-able:
    {zone_id: {"objects": int, "max": int, "occupied": int, "pcu": float,
               "classes": {class: objects}}}
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from citycam.config import StreamsSettings
from schemas import FrameDetections, ZoneOccupancy
from streams.geometry import anchors, in_polygon
from streams.layout import CameraLayout

ZoneState = dict[str, Any]


def objects_in_zones(
    frame: FrameDetections, layout: CameraLayout, settings: StreamsSettings
) -> dict[str, Counter[str]]:
    """Objects per class inside each zone of the layout on one frame (every zone present)."""
    classes = settings.road_user_classes
    counted = [
        d
        for d in frame.detections
        if d.class_name in classes and d.score >= settings.min_score and d.rider_of is None
    ]
    out: dict[str, Counter[str]] = {zone.id: Counter() for zone in layout.zones}
    if not counted or not layout.zones:
        return out
    points = anchors([[d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2] for d in counted])
    for zone in layout.zones:
        inside = in_polygon(points, zone.polygon)
        out[zone.id] = Counter(
            classes[d.class_name] for d, ok in zip(counted, inside.tolist(), strict=True) if ok
        )
    return out


def add_zone_frame(
    zones: dict[str, ZoneState],
    counts: dict[str, Counter[str]],
    layout: CameraLayout,
    settings: StreamsSettings,
) -> dict[str, ZoneState]:
    """The window's `zones` part with one more frame's counts (a new dict)."""
    out = {
        zone_id: {**state, "classes": dict(state["classes"])} for zone_id, state in zones.items()
    }
    for zone_id, by_class in counts.items():
        state = out.get(zone_id) or {
            "objects": 0,
            "max": 0,
            "occupied": 0,
            "pcu": 0.0,
            "classes": {},
        }
        n = sum(by_class.values())
        pcu = sum(settings.pcu_factor(layout.pcu, c) * k for c, k in by_class.items())
        state["objects"] += n
        state["max"] = max(state["max"], n)
        state["occupied"] += 1 if n else 0
        state["pcu"] = round(state["pcu"] + pcu, 6)
        for c, k in by_class.items():
            state["classes"][c] = state["classes"].get(c, 0) + k
        out[zone_id] = state
    return out


def occupancy_facts(
    camera_id: str,
    start: int,
    frames: int,
    zones: dict[str, ZoneState],
    layout: CameraLayout,
    settings: StreamsSettings,
    emitted_at: datetime | None = None,
) -> list[ZoneOccupancy]:
    """One fact per configured zone of the camera: zeros included."""
    begin = datetime.fromtimestamp(start, UTC)
    emitted_at = emitted_at or datetime.now(UTC)
    empty: ZoneState = {"objects": 0, "max": 0, "occupied": 0, "pcu": 0.0, "classes": {}}
    facts = []
    for zone in layout.zones:
        state = zones.get(zone.id, empty)
        facts.append(
            ZoneOccupancy(
                camera_id=camera_id,
                zone_id=zone.id,
                zone_kind=zone.kind,
                window_start=begin,
                window_end=begin + timedelta(seconds=settings.window_s),
                frames=frames,
                objects=state["objects"],
                mean_objects=round(state["objects"] / frames, 4),
                max_objects=state["max"],
                occupied_frames=state["occupied"],
                occupied_share=round(state["occupied"] / frames, 4),
                mean_pcu=round(state["pcu"] / frames, 4),
                pcu_version=layout.pcu.version,
                mean_objects_by_class={
                    c: round(k / frames, 4) for c, k in sorted(state["classes"].items())
                },
                emitted_at=emitted_at,
            )
        )
    return facts
