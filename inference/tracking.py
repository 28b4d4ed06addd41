"""Multi-object tracking per camera: ByteTrack over each frame's detections, ids that never repeat.

State is per camera and lives in the consumer that owns the camera's partition of the frames
topic (frames are keyed by camera id). It is dropped when that partition is revoked or lost,
and restarted when a camera's capture time goes backwards or jumps by more than
``track_max_gap_s`` (a camera restart or a replay): a track never spans such a break.

Track ids say when a track was confirmed: a track confirmed at capture second ``s`` gets
``s * IDS_PER_SECOND``, or one more than the camera's previous id if that is higher. So within
one process a camera's ids strictly increase, across resets and revocations too, and never
collide. After a consumer restart that memory is gone, but ids start again from the capture
time of the first frame re-read, so they can only repeat ids the previous process gave on
frames from that second on: frames whose events are published again anyway (the warehouse
keeps one version per frame), plus, rarely, earlier frames of that same second. Tracks are
not carried across a restart: an object in view at that moment gets a new id.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from citycam.config import InferenceSettings

log = logging.getLogger(__name__)

IDS_PER_SECOND = 1_000_000
"""Room for ids confirmed within one capture second; keeps ids below 2**53 until 2255."""

TRACK_GROUPS: dict[str, str] = {
    "bicycle": "two-wheeler",
    "motorcycle": "two-wheeler",
    "car": "four-wheeler",
    "truck": "four-wheeler",
    "bus": "four-wheeler",
}
"""Labels tracked together; any other label is tracked on its own.

ByteTrack ignores labels, so one tracker over all boxes could hand a rider's id to the
motorbike under them (their boxes overlap heavily). A tracker per group avoids that, while
labels the detector confuses from frame to frame (car/truck, bicycle/motorcycle) keep one id.
"""

UNTRACKED = -1
"""tracker_id of a box not (yet) part of a confirmed track, as ByteTrack reports it."""


class _GroupTracker:
    """ByteTrack over one label group, its ids (0, 1, ...) mapped onto the camera's ids."""

    def __init__(self, allocate: Callable[[], int], params: dict[str, Any]) -> None:
        self._bytetrack = ByteTrackTracker(**params)
        self._allocate = allocate
        self._ids: dict[int, int] = {}

    def update(self, detections: sv.Detections, ts: float) -> sv.Detections:
        tracked = self._bytetrack.update(detections, timestamp=ts)
        ids = tracked.tracker_id if tracked.tracker_id is not None else np.empty(0, int)
        for local in ids[ids != UNTRACKED].tolist():
            if local not in self._ids:
                self._ids[local] = self._allocate()
        if len(self._ids) > 2 * len(self._bytetrack.tracks) + 16:  # forget ended tracks
            alive = {t.tracker_id for t in self._bytetrack.tracks}
            self._ids = {k: v for k, v in self._ids.items() if k in alive}
        tracked.tracker_id = np.array([self._ids.get(int(i), UNTRACKED) for i in ids], np.int64)
        return tracked


class _CameraTracks:
    """One camera's trackers (one per label group) since its last restart."""

    def __init__(self, first_id: int, params: dict[str, Any], partition: int | None) -> None:
        self.next_id = first_id
        self.last_ts = -np.inf
        self.partition = partition
        self._params = params
        self._trackers: dict[str, _GroupTracker] = {}

    def allocate(self) -> int:
        track_id = max(self.next_id, int(self.last_ts) * IDS_PER_SECOND)
        self.next_id = track_id + 1
        return track_id

    def update(self, ts: float, detections: sv.Detections) -> np.ndarray:
        """Track ids aligned with ``detections`` (``UNTRACKED`` where none)."""
        self.last_ts = ts
        ids = np.full(len(detections), UNTRACKED, dtype=np.int64)
        groups = _groups(detections)
        # Every tracker steps on every frame, boxes or not, so its lost tracks age.
        for group in self._trackers.keys() | set(groups):
            index = np.flatnonzero(groups == group)
            tracked = self._tracker(group).update(_subset(detections, index), ts)
            if len(tracked) and tracked.tracker_id is not None:
                ids[tracked.data["index"]] = tracked.tracker_id
        return ids

    def _tracker(self, group: str) -> _GroupTracker:
        if group not in self._trackers:
            self._trackers[group] = _GroupTracker(self.allocate, self._params)
        return self._trackers[group]


class CameraTrackers:
    """ByteTrack state per camera, owned by the consumer of that camera's partition."""

    def __init__(self, settings: InferenceSettings) -> None:
        self.max_gap_s = settings.track_max_gap_s
        self._params = bytetrack_params(settings)
        self._cameras: dict[str, _CameraTracks] = {}
        # Outlives resets and revocations, so a camera's ids never repeat within a process.
        self._next_id: dict[str, int] = {}

    @property
    def cameras(self) -> set[str]:
        return set(self._cameras)

    def update(
        self,
        camera_id: str,
        captured_at: datetime,
        detections: sv.Detections,
        partition: int | None = None,
    ) -> sv.Detections:
        """``detections`` (same order) with ``tracker_id`` set; ``UNTRACKED`` where none."""
        ts = captured_at.timestamp()
        state = self._cameras.get(camera_id)
        if state is None or not 0 < ts - state.last_ts <= self.max_gap_s:
            state = self._restart(camera_id, ts, partition)
        return dataclasses.replace(detections, tracker_id=state.update(ts, detections))

    def drop(self, camera_ids: Iterable[str]) -> None:
        for camera_id in camera_ids:
            state = self._cameras.pop(camera_id, None)
            if state is not None:
                self._next_id[camera_id] = state.next_id

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        """Forget the cameras read from these partitions (revoked or lost in a rebalance)."""
        gone = set(partitions)
        self.drop([c for c, s in self._cameras.items() if s.partition in gone])

    def _restart(self, camera_id: str, ts: float, partition: int | None) -> _CameraTracks:
        previous = self._cameras.get(camera_id)
        if previous is not None:
            log.info(
                "camera %s: capture time moved %+.1f s; tracks restarted",
                camera_id,
                ts - previous.last_ts,
            )
            self.drop([camera_id])
        state = _CameraTracks(self._next_id.get(camera_id, 0), self._params, partition)
        self._cameras[camera_id] = state
        return state


def bytetrack_params(settings: InferenceSettings) -> dict[str, Any]:
    """ByteTrackTracker arguments from the settings.

    ByteTrack gets each frame's capture time, so its Kalman step follows the real interval
    (sampling jitter, dropped frames); ``frame_rate`` only names the interval its per-frame
    noise was tuned for. Its lost buffer counts 30 fps frames, hence the conversion.
    """
    return {
        "lost_track_buffer": max(1, round(settings.track_lost_buffer_s * 30)),
        "frame_rate": settings.track_frame_rate,
        "track_activation_threshold": settings.track_activation_threshold,
        "high_conf_det_threshold": settings.track_high_score_threshold,
        "minimum_iou_threshold": settings.track_min_iou,
        "minimum_consecutive_frames": settings.track_min_consecutive_frames,
    }


def _groups(detections: sv.Detections) -> np.ndarray:
    """Each box's tracker group, from its label name (or id; one group if it has neither)."""
    if "class_name" in detections.data:
        labels = [str(n) for n in detections.data["class_name"]]
    elif detections.class_id is not None:
        labels = [str(c) for c in detections.class_id]
    else:
        labels = [""] * len(detections)
    return np.array([TRACK_GROUPS.get(n, n) for n in labels], dtype=object)


def _subset(detections: sv.Detections, index: np.ndarray) -> sv.Detections:
    """The boxes at ``index``, carrying their position so results can be put back in order."""
    confidence = detections.confidence
    return sv.Detections(
        xyxy=detections.xyxy[index],
        confidence=None if confidence is None else confidence[index],
        data={"index": index},
    )
