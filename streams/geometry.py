"""Geometry for traffic counting: anchors, line crossings, zones, ground speed. Pure numpy.

Pixel coordinates of the camera's frame: x to the right, y DOWN (see citycam.cameras for the
config and for scaling it to the stream's actual frame size).

Crossing rule. A track crosses a counting line when its anchor moves from one side of the
line, strictly, to the other side, strictly, and the straight path between those two
anchors meets the line SEGMENT (its end points included). Anchors exactly on the line are
not a side: the track keeps the side it was last strictly on. So an object that stops on the
line is counted once, when it moves on to the other side, and not at all when it goes back
to the side it came from. Because the test is on the path between two samples, an object
that jumps across the line between two sampled frames is counted too.

Direction. `+1` (the line's `positive` direction) is a move from the left-hand to the
right-hand side of the vector p1 -> p2 as drawn on screen; `-1` the opposite.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from citycam.cameras import CountingLine

FloatArray = NDArray[np.float64]


def anchors(xyxy: ArrayLike) -> FloatArray:
    """Bottom-centre of boxes [x1, y1, x2, y2]: where a road user touches the ground."""
    boxes = np.asarray(xyxy, dtype=float)
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, boxes[..., 3]], axis=-1)


def _cross(u: FloatArray, v: FloatArray) -> FloatArray:
    return np.asarray(u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0])


def side(points: ArrayLike, p1: ArrayLike, p2: ArrayLike) -> NDArray[np.int8]:
    """+1 right-hand side of p1 -> p2 on screen, -1 left-hand side, 0 exactly on the line."""
    a, b = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    return np.sign(_cross(b - a, np.asarray(points, dtype=float) - a)).astype(np.int8)


def crossing(prev: ArrayLike, curr: ArrayLike, p1: ArrayLike, p2: ArrayLike) -> NDArray[np.int8]:
    """Direction in which the path prev -> curr crosses the segment p1 p2: +1, -1, or 0.

    Works on single points or (N, 2) arrays. Both anchors must be strictly off the line to
    count (see the module docstring); callers keep a track's last off-line anchor as `prev`,
    as LineCounter does. Exact for integer pixel coordinates.
    """
    a, b = np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)
    p, q = np.asarray(prev, dtype=float), np.asarray(curr, dtype=float)
    s_prev, s_curr = side(p, a, b), side(q, a, b)
    # The segment's end points must not lie strictly on one side of the path (touching counts).
    path = q - p
    e1, e2 = np.sign(_cross(path, a - p)), np.sign(_cross(path, b - p))
    hits_segment = e1 * e2 <= 0
    crossed = (s_prev * s_curr < 0) & hits_segment
    return np.where(crossed, s_curr, 0).astype(np.int8)


@dataclass
class LineCounter:
    """Counts tracks crossing one configured line, by direction name.

    `reference` (track id -> last anchor strictly off the line) is the whole state; it is
    plain data so a stream job can keep it in a table. Forget tracks that ended.
    """

    line: CountingLine
    counts: dict[str, int] = field(default_factory=dict)
    reference: dict[Hashable, tuple[float, float]] = field(default_factory=dict)

    def update(self, track_id: Hashable, anchor: ArrayLike) -> str | None:
        """Feed a track's new anchor; return the direction name if it crossed, else None."""
        p1, p2 = self.line.points
        point = np.asarray(anchor, dtype=float)
        if side(point, p1, p2) == 0:
            return None  # on the line: not a side yet
        previous = self.reference.get(track_id)
        self.reference[track_id] = (float(point[0]), float(point[1]))
        if previous is None:
            return None
        sign = int(crossing(previous, point, p1, p2))
        if sign == 0:
            return None
        name = self.line.directions.name(sign)
        self.counts[name] = self.counts.get(name, 0) + 1
        return name

    def forget(self, track_id: Hashable) -> None:
        self.reference.pop(track_id, None)


def in_polygon(points: ArrayLike, polygon: ArrayLike) -> NDArray[np.bool_]:
    """Which points lie inside the polygon (even-odd rule; points on an edge count inside).

    Works for concave polygons. `points` is (2,) or (N, 2); the result has shape () or (N,).
    """
    pts = np.asarray(points, dtype=float)
    flat = pts.reshape(-1, 2)
    verts = np.asarray(polygon, dtype=float)
    a, b = verts[None, :, :], np.roll(verts, -1, axis=0)[None, :, :]
    px, py = flat[:, None, 0], flat[:, None, 1]
    ax, ay, bx, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
    straddles = (ay > py) != (by > py)
    dy = np.where(straddles, by - ay, 1.0)
    x_cross = ax + (py - ay) * (bx - ax) / dy
    inside = np.count_nonzero(straddles & (px < x_cross), axis=1) % 2 == 1
    edge = np.stack(np.broadcast_arrays(bx - ax, by - ay), axis=-1)
    offset = np.stack(np.broadcast_arrays(px - ax, py - ay), axis=-1)
    on_line = np.abs(_cross(edge, offset)) <= 1e-9 * (1.0 + np.sum(edge**2, axis=-1))
    within = (
        (np.minimum(ax, bx) <= px)
        & (px <= np.maximum(ax, bx))
        & (np.minimum(ay, by) <= py)
        & (py <= np.maximum(ay, by))
    )
    result = inside | np.any(on_line & within, axis=1)
    return result.reshape(pts.shape[:-1])


def to_ground(points: ArrayLike, image_to_ground: ArrayLike) -> FloatArray:
    """Project image points to ground metres; NaN for points at or beyond the horizon.

    `image_to_ground` is citycam.cameras.Homography.image_to_ground (w > 0 on the ground).
    """
    pts = np.asarray(points, dtype=float)
    flat = pts.reshape(-1, 2)
    h = np.asarray(image_to_ground, dtype=float)
    out = np.c_[flat, np.ones(len(flat))] @ h.T
    w = out[:, 2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        ground = np.where(w > 0, out[:, :2] / w, np.nan)
    return ground.reshape(pts.shape)


def speed_kmh(
    anchor0: ArrayLike, t0: float, anchor1: ArrayLike, t1: float, image_to_ground: ArrayLike
) -> float:
    """Ground speed between two timed anchors (seconds), in km/h; NaN beyond the horizon."""
    if not t1 > t0:
        raise ValueError(f"times must increase: t0={t0}, t1={t1}")
    g0, g1 = to_ground(np.stack([anchor0, anchor1]), image_to_ground)
    return float(np.linalg.norm(g1 - g0) / (t1 - t0) * 3.6)
