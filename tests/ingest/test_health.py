"""Camera health window math with a fake clock: live, dead, flaky cameras, partial minutes, lag."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ingest.health import REPORT_DELAY_S, HealthMonitor
from schemas import CameraHealth

T0 = datetime(2026, 11, 22, 7, 30, tzinfo=UTC).timestamp()  # a whole minute


class FakeClock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def monitor(clock: FakeClock, target_fps: float = 2) -> HealthMonitor:
    return HealthMonitor("cam", target_fps, clock)


def feed(
    health: HealthMonitor,
    clock: FakeClock,
    start: float,
    end: float,
    fps: float = 10,
    publish_every: int = 5,
    lag_s: float = 0.2,
) -> None:
    """Frames decoded at `fps` from start to end (offsets from T0), every n-th published."""
    n = 0
    while start + n / fps < end - 1e-9:
        clock.t = T0 + start + n / fps
        health.frame(clock.t, lag_s if n % publish_every == 0 else None)
        n += 1


def test_live_camera_full_minute() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    health.source_opened()
    feed(health, clock, 0, 60)
    clock.t = T0 + 60 + REPORT_DELAY_S - 0.01
    assert health.reports() == [], "a minute is reported only once it is surely complete"
    clock.t = T0 + 61.5
    [report] = health.reports()
    assert isinstance(report, CameraHealth)
    assert report.window_start == datetime.fromtimestamp(T0, UTC)
    assert report.window_end - report.window_start == timedelta(minutes=1)
    assert (report.frames_decoded, report.frames_published, report.reconnects) == (600, 120, 1)
    assert (report.covered_s, report.fps, report.target_fps, report.up_share) == (60, 2, 2, 1)
    assert (report.lag_ms_mean, report.lag_ms_max) == (200, 200)
    assert report.decode_errors == 0
    assert report.emitted_at == datetime.fromtimestamp(T0 + 61.5, UTC)
    assert health.reports() == [], "each minute is reported once"


def test_dead_camera_reports_every_minute_with_its_attempts() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    for attempt in range(10):  # backoff 1, 2, 4, 8, 16, 30, 30... seconds
        clock.t = T0 + sum(min(30, 2**i) for i in range(attempt))
        health.source_opened()
    assert clock.t < T0 + 180
    clock.t = T0 + 4 * 60 + 2
    reports = health.reports()
    assert [r.window_start for r in reports] == [
        datetime.fromtimestamp(T0 + 60 * i, UTC) for i in range(4)
    ]
    assert [r.reconnects for r in reports] == [6, 2, 2, 0], "minutes without attempts too"
    for r in reports:
        assert (r.up_share, r.frames_decoded, r.frames_published, r.fps) == (0, 0, 0, 0)
        assert r.lag_ms_mean is None and r.lag_ms_max is None and r.covered_s == 60


def test_camera_dying_mid_minute_is_up_for_the_seconds_it_delivered() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    health.source_opened()
    feed(health, clock, 0, 30)  # then silence: a hung stream until the read timeout
    clock.t = T0 + 45
    health.source_opened()
    clock.t = T0 + 62
    [report] = health.reports()
    assert report.up_share == 0.5 and report.reconnects == 2
    assert report.fps == pytest.approx(60 / 60)  # 60 frames published over the minute


def test_gaps_shorter_than_a_second_keep_the_camera_up() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    feed(health, clock, 0, 60, fps=1.25)  # a slow source: one frame every 0.8 s
    clock.t = T0 + 62
    assert health.reports()[0].up_share == 1


def test_partial_first_and_last_minutes_are_marked_by_their_covered_seconds() -> None:
    clock = FakeClock(T0 + 45.5)
    health = monitor(clock)
    health.start()
    health.source_opened()
    feed(health, clock, 45.5, 80.25, fps=2, publish_every=1)
    clock.t = T0 + 80.25
    health.stop()
    first, last = health.reports()
    assert (first.covered_s, last.covered_s) == (14.5, 20.25)
    assert first.window_start == datetime.fromtimestamp(T0, UTC)
    assert last.window_start == datetime.fromtimestamp(T0 + 60, UTC)
    # delivering throughout: fully up, at its sample rate, in both partial minutes
    assert (first.up_share, last.up_share) == (1, 1)
    assert (first.frames_published, last.frames_published) == (29, 41)
    assert first.fps == pytest.approx(2, abs=0.01) and last.fps == pytest.approx(2, abs=0.03)
    assert (first.reconnects, last.reconnects) == (1, 0)
    assert health.reports() == []


def test_a_worker_stopping_on_a_minute_boundary_reports_no_empty_minute() -> None:
    clock = FakeClock(T0 + 30)
    health = monitor(clock)
    health.start()
    clock.t = T0 + 120
    health.stop()
    clock.t = T0 + 300
    assert [r.covered_s for r in health.reports()] == [30, 60]


def test_a_short_run_with_nothing_delivered_is_down_not_missing() -> None:
    clock = FakeClock(T0 + 10)
    health = monitor(clock)
    health.start()
    health.source_opened()
    clock.t = T0 + 12.5
    health.source_opened()
    health.stop()
    [report] = health.reports()
    assert (report.covered_s, report.up_share, report.reconnects) == (2.5, 0, 2)


def test_lag_is_mean_and_max_over_published_frames_only() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    for offset, lag in [(1, 0.1), (2, None), (3, 0.3), (4, None), (5, 0.2)]:
        health.frame(T0 + offset, lag)
    health.frame(T0 + 6, 5.0)  # a slow frame store: a long delay counts like any other
    clock.t = T0 + 62
    [report] = health.reports()
    assert report.frames_published == 4 and report.frames_decoded == 6
    assert report.lag_ms_mean == pytest.approx((100 + 300 + 200 + 5000) / 4)
    assert report.lag_ms_max == 5000


def test_negative_lag_of_a_file_running_ahead_of_the_clock_is_kept() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    health.frame(T0 + 1, -4.0)
    health.frame(T0 + 1.01, -3.5)
    clock.t = T0 + 62
    [report] = health.reports()
    assert (report.lag_ms_mean, report.lag_ms_max) == (-3750, -3500)


def test_decode_errors_count_in_their_minute() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    for t in (5, 6, 70):
        clock.t = T0 + t
        health.decode_error()
    clock.t = T0 + 122
    assert [r.decode_errors for r in health.reports()] == [2, 1]


def test_a_frame_recorded_after_its_minute_was_reported_counts_in_the_next() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    health.frame(T0 + 10, 0.1)
    clock.t = T0 + 61.5
    [first] = health.reports()
    health.frame(T0 + 59.9, 1.7)  # publishing it took longer than the report delay
    clock.t = T0 + 121.5
    [second] = health.reports()
    assert (first.frames_decoded, second.frames_decoded) == (1, 1)
    assert second.frames_published == 1 and second.up_share == pytest.approx(1 / 60, abs=1e-4)


def test_a_clock_stepping_back_never_reopens_a_reported_minute() -> None:
    clock = FakeClock()
    health = monitor(clock)
    health.start()
    clock.t = T0 + 61.5
    health.reports()
    clock.t = T0 + 30  # NTP stepped the clock back
    health.source_opened()
    health.frame(clock.t, 0.05)
    assert health.reports() == []
    clock.t = T0 + 121.5
    [report] = health.reports()
    assert report.window_start == datetime.fromtimestamp(T0 + 60, UTC)
    assert (report.reconnects, report.frames_published) == (1, 1)


def test_nothing_is_reported_before_the_worker_started() -> None:
    clock = FakeClock()
    health = monitor(clock)
    clock.t = T0 + 600
    assert health.reports() == []
