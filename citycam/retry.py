"""Exponential backoff, shared by every stage that retries (reconnects, inserts)."""

from __future__ import annotations

MAX_DOUBLINGS = 32
"""Beyond this the delay is long at its cap anyway; uncapped, 2.0**1024 overflows (some hours
into a dead camera's reconnects or a warehouse outage)."""


def backoff_s(attempt: int, initial_s: float, max_s: float) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, ...): doubling from `initial_s`,
    at most `max_s`."""
    return min(max_s, initial_s * 2 ** min(attempt - 1, MAX_DOUBLINGS))
