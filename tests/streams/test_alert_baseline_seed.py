"""Abnormal-flow baselines seeded from the warehouse: the real embedded endpoint (chDB) on
loopback, migrated, holding three weeks of a camera's line-crossing facts.

A camera first seen by a fresh alerts job judges flow from its first minutes on, against the
baselines its warehouse history gives: an hour at three times the usual flow opens an
abnormal-flow episode, a usual hour does not, and without seeding nothing is judged at all.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import clickhouse_connect
import numpy as np
import pytest
from pydantic import SecretStr

from citycam.config import AlertSettings, WarehouseSettings
from citycam.embedded import free_port
from schemas import LineCrossings, TrafficAlert
from streams.alerts import Alerter, BaselineSeeder, CameraAlerts, MinuteReading, seed_baselines
from tests.warehouse.conftest import launch_endpoint
from warehouse.migrate import migrate
from warehouse.sink import COLUMNS

SETTINGS = AlertSettings()
LOCAL = ZoneInfo(SETTINGS.timezone)
DAY0 = datetime(2026, 1, 5, tzinfo=LOCAL)  # a Monday, local midnight
HISTORY_DAYS = 21
JUDGED_DAY = DAY0 + timedelta(days=HISTORY_DAYS)  # the Monday after: the job's first day
CAMERA, OTHER = "seed-cam", "other-cam"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # emission time of alerts, fixed


def profile(local_minute: int) -> float:
    """A weekday's PCU per hour by minute of the day: quiet nights, two rush hours."""
    h = local_minute / 60
    return (
        60
        + 1100 * np.exp(-(((h - 8) / 1.5) ** 2))
        + 500 * np.exp(-(((h - 13) / 3) ** 2))
        + 1200 * np.exp(-(((h - 17.5) / 1.5) ** 2))
    )


def crossing_row(
    camera_id: str,
    window_start: datetime,
    vehicle_class: str,
    crossings: int,
    frames: int = 120,
    line_id: str = "main",
) -> list[Any]:
    factor = {"car": 1.0, "motorbike": 0.3}[vehicle_class]
    pcu = round(crossings * factor, 4)
    values = {
        "camera_id": camera_id,
        "line_id": line_id,
        "window_start": window_start,
        "window_end": window_start + timedelta(minutes=1),
        "direction": "eastbound",
        "orientation": "positive",
        "vehicle_class": vehicle_class,
        "frames": frames,
        "crossings": crossings,
        "pcu_factor": factor,
        "pcu": pcu,
        "pcu_per_hour": round(pcu * 60, 4),
        "pcu_version": "test",
        "speed_samples": 0,
        "speed_kmh_mean": None,
        "speed_kmh_p85": None,
        "emitted_at": window_start + timedelta(seconds=frames / 2),
    }
    return [values[c] for c in COLUMNS["line_crossings_1m"]]


History = tuple[list[list[Any]], list[list[Any]], list[tuple[int, float]]]


def camera_history(rng: np.random.Generator) -> History:
    """The camera's rows in line_crossings_1m: final emissions, and earlier emissions of the
    same minutes (fewer frames, fewer crossings) loaded after them, as a late sink batch
    would; and each minute's flow as the stream reads it.

    Per minute cars and motorbikes (0.3 PCU each) crossing at the day's profile, 70% and 30%
    of the PCU; at 14:00-15:00 also a second line with too few frames to be a reading, at a
    flow that would spoil the baseline if it counted.
    """
    final, earlier, flows = [], [], []
    for day in range(HISTORY_DAYS):
        for m in range(24 * 60):
            start = (DAY0 + timedelta(days=day, minutes=m)).astimezone(UTC)
            cars = int(rng.poisson(profile(m) / 60 * 0.7))
            bikes = int(rng.poisson(profile(m) / 60))
            final += [crossing_row(CAMERA, start, "car", cars)]
            final += [crossing_row(CAMERA, start, "motorbike", bikes)]
            earlier += [crossing_row(CAMERA, start, "car", cars // 3, frames=40)]
            if 14 * 60 <= m < 15 * 60:
                final += [crossing_row(CAMERA, start, "car", 90, frames=2, line_id="glitch")]
            flow = round(cars * 60 + round(round(bikes * 0.3, 4) * 60, 4), 4)
            flows.append((int(start.timestamp()), flow))
    return final, earlier, flows


def other_camera_rows() -> list[list[Any]]:
    """A busier camera's afternoons: must not leak into the seeded camera's baselines."""
    return [
        crossing_row(OTHER, (DAY0 + timedelta(days=day, minutes=m)).astimezone(UTC), "car", 200)
        for day in range(HISTORY_DAYS)
        for m in range(13 * 60, 16 * 60)
    ]


@dataclass
class Warehouse:
    settings: WarehouseSettings  # a migrated database on the endpoint, analyst credentials
    flows: list[tuple[int, float]]  # the seeded camera's history, minute by minute


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    endpoint = launch_endpoint(tmp_path_factory.mktemp("seed-warehouse"))
    try:
        database = f"seed_{uuid.uuid4().hex[:8]}"
        writer = clickhouse_connect.get_client(
            host=endpoint.host,
            port=endpoint.port,
            username="writer",
            password=endpoint.passwords["writer"],
        )
        migrate(writer, database, raw_ttl_days=7)
        final, earlier, flows = camera_history(np.random.default_rng(11))
        columns = COLUMNS["line_crossings_1m"]
        for rows in (final + other_camera_rows(), earlier):
            writer.insert(f"{database}.line_crossings_1m", rows, columns)
        settings = WarehouseSettings(
            url=endpoint.url,
            username="writer",
            password=SecretStr(endpoint.passwords["writer"]),
            analyst_username="analyst",
            analyst_password=SecretStr(endpoint.passwords["analyst"]),
            database=database,
        )
        yield Warehouse(settings, flows)
    finally:
        assert endpoint.stop() == 0


def line_fact(local_minute: int, flow: float) -> LineCrossings:
    """A final line-crossings fact of the judged day: cars only, `flow` PCU per hour."""
    start = (JUDGED_DAY + timedelta(minutes=local_minute)).astimezone(UTC)
    crossings = round(flow / 60)
    return LineCrossings(
        camera_id=CAMERA,
        line_id="main",
        direction="eastbound",
        orientation="positive",
        vehicle_class="car",
        window_start=start,
        window_end=start + timedelta(minutes=1),
        frames=120,
        crossings=crossings,
        pcu_factor=1.0,
        pcu=crossings,
        pcu_per_hour=crossings * 60,
        pcu_version="test",
        speed_samples=0,
        emitted_at=start + timedelta(seconds=65),
    )


def judged_afternoon(factor: float) -> list[LineCrossings]:
    """13:00-15:30 of the judged day, the flow `factor` times usual from 14:00 to 15:00."""
    rng = np.random.default_rng(5)
    facts = []
    for m in range(13 * 60, 15 * 60 + 30):
        scale = factor if 14 * 60 <= m < 15 * 60 else 1.0
        facts.append(line_fact(m, float(rng.poisson(profile(m) * scale / 60) * 60)))
    return facts


def run_job(
    seeder: BaselineSeeder | None, facts: list[LineCrossings]
) -> tuple[Alerter, list[TrafficAlert]]:
    """A fresh alerts job, as the streams worker drives it: seed a camera on first sight (from
    history before that fact's minute), then judge its facts as they arrive."""
    alerter = Alerter({}, {}, {}, SETTINGS)
    alerts: list[TrafficAlert] = []
    for fact in facts:
        if seeder is not None and alerter.claim_seed(fact.camera_id):
            until = int(fact.window_start.timestamp())
            alerter.seed(fact.camera_id, seeder.baselines(fact.camera_id, until))
        alerts += alerter.add_fact(fact, NOW, clock=fact.emitted_at.timestamp())[1]
    return alerter, alerts


def test_seeded_baselines_are_those_the_stream_learns_from_the_same_minutes(
    warehouse: Warehouse,
) -> None:
    until = int(JUDGED_DAY.timestamp())
    seeded = BaselineSeeder(warehouse.settings, SETTINGS).baselines(CAMERA, until)
    learned = CameraAlerts()
    for minute, flow in warehouse.flows:
        learned.evaluate(CAMERA, MinuteReading(minute, flow_pcu_per_hour=flow), SETTINGS, NOW)
    expected = {key: b for key, b in learned.baselines.items() if b.n}
    assert seeded.keys() == expected.keys() and len(seeded) == 48  # 24 hours x 2 day types
    for key, baseline in seeded.items():
        want = expected[key]
        assert (baseline.n, baseline.days, baseline.last_day) == (want.n, want.days, want.last_day)
        assert baseline.mean == pytest.approx(want.mean, rel=1e-9)
        assert baseline.var == pytest.approx(want.var, rel=1e-6, abs=1e-6)
    assert seeded == seed_baselines(warehouse.flows, SETTINGS)


def test_history_is_the_window_of_days_before_the_first_minute(warehouse: Warehouse) -> None:
    week = AlertSettings(seed_history_days=7)
    until = int((JUDGED_DAY - timedelta(days=7)).timestamp())  # a week of history held back
    seeded = BaselineSeeder(warehouse.settings, week).baselines(CAMERA, until)
    assert seeded["wd14"].days == 5 and seeded["we14"].days == 2  # the week before `until`
    last_day = (JUDGED_DAY - timedelta(days=8)).date().toordinal()
    assert max(b.last_day for b in seeded.values()) == last_day


def test_a_surge_on_the_first_day_opens_an_abnormal_flow_alert_from_seeded_history(
    warehouse: Warehouse,
) -> None:
    seeder = BaselineSeeder(warehouse.settings, SETTINGS)
    _, surge = run_job(seeder, judged_afternoon(factor=3.0))
    assert [a.state for a in surge if a.state != "ongoing"] == ["open", "closed"]
    opened = surge[0]
    assert (opened.kind, opened.deviation) == ("abnormal_flow", "above")
    assert (
        JUDGED_DAY + timedelta(hours=14)
        <= opened.started_at
        <= JUDGED_DAY + timedelta(hours=14, minutes=10)
    )
    assert opened.baseline is not None and opened.value > 2 * opened.baseline

    assert run_job(seeder, judged_afternoon(factor=1.0))[1] == []  # a usual afternoon
    assert run_job(None, judged_afternoon(factor=3.0))[1] == []  # unseeded: still learning


def test_an_unreachable_warehouse_leaves_the_camera_to_learn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nowhere = WarehouseSettings(url=f"http://127.0.0.1:{free_port()}")
    seeder = BaselineSeeder(nowhere, SETTINGS)
    with caplog.at_level(logging.WARNING, logger="streams.alerts"):
        assert seeder.baselines(CAMERA, int(JUDGED_DAY.timestamp())) == {}
    assert "not seeded from the warehouse" in caplog.text
    alerter, alerts = run_job(seeder, judged_afternoon(factor=3.0))
    assert alerts == []  # the surge is not judged...
    assert CameraAlerts.from_json(alerter.states[CAMERA]).learned_flow()  # ...but learned
