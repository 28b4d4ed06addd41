"""The camera registry: a YAML list of cameras, validated at load with clear errors.

A camera may carry `geometry` for traffic analytics, in pixels of `frame_size` (x to the
right, y DOWN, origin at the top-left corner):

    geometry:
      frame_size: [640, 272]
      lines:                        # directional counting lines
        - id: main-road
          points: [[400, 250], [400, 115]]
          directions: {positive: eastbound, negative: westbound}
      zones:                        # regions of interest
        - id: kerb
          kind: parking             # optional, see ZoneKind
          polygon: [[0, 200], [120, 200], [120, 272], [0, 272]]
      lanes:                        # allowed direction of travel (wrong-way detection)
        - id: near-lane
          polygon: [[0, 150], [640, 120], [640, 272], [0, 272]]
          direction: [1, -0.1]      # or heading_deg: 0 = image right, 90 = image down
          feeds: main-road          # optional: the line this lane leads to
      homography:                   # optional image -> ground (metres) calibration
        image_points: [[100, 250], [540, 250], [500, 130], [140, 130]]
        ground_points: [[0, 0], [12, 0], [12, 30], [0, 30]]
        # or: matrix: [[a, b, c], [d, e, f], [g, h, i]]

A line's `positive` direction is a crossing from the left-hand to the right-hand side of the
vector points[0] -> points[1] as drawn on the frame: for a line drawn upwards, moving left
to right on screen; for a line drawn left to right, moving from top to bottom. Ids are
unique across a camera's lines, zones and lanes. Ground points are metres on a local flat
ground plane (any origin and orientation). `CameraGeometry.scaled` maps the geometry onto
the stream's actual frame size; `citycam cameras draw` shows it on a real frame.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlparse

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from schemas._base import CAMERA_ID_PATTERN

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "srt", "udp")


class CameraConfigError(ValueError):
    """The registry file is unreadable or invalid; the message names file and field."""


# ---------------------------------------------------------------------------------------------
# Geometry: counting lines, zones, lanes and ground calibration, in pixels of frame_size.

Point = tuple[float, float]
ZoneKind = Literal["gateway", "junction", "parking", "crossing", "footway", "stop", "other"]
# Normalised image->ground homographies of real oblique cameras measure ~5-50; a near-singular
# fit (collinear or swapped points) measures 1e8 and more.
MAX_HOMOGRAPHY_CONDITION = 1e5


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LineDirections(_Config):
    """Names of the two ways across a line; `positive` is defined in the module docstring."""

    positive: str = Field(min_length=1)
    negative: str = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.positive == self.negative:
            raise ValueError(f"positive and negative are both {self.positive!r}")
        return self

    def name(self, sign: int) -> str:
        return self.positive if sign > 0 else self.negative


class CountingLine(_Config):
    id: str = Field(pattern=CAMERA_ID_PATTERN)
    points: tuple[Point, Point]
    directions: LineDirections

    @field_validator("points")
    @classmethod
    def _not_degenerate(cls, points: tuple[Point, Point]) -> tuple[Point, Point]:
        if math.dist(*points) < 1:
            raise ValueError(f"degenerate line: {points[0]} to {points[1]} is under 1 pixel long")
        return points


class Zone(_Config):
    id: str = Field(pattern=CAMERA_ID_PATTERN)
    polygon: tuple[Point, ...] = Field(min_length=3)
    kind: ZoneKind | None = None

    @field_validator("polygon")
    @classmethod
    def _simple(cls, polygon: tuple[Point, ...]) -> tuple[Point, ...]:
        return check_polygon(polygon)


class Lane(_Config):
    """A lane and its allowed direction of travel, as an image vector or an image heading."""

    id: str = Field(pattern=CAMERA_ID_PATTERN)
    polygon: tuple[Point, ...] = Field(min_length=3)
    direction: Point | None = Field(default=None, description="[dx, dy] in pixels")
    heading_deg: float | None = Field(
        default=None, ge=-360, le=360, description="0 = image right, 90 = image down"
    )
    feeds: str | None = Field(default=None, description="id of the line this lane leads to")

    @field_validator("polygon")
    @classmethod
    def _simple(cls, polygon: tuple[Point, ...]) -> tuple[Point, ...]:
        return check_polygon(polygon)

    @model_validator(mode="after")
    def _one_direction(self) -> Self:
        if (self.direction is None) == (self.heading_deg is None):
            raise ValueError("give exactly one of direction [dx, dy] or heading_deg")
        if self.direction is not None and math.hypot(*self.direction) == 0:
            raise ValueError("direction [0, 0] has no direction")
        return self

    @property
    def unit_direction(self) -> Point:
        if self.direction is not None:
            dx, dy = self.direction
        else:
            angle = math.radians(self.heading_deg or 0.0)
            dx, dy = math.cos(angle), math.sin(angle)
        norm = math.hypot(dx, dy)
        return dx / norm, dy / norm


Matrix3 = tuple[tuple[float, float, float], tuple[float, float, float], tuple[float, float, float]]


class Homography(_Config):
    """Image (pixels) -> ground plane (metres): 4+ point pairs fitted by least squares
    (cv2.findHomography), or a 3x3 matrix. Kept with the sign that gives w > 0 on the ground
    in front of the camera, so a point beyond the horizon is recognisable (w <= 0)."""

    image_points: tuple[Point, ...] | None = Field(default=None, min_length=4)
    ground_points: tuple[Point, ...] | None = Field(default=None, min_length=4)
    matrix: Matrix3 | None = None
    max_error_m: float = Field(default=0.5, gt=0, description="largest reprojection error")
    _image_to_ground: Matrix3 = PrivateAttr()

    @model_validator(mode="after")
    def _fit(self) -> Self:
        if (self.matrix is None) == (self.image_points is None and self.ground_points is None):
            raise ValueError("give either image_points with ground_points, or matrix")
        h = np.asarray(self.matrix, dtype=float) if self.matrix is not None else self._fit_points()
        scale = np.abs(h).max()
        if not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) <= 1e-12 * scale**3:
            raise ValueError("homography is singular (not invertible)")
        self._image_to_ground = _as_matrix3(h / scale)
        if self.image_points is not None:
            self._orient(self.image_points, "image_points")
        return self

    def _fit_points(self) -> np.ndarray:
        import cv2  # only registries with a calibration pay for the import

        if self.image_points is None or self.ground_points is None:
            raise ValueError("image_points and ground_points go together")
        if len(self.image_points) != len(self.ground_points):
            raise ValueError(
                f"{len(self.image_points)} image_points but {len(self.ground_points)} ground_points"
            )
        src = np.asarray(self.image_points, dtype=float)
        dst = np.asarray(self.ground_points, dtype=float)
        for name, pts in (("image_points", src), ("ground_points", dst)):
            if len(pts) == 4 and _collinear_triple(pts):
                raise ValueError(f"three of the four {name} are collinear")
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            raise ValueError("cannot fit a homography to these points (degenerate layout)")
        ground, _ = _apply(np.asarray(h, dtype=float), src)
        error = float(np.nan_to_num(np.linalg.norm(ground - dst, axis=1), nan=np.inf).max())
        if error > self.max_error_m:
            raise ValueError(
                f"points do not fit one ground plane: reprojection error {error:.2f} m > "
                f"max_error_m {self.max_error_m} m (a swapped or mistyped point?)"
            )
        return np.asarray(h, dtype=float)

    def _orient(self, points: Sequence[Point], what: str) -> None:
        """Flip the sign so that w > 0 on these ground points; they must not straddle the
        horizon. Called at validation, before anyone reads the matrix."""
        _, w = _apply(self.image_to_ground, points)
        if np.all(w < 0):
            self._image_to_ground = _as_matrix3(-self.image_to_ground)
        elif not np.all(w > 0):
            raise ValueError(f"{what} lie on both sides of the horizon of the homography")

    @property
    def image_to_ground(self) -> np.ndarray:
        return np.array(self._image_to_ground, dtype=float)

    @property
    def ground_to_image(self) -> np.ndarray:
        return np.linalg.inv(self.image_to_ground)

    def condition(self, frame_size: tuple[int, int]) -> float:
        """Condition number with pixels scaled to the unit square and the ground rows and the
        w row each normalised, so that it depends on neither pixels nor metres."""
        m = self.image_to_ground @ np.diag([frame_size[0], frame_size[1], 1.0])
        m[:2] /= np.linalg.norm(m[:2])
        m[2] /= np.linalg.norm(m[2])
        return float(np.linalg.cond(m))

    def scaled(self, sx: float, sy: float) -> Homography:
        """The same calibration for pixel coordinates multiplied by (sx, sy)."""
        raw = self.model_dump(exclude_none=True)
        if self.image_points is not None:
            raw["image_points"] = [(x * sx, y * sy) for x, y in self.image_points]
        else:
            raw["matrix"] = _as_matrix3(self.image_to_ground @ np.diag([1 / sx, 1 / sy, 1.0]))
        return Homography.model_validate(raw)


def _apply(h: np.ndarray, points: Sequence[Point] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project points with a homography: (N, 2) results and the homogeneous w of each."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    out = np.c_[pts, np.ones(len(pts))] @ h.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return out[:, :2] / out[:, 2:], out[:, 2]


def _as_matrix3(h: np.ndarray) -> Matrix3:
    (a, b, c), (d, e, f), (g, i, j) = (tuple(float(v) for v in row) for row in h)
    return (a, b, c), (d, e, f), (g, i, j)


def _collinear_triple(points: np.ndarray) -> bool:
    scale = max(float(np.ptp(points, axis=0).max()), 1e-12)
    for a, b, c in itertools.combinations(points, 3):
        if abs(_cross(b - a, c - a)) <= 1e-6 * scale**2:
            return True
    return False


def _cross(u: Sequence[float] | np.ndarray, v: Sequence[float] | np.ndarray) -> float:
    return float(u[0] * v[1] - u[1] * v[0])


def check_polygon(polygon: tuple[Point, ...]) -> tuple[Point, ...]:
    """A polygon must be simple (no edge crosses or touches another) and enclose an area."""
    pts = [np.asarray(p, dtype=float) for p in polygon]
    n = len(pts)
    for i in range(n):
        if np.array_equal(pts[i], pts[(i + 1) % n]):
            raise ValueError(f"point {i} {polygon[i]} is repeated (do not close the ring)")
    # Edges that share no vertex must not touch. (An edge folding back over its neighbour
    # always touches a non-neighbour, or leaves a zero-area triangle.)
    for i, j in itertools.combinations(range(n), 2):
        neighbours = j == i + 1 or (i == 0 and j == n - 1)
        if not neighbours and _segments_touch(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
            raise ValueError(f"polygon is self-intersecting: edges {i} and {j} cross")
    area = sum(_cross(pts[i], pts[(i + 1) % n]) for i in range(n)) / 2
    if abs(area) < 1e-9:
        raise ValueError("polygon has zero area (all points on one line)")
    return polygon


def _segments_touch(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> bool:
    """Closed segments ab and cd share at least one point."""
    d1, d2 = _cross(b - a, c - a), _cross(b - a, d - a)
    d3, d4 = _cross(d - c, a - c), _cross(d - c, b - c)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return any(
        cross == 0 and _within_box(p, q, r)
        for cross, p, q, r in ((d1, a, b, c), (d2, a, b, d), (d3, c, d, a), (d4, c, d, b))
    )


def _within_box(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> bool:
    return bool(np.all(np.minimum(p, q) <= r) and np.all(r <= np.maximum(p, q)))


class CameraGeometry(_Config):
    frame_size: tuple[PositiveInt, PositiveInt] = Field(
        description="[width, height] of the frame the pixel coordinates refer to"
    )
    lines: tuple[CountingLine, ...] = ()
    zones: tuple[Zone, ...] = ()
    lanes: tuple[Lane, ...] = ()
    homography: Homography | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        ids = [
            *(line.id for line in self.lines),
            *(zone.id for zone in self.zones),
            *(lane.id for lane in self.lanes),
        ]
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            raise ValueError(f"duplicate geometry ids: {', '.join(duplicates)}")
        line_ids = {line.id for line in self.lines}
        for lane in self.lanes:
            if lane.feeds is not None and lane.feeds not in line_ids:
                raise ValueError(f"lanes[{lane.id}].feeds: no line {lane.feeds!r}")
        width, height = self.frame_size
        for where, (x, y) in self._points():
            if not (0 <= x <= width and 0 <= y <= height):
                raise ValueError(f"{where} ({x:g}, {y:g}) lies outside the {width}x{height} frame")
        if self.homography is not None:
            self._check_homography(self.homography)
        return self

    def _points(self) -> Iterator[tuple[str, Point]]:
        """Every pixel coordinate with its place in the config, for error messages."""
        for line in self.lines:
            for k, p in enumerate(line.points):
                yield f"lines[{line.id}].points[{k}]", p
        for group, items in (("zones", self.zones), ("lanes", self.lanes)):
            for item in items:
                for k, p in enumerate(item.polygon):
                    yield f"{group}[{item.id}].polygon[{k}]", p
        if self.homography is not None and self.homography.image_points is not None:
            for k, p in enumerate(self.homography.image_points):
                yield f"homography.image_points[{k}]", p

    def _check_homography(self, homography: Homography) -> None:
        condition = homography.condition(self.frame_size)
        if not condition < MAX_HOMOGRAPHY_CONDITION:
            raise ValueError(
                f"homography is ill-conditioned (condition number {condition:.3g} >= "
                f"{MAX_HOMOGRAPHY_CONDITION:g}): check the calibration points"
            )
        points = [(where, p) for where, p in self._points() if not where.startswith("homography")]
        if homography.image_points is None:
            # A bare matrix has no sign of its own: the geometry (or else the bottom centre
            # of the frame, nearly always road) is on the ground in front of the camera.
            width, height = self.frame_size
            reference = [p for _, p in points] or [(width / 2, height)]
            homography._orient(reference, "the geometry's points")
        _, w = _apply(homography.image_to_ground, [p for _, p in points])
        for (where, p), wk in zip(points, w, strict=True):
            if not wk > 0:
                raise ValueError(f"{where} {p} lies beyond the horizon of the homography")

    def scaled(self, frame_size: tuple[int, int]) -> CameraGeometry:
        """The same geometry in pixels of another frame size (the stream's actual one)."""
        if tuple(frame_size) == self.frame_size:
            return self
        (w0, h0), (w1, h1) = self.frame_size, frame_size
        if abs((w1 / h1) / (w0 / h0) - 1) > 0.01:
            log.warning(
                "frame %dx%d has another aspect ratio than the geometry's %dx%d: "
                "scaling each axis separately (redraw the geometry if the view is cropped)",
                w1,
                h1,
                w0,
                h0,
            )

        def scale(points: Sequence[Point]) -> list[Point]:
            # x * w1 / w0 (not x * (w1 / w0)): the frame edge maps exactly onto the new edge.
            return [(x * w1 / w0, y * h1 / h0) for x, y in points]

        raw = self.model_dump(exclude_none=True)
        raw["frame_size"] = (w1, h1)
        for line in raw["lines"]:
            line["points"] = scale(line["points"])
        for item in (*raw["zones"], *raw["lanes"]):
            item["polygon"] = scale(item["polygon"])
        for lane, model in zip(raw["lanes"], self.lanes, strict=True):
            dx, dy = model.unit_direction  # a heading turns too when the axes scale unequally
            lane["direction"] = (dx * w1 / w0, dy * h1 / h0)
            lane.pop("heading_deg", None)
        if self.homography is not None:
            raw["homography"] = self.homography.scaled(w1 / w0, h1 / h0).model_dump(
                exclude_none=True
            )
        return CameraGeometry.model_validate(raw)

    def line(self, line_id: str) -> CountingLine:
        for line in self.lines:
            if line.id == line_id:
                return line
        raise KeyError(f"no line {line_id!r}")


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=CAMERA_ID_PATTERN)
    name: str = Field(min_length=1)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    district: str = Field(min_length=1)
    source: str = Field(min_length=1, description="rtsp://... URL, or a video file path.")
    sample_fps: float = Field(gt=0, le=60, description="Frames per second to sample.")
    enabled: bool = True
    loop: bool = Field(default=False, description="Replay a file forever (simulated live feed).")
    realtime: bool = Field(default=False, description="Pace a file at its native speed.")
    road_segment: str | None = None
    road_class: str | None = None
    geometry: CameraGeometry | None = Field(
        default=None, description="Counting lines, zones, lanes and calibration, in pixels."
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, source: str) -> str:
        scheme = urlparse(source).scheme
        if (
            scheme
            and scheme not in (*STREAM_SCHEMES, "file")
            and not re.fullmatch(r"[a-zA-Z]", scheme)
        ):
            raise ValueError(
                f"unsupported source scheme {scheme!r}; use {', '.join(STREAM_SCHEMES)} or a file"
            )
        return source

    @property
    def is_stream(self) -> bool:
        return urlparse(self.source).scheme in STREAM_SCHEMES

    @property
    def source_path(self) -> Path | None:
        """The local file of a file source, None for network streams."""
        if self.is_stream:
            return None
        parsed = urlparse(self.source)
        return Path(parsed.path) if parsed.scheme == "file" else Path(self.source)


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: tuple[Camera, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        duplicates = [cid for cid, n in Counter(c.id for c in self.cameras).items() if n > 1]
        if duplicates:
            raise ValueError(f"duplicate camera ids: {', '.join(sorted(duplicates))}")
        return self

    @property
    def enabled(self) -> tuple[Camera, ...]:
        return tuple(c for c in self.cameras if c.enabled)

    def get(self, camera_id: str) -> Camera:
        for camera in self.cameras:
            if camera.id == camera_id:
                return camera
        raise KeyError(f"no camera {camera_id!r} in the registry")


def load_cameras(path: Path) -> CameraRegistry:
    """Read and validate a registry; ${VARS} in sources are expanded from the environment."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise CameraConfigError(f"{path}: cannot read camera registry: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise CameraConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise CameraConfigError(f"{path}: expected a mapping with a 'cameras' list")
    for camera in raw.get("cameras") or []:
        if isinstance(camera, dict) and isinstance(camera.get("source"), str):
            camera["source"] = _expand(camera["source"], path)
    try:
        return CameraRegistry.model_validate(raw)
    except ValidationError as exc:
        raise CameraConfigError(_describe(path, raw, exc)) from exc


def _expand(source: str, path: Path) -> str:
    expanded = os.path.expandvars(source)
    if "${" in expanded or re.search(r"\$[A-Z_]+", expanded):
        raise CameraConfigError(f"{path}: source {source!r} uses an unset environment variable")
    return expanded


def _describe(path: Path, raw: dict, exc: ValidationError) -> str:
    lines = [f"{path}: invalid camera registry:"]
    for err in exc.errors():
        loc = err["loc"]
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == "cameras" and isinstance(loc[1], int):
            with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError):
                camera = raw["cameras"][loc[1]]
                where = f"camera {camera.get('id', loc[1])!r}: " + _field_path(camera, loc[2:])
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


def _field_path(node: object, loc: tuple[int | str, ...]) -> str:
    """`geometry.lines[main-road].points[1]`: list items named by their id where they have one."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            name = item.get("id") if isinstance(item, dict) else None
            out += f"[{name if isinstance(name, str) else part}]"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out
