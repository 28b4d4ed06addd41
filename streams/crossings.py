"""Line crossings per camera, line, direction, class and window: pure logic, no Kafka.

Counting rule: streams.geometry's. A track crosses a line when its anchor (bottom centre of
its box) passes from one side of the line to the other and the straight path between the
two anchors meets the line segment; each such pass counts once, in its direction, so a
road user who crosses and turns back counts twice (once each way), and one that jumps over
the line between two sampled frames counts once.

Jitter damping: a dead band of `crossing_band_px` each side of the line (pixels of the
geometry's frame size, scaled with it). An anchor inside the band is on neither side: the
track keeps the side it was last on outside the band (geometry's rule for anchors exactly
on the line, widened). A road user standing near the line therefore adds no crossing pairs
however its box jitters, as long as the jitter stays inside the band; a crossing is counted
when the anchor leaves the band on the other side. The default comes from the accuracy
test on real footage (tests/streams/test_crossing_accuracy.py), which reports why.

Class: a track's class is the most frequent class among its boxes so far (a detector may
call one vehicle car on one frame and truck on the next). A person box with `rider_of` set
votes "rider": a track that is mostly a rider is never counted (its vehicle is, once).

Speed: cameras with a homography estimate each crossing track's ground speed from its
anchor history: ground distance from the oldest anchor within `speed_span_s` to the anchor
that crossed, over the time between them (at least `speed_min_span_s`).

State is plain JSON-able data so a Faust table can hold it (changelogged):
- per track (key camera|track_id), `TrackState`:
  {"ts": last capture time counted, "refs": {line_id: [x, y, side]} (last anchor outside the
  band and its side), "hist": [[ts, x, y], ...] (anchors within the speed span),
  "votes": {class: boxes}}
- per camera window, the `lines` part of streams.counting's window state:
  {"line_id|orientation|class": [crossings, [speed_kmh, ...]]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from citycam.cameras import CountingLine
from citycam.config import StreamsSettings
from schemas import LineCrossings
from streams.geometry import crossing, speed_kmh
from streams.layout import CameraLayout

TrackState = dict[str, Any]
RIDER = "~rider"  # the vote of a box riding a vehicle (not a configured class name)
ORIENTATIONS = {1: "positive", -1: "negative"}


@dataclass(frozen=True)
class Crossing:
    line_id: str
    orientation: str
    direction: str
    vehicle_class: str
    ts: float
    speed_kmh: float | None = None

    @property
    def key(self) -> str:
        return crossing_key(self.line_id, self.orientation, self.vehicle_class)


def crossing_key(line_id: str, orientation: str, vehicle_class: str) -> str:
    return f"{line_id}|{orientation}|{vehicle_class}"


def parse_crossing_key(key: str) -> tuple[str, str, str]:
    line_id, orientation, vehicle_class = key.split("|", 2)
    return line_id, orientation, vehicle_class


def signed_distance(point: tuple[float, float], line: CountingLine) -> float:
    """Pixels from the line (its infinite extension); > 0 on the right-hand side of
    points[0] -> points[1] as drawn (streams.geometry.side's +1)."""
    (x1, y1), (x2, y2) = line.points
    cross = (x2 - x1) * (point[1] - y1) - (y2 - y1) * (point[0] - x1)
    return cross / math.hypot(x2 - x1, y2 - y1)


def majority_class(votes: dict[str, int], latest: str) -> str:
    """The most frequent vote; a tie goes to the latest box's class."""
    return max(votes, key=lambda c: (votes[c], c == latest))


def step_track(
    state: TrackState | None,
    ts: float,
    anchor: tuple[float, float],
    label: str,
    layout: CameraLayout,
    settings: StreamsSettings,
) -> tuple[TrackState, list[Crossing]]:
    """Feed one track's anchor on one frame; return its new state and what it crossed.

    `label` is the box's road-user class, or RIDER. A frame not newer than the track's last
    one is a redelivery: state unchanged, nothing counted.
    """
    if state is not None and ts <= state["ts"]:
        return state, []
    state = state or {"ts": -math.inf, "refs": {}, "hist": [], "votes": {}}
    votes = dict(state["votes"])
    votes[label] = votes.get(label, 0) + 1
    track_class = majority_class(votes, label)
    hist = [h for h in state["hist"] if h[0] >= ts - settings.speed_span_s]
    refs = dict(state["refs"])
    crossed = []
    for line in layout.lines:
        distance = signed_distance(anchor, line)
        if distance == 0:
            continue  # on the line: not a side
        side = 1 if distance > 0 else -1
        previous = refs.get(line.id)
        if previous is not None and previous[2] != side and abs(distance) <= layout.band_px:
            continue  # not across the band yet: keep the side it was on
        refs[line.id] = [anchor[0], anchor[1], side]
        if previous is None or previous[2] == side:
            continue
        sign = int(crossing(previous[:2], anchor, *line.points))
        if sign == 0 or track_class == RIDER:
            continue  # passed beside the segment; or a rider, whose vehicle is counted
        crossed.append(
            Crossing(
                line_id=line.id,
                orientation=ORIENTATIONS[sign],
                direction=line.directions.name(sign),
                vehicle_class=track_class,
                ts=ts,
                speed_kmh=_speed(hist, ts, anchor, layout, settings),
            )
        )
    hist.append([ts, anchor[0], anchor[1]])
    return {"ts": ts, "refs": refs, "hist": hist, "votes": votes}, crossed


def _speed(
    hist: list[list[float]],
    ts: float,
    anchor: tuple[float, float],
    layout: CameraLayout,
    settings: StreamsSettings,
) -> float | None:
    if layout.image_to_ground is None or not hist:
        return None
    t0, x0, y0 = hist[0]
    if ts - t0 < settings.speed_min_span_s:
        return None
    kmh = speed_kmh((x0, y0), t0, anchor, ts, layout.image_to_ground)
    return round(kmh, 2) if math.isfinite(kmh) else None


def add_crossings(lines: dict[str, list[Any]], crossed: list[Crossing]) -> dict[str, list[Any]]:
    """The window's `lines` part with these crossings added (a new dict)."""
    out = {k: [n, list(speeds)] for k, (n, speeds) in lines.items()}
    for c in crossed:
        n, speeds = out.get(c.key, [0, []])
        out[c.key] = [n + 1, speeds + ([c.speed_kmh] if c.speed_kmh is not None else [])]
    return out


def crossing_facts(
    camera_id: str,
    start: int,
    frames: int,
    lines: dict[str, list[Any]],
    layout: CameraLayout,
    settings: StreamsSettings,
    emitted_at: datetime | None = None,
) -> list[LineCrossings]:
    """One fact per configured line, way and road-user class: zeros included."""
    begin = datetime.fromtimestamp(start, UTC)
    emitted_at = emitted_at or datetime.now(UTC)
    classes = sorted(set(settings.road_user_classes.values()))
    facts = []
    for line in layout.lines:
        for sign, orientation in ORIENTATIONS.items():
            for vehicle_class in classes:
                n, speeds = lines.get(crossing_key(line.id, orientation, vehicle_class), [0, []])
                factor = settings.pcu_factor(layout.pcu, vehicle_class)
                pcu = n * factor
                facts.append(
                    LineCrossings(
                        camera_id=camera_id,
                        line_id=line.id,
                        direction=line.directions.name(sign),
                        orientation=orientation,  # type: ignore[arg-type]  # ORIENTATIONS' values
                        vehicle_class=vehicle_class,
                        window_start=begin,
                        window_end=begin + timedelta(seconds=settings.window_s),
                        frames=frames,
                        crossings=n,
                        pcu_factor=factor,
                        pcu=round(pcu, 4),
                        pcu_per_hour=round(pcu * 3600 / settings.window_s, 4),
                        pcu_version=layout.pcu.version,
                        speed_samples=len(speeds),
                        speed_kmh_mean=round(float(np.mean(speeds)), 2) if speeds else None,
                        speed_kmh_p85=round(float(np.percentile(speeds, 85)), 2)
                        if speeds
                        else None,
                        emitted_at=emitted_at,
                    )
                )
    return facts
