"""Draw a camera's geometry (lines, zones, lanes, calibration) on one of its frames.

Used by `citycam cameras draw` to check a configuration by eye against the real picture.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from citycam.cameras import CameraGeometry, CountingLine, Homography, Lane, Point, Zone

BGR = tuple[int, int, int]
LINE_COLOUR: BGR = (0, 255, 255)
POSITIVE_COLOUR: BGR = (0, 200, 0)
NEGATIVE_COLOUR: BGR = (0, 0, 230)
LANE_COLOUR: BGR = (255, 160, 0)
CALIBRATION_COLOUR: BGR = (255, 0, 255)
ZONE_COLOURS: dict[str | None, BGR] = {
    "gateway": (0, 165, 255),
    "junction": (203, 192, 255),
    "parking": (255, 255, 0),
    "crossing": (255, 255, 255),
    "footway": (180, 105, 255),
    "stop": (0, 0, 255),
}
OTHER_ZONE_COLOUR: BGR = (200, 200, 200)


def draw_geometry(image: np.ndarray, geometry: CameraGeometry) -> np.ndarray:
    """A copy of the BGR image with the geometry drawn; the geometry must match its size."""
    height, width = image.shape[:2]
    if (width, height) != geometry.frame_size:
        raise ValueError(f"frame is {width}x{height}, geometry is for {geometry.frame_size}")
    canvas = image.copy()
    scale = max(width, height) / 800  # thicker strokes and text on bigger frames
    for zone in geometry.zones:
        _draw_zone(canvas, zone, scale)
    for lane in geometry.lanes:
        _draw_lane(canvas, lane, scale)
    for line in geometry.lines:
        _draw_line(canvas, line, scale)
    if geometry.homography is not None:
        _draw_calibration(canvas, geometry.homography, scale)
    return canvas


def _px(point: Point | np.ndarray) -> tuple[int, int]:
    return round(float(point[0])), round(float(point[1]))


def _thick(scale: float, base: float = 2) -> int:
    return max(1, round(base * scale))


def _label(
    canvas: np.ndarray,
    text: str,
    at: Point | np.ndarray,
    colour: BGR,
    s: float,
    end_at: bool = False,
) -> None:
    """Text with a dark outline so it reads on any background; end_at: text ends at `at`."""
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.5 * max(s, 0.8)
    (tw, th), _ = cv2.getTextSize(text, font, size, _thick(s, 1))
    x = round(float(at[0])) - (tw if end_at else 0)
    x = min(max(0, x), canvas.shape[1] - tw - 1)
    y = min(max(th + 1, round(float(at[1]))), canvas.shape[0] - 2)
    cv2.putText(canvas, text, (x, y), font, size, (0, 0, 0), _thick(s, 3), cv2.LINE_AA)
    cv2.putText(canvas, text, (x, y), font, size, colour, _thick(s, 1), cv2.LINE_AA)


def _draw_zone(canvas: np.ndarray, zone: Zone, s: float) -> None:
    colour = ZONE_COLOURS.get(zone.kind, OTHER_ZONE_COLOUR)
    ring = np.round(np.asarray(zone.polygon)).astype(np.int32)
    overlay = canvas.copy()
    cv2.fillPoly(overlay, [ring], colour)
    cv2.addWeighted(overlay, 0.25, canvas, 0.75, 0, dst=canvas)
    cv2.polylines(canvas, [ring], True, colour, _thick(s), cv2.LINE_AA)
    top = ring[np.argmin(ring[:, 1])]
    _label(canvas, f"zone {zone.id}" + (f" ({zone.kind})" if zone.kind else ""), top, colour, s)


def _draw_lane(canvas: np.ndarray, lane: Lane, s: float) -> None:
    ring = np.round(np.asarray(lane.polygon)).astype(np.int32)
    cv2.polylines(canvas, [ring], True, LANE_COLOUR, _thick(s), cv2.LINE_AA)
    centre = np.asarray(lane.polygon, dtype=float).mean(axis=0)
    step = np.asarray(lane.unit_direction) * 40 * s
    for offset in (-1.5, 0.0, 1.5):  # a row of arrows along the allowed direction
        start = centre + step * offset - step / 2
        cv2.arrowedLine(
            canvas, _px(start), _px(start + step), LANE_COLOUR, _thick(s), cv2.LINE_AA, 0, 0.4
        )
    feeds = f" -> {lane.feeds}" if lane.feeds else ""
    _label(canvas, f"lane {lane.id}{feeds}", centre + np.array([0, 22 * s]), LANE_COLOUR, s)


def _draw_line(canvas: np.ndarray, line: CountingLine, s: float) -> None:
    p1, p2 = (np.asarray(p, dtype=float) for p in line.points)
    cv2.line(canvas, _px(p1), _px(p2), LINE_COLOUR, _thick(s, 3), cv2.LINE_AA)
    cv2.circle(canvas, _px(p1), _thick(s, 4), LINE_COLOUR, -1, cv2.LINE_AA)
    _label(canvas, "1", p1 + 6 * s, LINE_COLOUR, s)
    _label(canvas, f"2 line {line.id}", p2 + 6 * s, LINE_COLOUR, s)
    along = (p2 - p1) / math.dist(p1, p2)
    right = np.array([-along[1], along[0]])  # the right-hand side of p1 -> p2 on screen
    reach = 35 * s
    for sign, name, colour, at in (
        (1, line.directions.positive, POSITIVE_COLOUR, 0.35),
        (-1, line.directions.negative, NEGATIVE_COLOUR, 0.65),
    ):
        base = p1 + (p2 - p1) * at
        start, end = base - sign * right * reach, base + sign * right * reach
        cv2.arrowedLine(canvas, _px(start), _px(end), colour, _thick(s), cv2.LINE_AA, 0, 0.3)
        outward = sign * right
        text = f"{'+' if sign > 0 else '-'} {name}"
        _label(canvas, text, end + outward * 8 + (0, 5 * s), colour, s, end_at=outward[0] < 0)


def _draw_calibration(canvas: np.ndarray, homography: Homography, s: float) -> None:
    """Calibration points labelled with their ground metres, and a projected ground grid."""
    if homography.image_points is not None and homography.ground_points is not None:
        for image, ground in zip(homography.image_points, homography.ground_points, strict=True):
            cv2.drawMarker(
                canvas, _px(image), CALIBRATION_COLOUR, cv2.MARKER_CROSS, _thick(s, 12), 2
            )
            _label(canvas, f"({ground[0]:g}, {ground[1]:g}) m", image, CALIBRATION_COLOUR, s)
    for point in _ground_grid(homography, canvas.shape[1], canvas.shape[0]):
        cv2.circle(canvas, _px(point), _thick(s, 2), CALIBRATION_COLOUR, -1, cv2.LINE_AA)


def _ground_grid(homography: Homography, width: int, height: int) -> np.ndarray:
    """Image positions of a metric ground grid (about 12 steps across the calibrated area)."""
    if homography.ground_points is not None:
        ground = np.asarray(homography.ground_points, dtype=float)
    else:
        corners = [(0, height), (width, height), (width / 2, height * 0.6)]
        h = homography.image_to_ground
        out = np.c_[np.asarray(corners, dtype=float), np.ones(3)] @ h.T
        ground = out[out[:, 2] > 0, :2] / out[out[:, 2] > 0, 2:]
    if len(ground) < 2:
        return np.empty((0, 2))
    low, high = ground.min(axis=0), ground.max(axis=0)
    step = _nice_step(float((high - low).max()) / 12)
    xs = np.arange(math.floor(low[0] / step), math.ceil(high[0] / step) + 1) * step
    ys = np.arange(math.floor(low[1] / step), math.ceil(high[1] / step) + 1) * step
    grid = np.array([(x, y, 1.0) for x in xs for y in ys])
    image = grid @ homography.ground_to_image.T
    visible = image[:, 2] > 0
    pts = image[visible, :2] / image[visible, 2:]
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
    return pts[inside]


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least raw."""
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
