"""Camera health per wall-clock minute: what one ingest worker saw of its camera.

A `HealthMonitor` belongs to one camera worker. The worker tells it when it starts and stops
running, each attempt to open the source, each decode error and each decoded frame (with the
capture-to-publish lag of the frames it published); `reports()` turns every minute that has
ended into a `CameraHealth`, minutes in which nothing happened included.

Definitions (the CameraHealth contract states them too):
- Windows are UTC wall-clock minutes [m, m + 60 s), not capture-time windows: a dead camera
  has no capture times, and must still be reported.
- covered_s: how long within the minute the worker was running (ms resolution); 60 but for
  the minutes it started and stopped in.
- up_share: one-second slots of the minute with at least one decoded frame, over the slots
  the worker was running in (any part of). Counting slots on both sides of the fraction
  gives a camera that delivered throughout a partial minute 1.0 too.
- fps: frames published / covered_s, so a partial minute compares with target_fps.
- lag: publication wall time minus the FrameRef's captured_at, mean and max in ms.
- A frame counts, decoded and published, in the minute it was decoded: published never
  exceeds decoded in a window. A frame recorded after its minute was reported (or with a
  clock stepped back) counts in the first minute not yet reported.
A minute is reported REPORT_DELAY_S after it ended, so a frame decoded in its last moments
is usually recorded (published) by then.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from schemas import CameraHealth

WINDOW_S = 60
REPORT_DELAY_S = 1.0

Clock = Callable[[], float]  # wall-clock seconds since the epoch, like time.time


def minute_of(t: float) -> int:
    return math.floor(t / WINDOW_S) * WINDOW_S


@dataclass
class HealthWindow:
    """Counters of one camera in the minute starting at `start` (epoch seconds)."""

    start: int
    frames_decoded: int = 0
    frames_published: int = 0
    decode_errors: int = 0
    reconnects: int = 0
    up_slots: set[int] = field(default_factory=set)  # seconds of the minute with a frame
    lag_ms_total: float = 0.0
    lag_ms_max: float | None = None

    def slot(self, t: float) -> int:
        return min(WINDOW_S - 1, max(0, math.floor(t - self.start)))

    def add_frame(self, decoded_at: float, lag_ms: float | None) -> None:
        self.frames_decoded += 1
        self.up_slots.add(self.slot(decoded_at))
        if lag_ms is not None:
            self.frames_published += 1
            self.lag_ms_total += lag_ms
            self.lag_ms_max = lag_ms if self.lag_ms_max is None else max(self.lag_ms_max, lag_ms)

    def report(
        self,
        camera_id: str,
        target_fps: float,
        running: tuple[float, float],
        emitted_at: datetime,
    ) -> CameraHealth | None:
        """The minute's report, given when the worker ran (start, end); None if it did not
        run in this minute at all."""
        begin, end = max(running[0], self.start), min(running[1], self.start + WINDOW_S)
        if end <= begin:
            return None
        covered_s = max(round(end - begin, 3), 0.001)
        covered_slots = math.ceil(end - self.start) - self.slot(begin)
        covered_slots = max(covered_slots, len(self.up_slots), 1)
        window_start = datetime.fromtimestamp(self.start, UTC)
        lag_mean = lag_max = None
        if self.lag_ms_max is not None:
            lag_max = round(self.lag_ms_max, 1)
            # float sums can put the mean of equal lags a hair above their max
            lag_mean = min(round(self.lag_ms_total / self.frames_published, 1), lag_max)
        return CameraHealth(
            camera_id=camera_id,
            window_start=window_start,
            window_end=window_start + timedelta(seconds=WINDOW_S),
            covered_s=covered_s,
            frames_decoded=self.frames_decoded,
            frames_published=self.frames_published,
            decode_errors=self.decode_errors,
            reconnects=self.reconnects,
            fps=round(self.frames_published / covered_s, 4),
            target_fps=target_fps,
            up_share=round(len(self.up_slots) / covered_slots, 4),
            lag_ms_mean=lag_mean,
            lag_ms_max=lag_max,
            emitted_at=emitted_at,
        )


class HealthMonitor:
    """Per-minute health counters of one camera worker; thread-safe (the worker records,
    the service's main loop collects reports)."""

    def __init__(self, camera_id: str, target_fps: float, clock: Clock = time.time) -> None:
        self.camera_id = camera_id
        self.target_fps = target_fps
        self.clock = clock
        self._lock = threading.Lock()
        self._windows: dict[int, HealthWindow] = {}
        self._started: float | None = None
        self._stopped: float | None = None
        self._next_start: int | None = None  # first minute not yet reported

    def start(self) -> None:
        """The worker starts running: covered time begins."""
        with self._lock:
            self._started = self.clock()
            self._next_start = minute_of(self._started)

    def stop(self) -> None:
        """The worker ended: the minute it stopped in is reported at the next `reports()`."""
        with self._lock:
            self._stopped = self.clock()

    def source_opened(self) -> None:
        """An attempt to open the source (the first, a reconnect or a replay) begins."""
        with self._lock:
            self._window(self.clock()).reconnects += 1

    def decode_error(self) -> None:
        with self._lock:
            self._window(self.clock()).decode_errors += 1

    def frame(self, decoded_at: float, lag_s: float | None = None) -> None:
        """A frame decoded at `decoded_at`; `lag_s` (publication time minus capture time)
        if it was published."""
        with self._lock:
            lag_ms = None if lag_s is None else lag_s * 1000
            self._window(decoded_at).add_frame(decoded_at, lag_ms)

    def reports(self) -> list[CameraHealth]:
        """Reports of the minutes that ended REPORT_DELAY_S ago or more, oldest first; once
        the worker stopped, of every minute it ran in. Each minute is reported once."""
        with self._lock:
            if self._started is None or self._next_start is None:
                return []
            now = self.clock()
            end = now if self._stopped is None else self._stopped
            emitted_at = datetime.fromtimestamp(now, UTC)
            reports = []
            while self._due(self._next_start, now):
                start = self._next_start
                window = self._windows.pop(start, None) or HealthWindow(start)
                report = window.report(
                    self.camera_id, self.target_fps, (self._started, end), emitted_at
                )
                if report is not None:
                    reports.append(report)
                self._next_start = start + WINDOW_S
            return reports

    def _due(self, start: int, now: float) -> bool:
        if self._stopped is not None:
            return start < self._stopped
        return start + WINDOW_S + REPORT_DELAY_S <= now

    def _window(self, t: float) -> HealthWindow:
        start = minute_of(t)
        if self._next_start is not None and start < self._next_start:
            start = self._next_start  # that minute was reported already (or the clock stepped)
        if start not in self._windows:
            self._windows[start] = HealthWindow(start)
        return self._windows[start]
