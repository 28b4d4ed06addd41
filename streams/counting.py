"""One frame through a camera's counting layout: line crossings and zone occupancy together.

Pure logic; streams.app keeps the state in Faust tables. A camera's window state
(key camera|window_start) is JSON-able:
    {"frames": int, "last_ts": float, "size": [width, height], "lines": {...}, "zones": {...}}
`size` is the last frame's (the layout the facts are emitted with); `lines` is as in
streams.crossings and `zones` as in streams.occupancy. Track states
(streams.crossings.TrackState) are per camera and track, across windows: a crossing near a
window boundary is counted in the window of the frame that completed it.

Idempotence: one camera's frames arrive in capture order on one partition, so a frame not
newer than the window's `last_ts` is a redelivery and changes nothing. Frames whose boxes
have no track id count for occupancy (and `frames`) but cannot cross a line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from citycam.config import StreamsSettings
from schemas import FrameDetections, LineCrossings, ZoneOccupancy
from streams.crossings import RIDER, Crossing, TrackState, add_crossings, crossing_facts, step_track
from streams.layout import CameraLayout
from streams.occupancy import add_zone_frame, objects_in_zones, occupancy_facts

WindowState = dict[str, Any]


@dataclass
class FrameCount:
    window: WindowState
    tracks: dict[int, TrackState] = field(default_factory=dict)
    """New states of the tracks seen on the frame."""
    crossings: list[Crossing] = field(default_factory=list)


def tracked_road_users(
    frame: FrameDetections, settings: StreamsSettings
) -> dict[int, tuple[tuple[float, float], str]]:
    """Anchor and label (road-user class, or RIDER) of each track on the frame.

    Every tracked box of a road-user class counts, whatever its score: the tracker decided
    it continues the track (ByteTrack keeps tracks alive with low-score boxes).
    """
    classes = settings.road_user_classes
    out: dict[int, tuple[tuple[float, float], str]] = {}
    for d in frame.detections:
        if d.track_id is None or d.class_name not in classes or d.track_id in out:
            continue
        label = RIDER if d.rider_of is not None else classes[d.class_name]
        out[d.track_id] = (((d.bbox.x1 + d.bbox.x2) / 2, d.bbox.y2), label)
    return out


def count_frame(
    frame: FrameDetections,
    layout: CameraLayout,
    window: WindowState | None,
    tracks: Mapping[int, TrackState | None],
    settings: StreamsSettings,
) -> FrameCount | None:
    """Count one frame into its window; None if the window already counted it.

    `tracks` holds the current state (or None) of the frame's tracks, as
    `tracked_road_users(frame, settings)` names them; missing ones start afresh.
    """
    ts = frame.captured_at.timestamp()
    window = window or {"frames": 0, "last_ts": -math.inf, "lines": {}, "zones": {}}
    if ts <= window["last_ts"]:
        return None
    result = FrameCount(window={})
    if layout.lines:
        for track_id, (anchor, label) in tracked_road_users(frame, settings).items():
            state, crossed = step_track(tracks.get(track_id), ts, anchor, label, layout, settings)
            result.tracks[track_id] = state
            result.crossings.extend(crossed)
    zones = window["zones"]
    if layout.zones:
        zones = add_zone_frame(zones, objects_in_zones(frame, layout, settings), layout, settings)
    result.window = {
        "frames": window["frames"] + 1,
        "last_ts": ts,
        "size": [frame.width, frame.height],
        "lines": add_crossings(window["lines"], result.crossings),
        "zones": zones,
    }
    return result


def window_facts(
    camera_id: str,
    start: int,
    window: WindowState,
    layout: CameraLayout,
    settings: StreamsSettings,
    emitted_at: datetime | None = None,
) -> list[LineCrossings | ZoneOccupancy]:
    facts: list[LineCrossings | ZoneOccupancy] = []
    facts.extend(
        crossing_facts(
            camera_id, start, window["frames"], window["lines"], layout, settings, emitted_at
        )
    )
    facts.extend(
        occupancy_facts(
            camera_id, start, window["frames"], window["zones"], layout, settings, emitted_at
        )
    )
    return facts


def stale_tracks(last_seen: Mapping[int, float], ts: float, settings: StreamsSettings) -> list[int]:
    """Tracks of a camera unseen for `track_forget_s` at capture time ts: forget them.

    Track ids never repeat (inference.tracking), so a forgotten track cannot come back."""
    return [t for t, seen in last_seen.items() if seen < ts - settings.track_forget_s]
