"""Line-crossing accuracy on real footage against hand-labelled ground truth (issue 4, item 6).

The clip goes through what the pipeline does with it: ingest's frame sampler at the demo
camera's sample_fps and its JPEG round trip, the real detector, the inference stage's
tracker and contract (inference.tracking, inference.service.to_contract), then the streams
job's counting (streams.counting.count_frame) with the demo camera's geometry and default
settings. Counted crossings are matched to tests/ground_truth/*_crossings.yaml by line,
direction and class, one to one, within TOLERANCE_S; precision and recall are printed
(`pytest -s`) and held above thresholds set from what was measured.

Measured (SSD-MobileNetV2 COCO on CPU, default InferenceSettings, crossing_band_px 4), vtest.avi
over all 79.5 s, 26 labelled crossings:

| sample fps | band 0 px   | band 4 px   | band 8 px   |   (precision / recall)
|------------|-------------|-------------|-------------|
| 2          | 1.00 / 0.69 | 1.00 / 0.58 | 1.00 / 0.58 |
| 2.5        | 0.96 / 0.85 | 1.00 / 0.85 | 1.00 / 0.85 |
| 3          | 0.89 / 0.96 | 0.89 / 0.96 | 0.89 / 0.96 |
| 4          | 0.90 / 1.00 | 0.96 / 1.00 | 1.00 / 0.85 |
| 5          | 0.87 / 1.00 | 0.93 / 1.00 | 0.92 / 0.92 |
| 10         | 0.76 / 1.00 | 0.86 / 0.92 | 0.85 / 0.85 |

At 2 fps a walker moves 20-40 px between samples and ByteTrack confirms a track on its second
sighting, so crossings right after a track starts, and across id switches, are lost: recall
0.69. Tuning the tracker did not fix it (track_frame_rate 2: 0.54; track_min_iou 0.01: 0.69;
activation 0.3: 0.69; lost buffer 3 s: 0.73). From 4 fps recall is 1.00 and the errors are
extra crossings from box jitter and id switches near the line, which the dead band removes
(0.90 -> 0.96 at 4 fps, 0.76 -> 0.86 at 10 fps); wider bands start to lose real crossings of
people who turn back close to the line. Hence the demo camera samples at 4 fps and the band is
4 px (of 768): precision 0.96, recall 1.00, with the man standing 6-18 px from the line for 4 s
counted twice, as labelled.

The table predates naming a track's first box (every published box now carries a track id;
low-score boxes in no track are left out). Measured again with it, band 4 px: 4 fps unchanged
(0.96 / 1.00), 2 fps 1.00 / 0.69 (was 0.58); confirming tracks on their first sighting
instead (track_min_consecutive_frames 1) gave 0.93 / 1.00 at 4 fps (see inference.tracking).

bikes.mp4 (demo rate 5 fps, scored on its 2 s street shot, 2 labelled cars): 1 of 2 found, no
false crossing. The missed car is detected at scores 0.35-0.41 only, below the tracker's
activation threshold (0.4), so it never gets a track; activation 0.3 finds both but costs
vtest precision (0.92 at 4 fps).

Speed (test_vtest_pedestrian_speeds): the same vtest crossings, counted with a ground
calibration derived from the footage itself (no surveyed one exists; see VTEST_FOCAL_PX), must
come out at walking speeds. Measured: 27 of 27 crossings with a speed, median 4.6 km/h (1.5 to
9.0). A sanity check that catches unit and time-base errors, not a speed measurement.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import torch
import yaml
from scipy.optimize import linear_sum_assignment

from citycam.cameras import Camera, load_cameras
from citycam.config import InferenceSettings, IngestSettings, StreamsSettings
from inference.detector import load_detector
from inference.service import clip_to_frame, to_contract
from inference.tracking import CameraTrackers
from ingest.sampler import FrameSampler
from schemas import FrameDetections, FrameRef
from streams.counting import count_frame
from streams.crossings import Crossing, TrackState
from streams.geometry import to_ground
from streams.layout import layout_for

REPO = Path(__file__).parents[2]
TRUTH = REPO / "tests" / "ground_truth"
TOLERANCE_S = 1.0  # labels are good to +-0.2-0.3 s; a count lands on the next sample (0.25 s)
TRUTH_CLASSES = {"person": "pedestrian"}  # ground-truth label -> class the stream counts
T0 = datetime(2026, 11, 22, 7, 0, 0, tzinfo=UTC)
BATCH = 8


@dataclass(frozen=True)
class Counted:
    t: float  # seconds into the clip
    line_id: str
    direction: str
    vehicle_class: str


@dataclass(frozen=True)
class Score:
    matched: int
    counted: int
    labelled: int

    @property
    def precision(self) -> float:
        return self.matched / self.counted if self.counted else 1.0

    @property
    def recall(self) -> float:
        return self.matched / self.labelled if self.labelled else 1.0


@pytest.fixture(scope="module")
def detector() -> Iterator[Any]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # shared machines: one thread is polite and often faster
    yield load_detector(device=torch.device("cpu"))
    torch.set_num_threads(previous)


def demo_camera(truth: dict[str, Any], footage_dir: Path) -> Camera:
    saved = os.environ.get("CITYCAM_FOOTAGE_DIR")
    os.environ["CITYCAM_FOOTAGE_DIR"] = str(footage_dir)
    try:
        return load_cameras(REPO / "citycam" / "demo" / "cameras.yaml").get(truth["camera_id"])
    finally:
        if saved is None:
            del os.environ["CITYCAM_FOOTAGE_DIR"]
        else:
            os.environ["CITYCAM_FOOTAGE_DIR"] = saved


def sampled_frames(
    path: Path, fps: float, start_s: float, end_s: float
) -> Iterator[tuple[float, np.ndarray]]:
    """(stream time, RGB image) of the frames ingest would publish, after its JPEG round trip."""
    sampler = FrameSampler(fps)
    quality = IngestSettings().jpeg_quality
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            t = float(frame.time or 0.0)
            if t > end_s:
                break
            if t < start_s or not sampler.take(t):
                continue
            ok, jpeg = cv2.imencode(
                ".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, quality]
            )
            assert ok
            bgr = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
            assert bgr is not None
            yield t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# Published events per (camera, clip, sample fps, window). Detection is the slow part (minutes
# on a shared CPU) and its output does not depend on the camera's geometry, so the tests of
# this module that read the same clip share one run.
_EVENTS: dict[tuple[str, Path, float, float, float], list[FrameDetections]] = {}


def tracked_frames(
    detector: Any, camera: Camera, path: Path, start_s: float, end_s: float
) -> list[FrameDetections]:
    """The clip through sampler, detector, tracker and contract: what the streams job reads."""
    key = (camera.id, path, camera.sample_fps, start_s, end_s)
    if key in _EVENTS:
        return _EVENTS[key]
    trackers = CameraTrackers(InferenceSettings())
    events: list[FrameDetections] = []
    frames = list(sampled_frames(path, camera.sample_fps, start_s, end_s))
    for i in range(0, len(frames), BATCH):
        batch = frames[i : i + BATCH]
        detected = detector.detect([im for _, im in batch])
        for k, ((t, image), dets) in enumerate(zip(batch, detected, strict=True)):
            height, width = image.shape[:2]
            ref = FrameRef(
                camera_id=camera.id,
                frame_id=f"{camera.id}-{t:.3f}",
                captured_at=T0 + timedelta(seconds=t),
                frame_uri="file:///accuracy.jpg",
                width=width,
                height=height,
                sequence=i + k,
                session_id="accuracy",
            )
            tracked = trackers.update(
                camera.id, ref.captured_at, clip_to_frame(dets, width, height)
            )
            events.append(to_contract(ref, tracked, detector, width, height))
    _EVENTS[key] = events
    return events


def stream_crossings(events: list[FrameDetections], camera: Camera) -> list[Crossing]:
    """The streams job's counting of these events with the camera's geometry, default settings."""
    settings = StreamsSettings()
    tracks: dict[int, TrackState] = {}
    window = None
    crossings: list[Crossing] = []
    for event in events:
        layout = layout_for(camera, event.width, event.height, settings)
        assert layout is not None
        result = count_frame(event, layout, window, tracks, settings)
        assert result is not None
        window = result.window
        tracks.update(result.tracks)
        crossings += result.crossings
    return crossings


def count_clip(
    detector: Any, camera: Camera, path: Path, start_s: float, end_s: float
) -> list[Counted]:
    """The clip through sampler, detector, tracker, contract and the stream's counting."""
    events = tracked_frames(detector, camera, path, start_s, end_s)
    return [
        Counted(c.ts - T0.timestamp(), c.line_id, c.direction, c.vehicle_class)
        for c in stream_crossings(events, camera)
    ]


def score(counted: list[Counted], truth: dict[str, Any]) -> dict[tuple[str, str], Score]:
    """One-to-one matches per (direction, class) within TOLERANCE_S, inside the scored windows."""
    line_id = truth["line"]["id"]
    windows = truth["evaluation_windows_s"]
    found = [c for c in counted if c.line_id == line_id and any(a <= c.t <= b for a, b in windows)]
    labelled = [
        (c["t"], c["direction"], TRUTH_CLASSES.get(c["class"], c["class"]))
        for c in truth["crossings"]
    ]
    groups = {(d, k) for _, d, k in labelled} | {(c.direction, c.vehicle_class) for c in found}
    scores = {}
    for direction, cls in sorted(groups):
        want = [t for t, d, k in labelled if (d, k) == (direction, cls)]
        got = [c.t for c in found if (c.direction, c.vehicle_class) == (direction, cls)]
        matched = 0
        if want and got:
            gap = np.abs(np.subtract.outer(want, got))
            rows, cols = linear_sum_assignment(np.where(gap <= TOLERANCE_S, gap, 1e6))
            matched = int(np.count_nonzero(gap[rows, cols] <= TOLERANCE_S))
        scores[(direction, cls)] = Score(matched, len(got), len(want))
    return scores


def total(scores: dict[tuple[str, str], Score]) -> Score:
    return Score(
        sum(s.matched for s in scores.values()),
        sum(s.counted for s in scores.values()),
        sum(s.labelled for s in scores.values()),
    )


def report(clip: str, camera: Camera, scores: dict[tuple[str, str], Score]) -> str:
    lines = [f"\n{clip} at {camera.sample_fps:g} fps (tolerance {TOLERANCE_S} s):"]
    for (direction, cls), s in [*sorted(scores.items()), (("all", "all"), total(scores))]:
        lines.append(
            f"  {direction:10} {cls:11} labelled {s.labelled:3}  counted {s.counted:3}  "
            f"matched {s.matched:3}  precision {s.precision:.2f}  recall {s.recall:.2f}"
        )
    return "\n".join(lines)


def load_truth(name: str) -> dict[str, Any]:
    data = yaml.safe_load((TRUTH / name).read_text())
    assert isinstance(data, dict)
    return data


@dataclass(frozen=True)
class TiltedCamera:
    """A pinhole camera with no roll and its principal point at the frame centre, tilted
    tilt_deg below horizontal at height_m above flat ground."""

    width: int
    height: int
    focal_px: float
    tilt_deg: float
    height_m: float

    def image_to_ground(self) -> list[list[float]]:
        """Pixels -> ground metres: x across the view, y away from the camera."""
        cx, cy, f, c = self.width / 2, self.height / 2, self.focal_px, self.height_m
        sin, cos = math.sin(math.radians(self.tilt_deg)), math.cos(math.radians(self.tilt_deg))
        return [
            [c, 0.0, -c * cx],
            [0.0, -c * sin, c * (f * cos + cy * sin)],
            [0.0, cos, f * sin - cy * cos],  # 0 on the horizon, row cy - f * tan(tilt)
        ]

    def person_px(self, feet: tuple[float, float], person_m: float) -> float:
        """Image height of an upright person standing with their feet at image point `feet`."""
        _, away = to_ground(feet, self.image_to_ground())
        sin, cos = math.sin(math.radians(self.tilt_deg)), math.cos(math.radians(self.tilt_deg))

        def row(above_ground_m: float) -> float:
            below_camera = self.height_m - above_ground_m
            forward = below_camera * sin + away * cos
            return self.height / 2 + self.focal_px * (below_camera * cos - away * sin) / forward

        return row(0.0) - row(person_m)


# vtest.avi's ground calibration, derived from the footage: it has no surveyed one (the demo
# registry gives it no homography). Tilt and camera height were fitted by least squares to the
# median height of this pipeline's person boxes (score >= 0.5, not cut by the frame edge; 1505
# boxes at 4 fps) in 20 px bands of feet row, every person taken as PERSON_M tall: boxes are
# ~66 px tall with their feet at row 230 and ~104 px at row 390, so along the line (rows
# 200-315) one pixel across is 2-2.7 cm of ground. Box heights cannot tell the focal length
# from the tilt (fits at 500-1200 px are about as good), so it is assumed: 900 px, 46 deg
# across the frame, which puts the horizon at row -19, above the frame as it must be (the
# ground reaches the top edge); 500 px would put it at row 24, on the visible ground. Fitted
# with 500, 700 or 1200 px instead, the median crossing speed is 4.4, 4.4 or 4.8 km/h (4.6
# here): people cross the upright line mostly sideways, where the box heights alone set scale.
VTEST_CAMERA = TiltedCamera(width=768, height=576, focal_px=900, tilt_deg=18.83, height_m=5.912)
PERSON_M = 1.7


def with_homography(camera: Camera, matrix: list[list[float]]) -> Camera:
    raw = camera.model_dump()
    raw["geometry"]["homography"] = {"matrix": matrix}
    return Camera.model_validate(raw)


def test_vtest_footway_crossings(detector: Any, footage_dir: Path) -> None:
    truth = load_truth("vtest_crossings.yaml")
    camera = demo_camera(truth, footage_dir)
    counted = count_clip(detector, camera, footage_dir / truth["clip"], 0.0, truth["duration_s"])
    scores = score(counted, truth)
    print(report(truth["clip"], camera, scores))
    overall = total(scores)
    # Measured 0.96 / 1.00 (module docstring). Each crossing is ~4% of 26: the thresholds allow
    # three more errors than measured, and fail at what 2 fps gives (recall 0.69).
    assert overall.precision >= 0.85 and overall.recall >= 0.85
    for direction in ("eastbound", "westbound"):
        assert scores[(direction, "pedestrian")].recall >= 0.8, direction


def test_bikes_street_shot_car_crossings(detector: Any, footage_dir: Path) -> None:
    truth = load_truth("bikes_crossings.yaml")
    camera = demo_camera(truth, footage_dir)
    ((start, end),) = truth["evaluation_windows_s"]
    # Only the street shot (plus 0.5 s before it, at the same sampling phase) carries the
    # line's road; anything counted in the other shots is a montage artefact (see the file).
    counted = count_clip(detector, camera, footage_dir / truth["clip"], start - 0.48, end + 0.12)
    scores = score(counted, truth)
    print(report(truth["clip"], camera, scores))
    overall = total(scores)
    # Two labelled cars: measured 1 found (the other is below the tracker's activation score),
    # nothing false. Fail if neither is found or anything false is counted.
    assert overall.matched >= 1 and overall.counted == overall.matched


def test_vtest_pedestrian_speeds(detector: Any, footage_dir: Path) -> None:
    truth = load_truth("vtest_crossings.yaml")
    demo = demo_camera(truth, footage_dir)
    assert demo.geometry is not None
    assert demo.geometry.frame_size == (VTEST_CAMERA.width, VTEST_CAMERA.height)
    camera = with_homography(demo, VTEST_CAMERA.image_to_ground())
    events = tracked_frames(detector, camera, footage_dir / truth["clip"], 0.0, truth["duration_s"])

    # The calibration still fits the footage: near the line a person's box is as tall as the
    # camera model draws a 1.7 m person there (1.0 when the constants were fitted).
    ratios = [
        (d.bbox.y2 - d.bbox.y1)
        / VTEST_CAMERA.person_px(((d.bbox.x1 + d.bbox.x2) / 2, d.bbox.y2), PERSON_M)
        for e in events
        for d in e.detections
        if d.class_name == "person" and d.score >= 0.5 and d.bbox.y1 > 2 and 200 <= d.bbox.y2 <= 315
    ]
    fit = float(np.median(ratios))

    crossings = [c for c in stream_crossings(events, camera) if c.vehicle_class == "pedestrian"]
    speeds = [c.speed_kmh for c in crossings if c.speed_kmh is not None]
    print(
        f"\n{truth['clip']}: person box height / modelled 1.7 m near the line {fit:.2f} "
        f"({len(ratios)} boxes)"
    )
    for c in crossings:
        print(f"  {c.ts - T0.timestamp():5.2f} s  {c.direction:9}  {c.speed_kmh} km/h")
    assert 0.85 <= fit <= 1.15, "the derived calibration no longer fits the boxes"
    # The accuracy test holds recall; here enough crossings must carry a speed for a median.
    assert len(crossings) >= 20 and len(speeds) >= 0.8 * len(crossings), "too few speeds"
    median = float(np.median(speeds))
    print(
        f"  {len(speeds)} of {len(crossings)} pedestrian crossings with a speed: median "
        f"{median:.2f} km/h, mean {np.mean(speeds):.2f}, p85 {np.percentile(speeds, 85):.2f}, "
        f"range {min(speeds):.2f}-{max(speeds):.2f}"
    )
    # Walking is 3-6 km/h; the band is wide because the calibration is a derived one. Measured
    # median 4.6. Fails with speeds in m/s (1.3), time counted in 4 fps samples instead of
    # seconds (1.4), distance in pixels instead of metres (179); time in 10 fps frames or in ms
    # shrinks the speed span below one sample, so most crossings lose their speed (above).
    assert 2.0 <= median <= 9.0, f"median {median:.2f} km/h is no walking speed"
    # The fastest crossing measured 9.0 km/h; no walker goes over 25.
    assert max(speeds) <= 25.0, f"a pedestrian crossed at {max(speeds):.2f} km/h"
