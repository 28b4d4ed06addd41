from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.sampler import FrameSampler


def taken(sampler: FrameSampler, times: list[float]) -> list[float]:
    return [t for t in times if sampler.take(t)]


def test_downsamples_25fps_to_5fps() -> None:
    times = [i / 25 for i in range(250)]  # 10 s
    picked = taken(FrameSampler(5), times)
    assert len(picked) == 50
    assert picked[:3] == [0.0, 0.2, 0.4]


def test_rate_above_source_takes_every_frame() -> None:
    times = [i / 10 for i in range(30)]
    assert taken(FrameSampler(25), times) == times


def test_gap_skips_missed_ticks_instead_of_bursting() -> None:
    times = [0.0, 0.5, 1.0, 5.0, 5.04, 5.08, 5.5]
    assert taken(FrameSampler(2), times) == [0.0, 0.5, 1.0, 5.0, 5.5]


def test_time_going_backwards_reanchors() -> None:
    sampler = FrameSampler(1)
    assert taken(sampler, [0.0, 1.0, 2.0]) == [0.0, 1.0, 2.0]
    assert taken(sampler, [0.0, 0.5, 1.0]) == [0.0, 1.0]  # a looped file starts over


def test_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        FrameSampler(0)


@given(
    source_fps=st.sampled_from([10, 12.5, 24, 25, 29.97, 30, 60]),
    target_fps=st.floats(0.2, 10),
    seconds=st.integers(2, 60),
)
def test_sampled_count_matches_target_rate(
    source_fps: float, target_fps: float, seconds: int
) -> None:
    times = [i / source_fps for i in range(int(seconds * source_fps))]
    picked = taken(FrameSampler(target_fps), times)
    expected = min(len(times), seconds * target_fps)
    assert abs(len(picked) - expected) <= 1 + expected * 0.05
    min_gap = 1 / target_fps - 1 / source_fps - 1e-9
    assert all(b - a >= min_gap for a, b in itertools.pairwise(picked))
