"""Whether the refreshed rollups have caught up with the minute facts.

The hourly and daily rollups (migrations 0008, 0012) are recomputed from the minute facts by
refreshable views every few seconds, so they trail them by a refresh or two. Whatever reads
them right after facts landed (the demo's open-data export, benchmarks, tests) waits here.
"""

from __future__ import annotations

import time
from datetime import datetime

from clickhouse_connect.driver.client import Client

# Each rollup covers every minute fact (counted by minutes_covered) and sums to the same.
CAUGHT_UP = """
WITH toStartOfDay({since:DateTime64(3, 'UTC')}) AS first_day
SELECT
    (SELECT (count(), sum(detections)) FROM traffic_density_1m FINAL
        WHERE window_start >= first_day)
        = (SELECT (sum(minutes_covered), sum(detections)) FROM traffic_density_1h
            WHERE hour >= first_day)
    AND (SELECT (count(), sum(detections)) FROM traffic_density_1m FINAL
        WHERE window_start >= first_day)
        = (SELECT (sum(minutes_covered), sum(detections)) FROM traffic_density_1d
            WHERE day >= toDate(first_day))
    AND (SELECT (count(), sum(crossings)) FROM line_crossings_1m FINAL
        WHERE window_start >= first_day)
        = (SELECT (sum(minutes_covered), sum(crossings)) FROM line_crossings_1h
            WHERE hour >= first_day)
"""


def rollups_caught_up(client: Client, since: datetime) -> bool:
    """Whether the hourly and daily rollups hold every minute fact from `since`'s UTC day
    on (`client`'s database)."""
    return bool(client.command(CAUGHT_UP, parameters={"since": since.replace(tzinfo=None)}))


def wait_for_rollups(client: Client, since: datetime, timeout_s: float = 30) -> bool:
    """`rollups_caught_up`, waiting up to `timeout_s` for it."""
    deadline = time.monotonic() + timeout_s
    while not rollups_caught_up(client, since):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True
