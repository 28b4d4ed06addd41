"""Pick frames at a target rate from a stream whose own rate may be higher or irregular."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class FrameSampler:
    """Take the first frame at or after each tick of a `fps` clock anchored at the first frame.

    Ticks are computed from the anchor (not accumulated) so float error never drifts; a gap in
    the stream skips the missed ticks instead of bursting; time going backwards (a looped file,
    a restarted encoder) re-anchors.
    """

    fps: float
    _anchor: float | None = field(default=None, init=False)
    _next_tick: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ValueError(f"sample fps must be > 0, got {self.fps}")

    def take(self, t: float) -> bool:
        if self._anchor is None or t < self._anchor + (self._next_tick - 1) / self.fps:
            self._anchor, self._next_tick = t, 1
            return True
        tick = math.floor((t - self._anchor) * self.fps + 1e-6)
        if tick < self._next_tick:
            return False
        self._next_tick = tick + 1
        return True
