"""Congestion and abnormal-flow alerts: hysteresis, baselines, idempotence (no Kafka)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from citycam.config import AlertSettings
from schemas import LineCrossings, TrafficAlert, ZoneOccupancy
from streams.alerts import (
    MINUTE,
    Alerter,
    Baseline,
    CameraAlerts,
    MinuteReading,
    flow_bucket,
    minute_key,
    seed_baselines,
    summarize,
)

SETTINGS = AlertSettings()
T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # Monday 08:00 in Hue (UTC+7)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)  # emission time, fixed so runs compare equal
LOCAL = ZoneInfo(SETTINGS.timezone)


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def zone_fact(
    minute: int,
    share: float,
    pcu: float,
    *,
    frames: int = 60,
    emitted_s: float = 65,
    zone: str = "junction",
    kind: str | None = "junction",
    camera: str = "cam",
) -> ZoneOccupancy:
    occupied = round(share * frames)
    objects = max(round(pcu * frames / 0.5), occupied)  # half cars, half motorbikes-ish
    return ZoneOccupancy(
        camera_id=camera,
        zone_id=zone,
        zone_kind=kind,
        window_start=at(minute),
        window_end=at(minute + 1),
        frames=frames,
        objects=objects if occupied else 0,
        mean_objects=round(objects / frames, 4) if occupied else 0.0,
        max_objects=min(objects, 20) if occupied else 0,
        occupied_frames=occupied,
        occupied_share=round(occupied / frames, 4),
        mean_pcu=pcu if occupied else 0.0,
        pcu_version="t",
        emitted_at=at(minute) + timedelta(seconds=emitted_s),
    )


def line_fact(
    minute: int,
    pcu_per_hour: float,
    *,
    frames: int = 60,
    emitted_s: float = 65,
    speed: float | None = None,
    samples: int = 0,
    line: str = "main",
    vehicle_class: str = "car",
    camera: str = "cam",
) -> LineCrossings:
    factor = 0.0 if vehicle_class == "pedestrian" else 1.0
    crossings = round(pcu_per_hour / 60) if factor else max(samples, 1)
    return LineCrossings(
        camera_id=camera,
        line_id=line,
        direction="eastbound",
        orientation="positive",
        vehicle_class=vehicle_class,
        window_start=at(minute),
        window_end=at(minute + 1),
        frames=frames,
        crossings=max(crossings, samples),
        pcu_factor=factor,
        pcu=crossings * factor,
        pcu_per_hour=pcu_per_hour * factor,
        pcu_version="t",
        speed_samples=samples,
        speed_kmh_mean=speed if samples else None,
        speed_kmh_p85=speed if samples else None,
        emitted_at=at(minute) + timedelta(seconds=emitted_s),
    )


def feed(alerter: Alerter, facts: list[Any], clock: float | None = None) -> list[TrafficAlert]:
    """Facts in order, arriving when they were emitted (or all at `clock`): a source the
    camera lacks (lines, mostly) holds its minutes back for source_timeout_s only."""
    alerts: list[TrafficAlert] = []
    for fact in facts:
        arrival = fact.emitted_at.timestamp() if clock is None else clock
        alerts += alerter.add_fact(fact, NOW, clock=arrival)[1]
    return alerts


def new_alerter(settings: AlertSettings = SETTINGS) -> Alerter:
    return Alerter({}, {}, {}, settings)


# A jam replay: (occupied share, mean PCU) per minute. Open: share >= 0.9 and PCU >= 3 for 3
# minutes; hold: share >= 0.7 and PCU >= 1.5; closed after 5 minutes not holding.
NORMAL = (0.5, 1.0)
JAM = [
    *[NORMAL] * 5,  # 0-4
    (0.92, 3.5),  # 5 trips
    (0.88, 3.5),  # 6 share just under the open threshold: the run starts again
    (0.93, 3.2),  # 7
    (0.95, 3.1),  # 8
    (0.91, 2.9),  # 9 PCU just under: again
    (0.95, 3.4),  # 10 <- the episode starts here
    (0.96, 3.6),  # 11
    (0.97, 3.3),  # 12 third in a row: opens (as of the end of minute 12)
    (0.99, 5.0),  # 13 worst minute: 5 / 3 = 1.67x the threshold, severity rises to medium
    (0.75, 2.0),  # 14 below open, above close: still a jam
    (0.65, 2.0),  # 15 fails hold (share)
    (0.72, 1.6),  # 16 holds again: the close run starts over
    (0.60, 1.2),  # 17
    (0.80, 1.4),  # 18 fails (PCU)
    (0.71, 1.5),  # 19 holds, just
    (0.60, 1.0),  # 20 <- first minute of the closing run: the episode ends here
    (0.69, 3.0),  # 21
    (0.50, 0.8),  # 22
    (0.95, 1.0),  # 23
    (0.40, 0.5),  # 24 fifth in a row: closed (as of the end of minute 24)
    *[NORMAL] * 8,  # 25-32
    (0.95, 3.5),  # 33 a lone busy minute later on is no new jam
    *[NORMAL] * 6,  # 34-39
]


def jam_facts(plan: list[tuple[float, float]] = JAM) -> list[ZoneOccupancy]:
    return [zone_fact(m, share, pcu) for m, (share, pcu) in enumerate(plan)]


def summary(alerts: list[TrafficAlert]) -> list[tuple[Any, ...]]:
    return [(a.state, a.severity, a.started_at, a.ended_at, a.as_of) for a in alerts]


def test_a_jam_opens_once_and_closes_once_with_its_start_and_end() -> None:
    alerts = feed(new_alerter(), jam_facts())
    assert summary(alerts) == [
        ("open", "low", at(10), None, at(13)),
        ("ongoing", "medium", at(10), None, at(14)),
        ("closed", "medium", at(10), at(20), at(25)),
    ]
    assert {a.alert_id for a in alerts} == {"congestion:cam:junction:20260105T011000Z"}
    closed = alerts[-1]
    assert closed.kind == "congestion" and closed.zone_id == "junction"
    assert (closed.metric, closed.value, closed.threshold) == ("mean_pcu", 5.0, 3.0)
    assert closed.occupied_share == 0.9833 and closed.speed_kmh is None


def test_flapping_around_one_threshold_never_opens() -> None:
    """Minutes alternating just above and just below the open threshold: no run of 3."""
    plan = [(0.91, 3.1), (0.89, 3.1)] * 15 + [NORMAL] * 4
    assert feed(new_alerter(), jam_facts(plan)) == []


def test_minutes_are_judged_only_once_they_settle() -> None:
    alerter = new_alerter()
    facts = jam_facts()
    assert feed(alerter, facts[:14]) == []  # minute 12 is not settled before minute 14's facts
    assert [a.state for a in feed(alerter, facts[14:15])] == ["open"]


def test_open_episode_is_republished_periodically() -> None:
    settings = AlertSettings(ongoing_every_minutes=5)
    plan = [NORMAL] * 2 + [(0.95, 3.3)] * 20 + [NORMAL] * 9
    alerts = feed(new_alerter(settings), jam_facts(plan))
    assert [(a.state, a.as_of) for a in alerts] == [
        ("open", at(5)),
        ("ongoing", at(10)),
        ("ongoing", at(15)),
        ("ongoing", at(20)),
        ("closed", at(27)),
    ]
    assert alerts[-1].ended_at == at(22)


def test_speed_where_known_must_be_low_too() -> None:
    """Heavy but moving traffic is no jam; a standstill with few crossings is judged on load."""

    def run(speed: float | None, samples: int) -> list[str]:
        facts: list[Any] = []
        for m in range(12):
            facts.append(zone_fact(m, 0.95, 4.0))
            facts.append(line_fact(m, 600, speed=speed, samples=samples))
            facts.append(line_fact(m, 0, speed=3.0, samples=5, vehicle_class="pedestrian"))
        return [a.state for a in feed(new_alerter(), facts) if a.kind == "congestion"]

    assert run(35.0, 10) == []
    assert run(6.0, 10) == ["open"]
    assert run(35.0, 2) == ["open"]  # 2 samples: speed unknown (pedestrians never count)


def test_speed_is_reported_and_raises_severity() -> None:
    facts: list[Any] = []
    for m in range(8):
        facts += [zone_fact(m, 0.95, 3.0), line_fact(m, 120, speed=4.0, samples=4)]
    (alert,) = feed(new_alerter(), facts)
    assert (alert.speed_kmh, alert.speed_threshold_kmh, alert.severity) == (4.0, 10.0, "high")


def test_parking_zones_are_not_judged() -> None:
    facts = [zone_fact(m, 1.0, 6.0, zone="kerb", kind="parking") for m in range(12)]
    assert feed(new_alerter(), facts) == []


def test_a_camera_gone_quiet_closes_its_episode_at_the_last_known_minute() -> None:
    plan = [NORMAL] * 2 + [(0.95, 3.3)] * 6
    facts = jam_facts(plan)  # data stops after minute 7 ...
    facts += [zone_fact(m, *NORMAL) for m in range(30, 36)]  # ... and comes back at 30
    alerts = feed(new_alerter(), facts)
    assert [(a.state, a.ended_at, a.as_of) for a in alerts] == [
        ("open", None, at(5)),
        ("closed", at(8), at(8)),
    ]


def test_short_gaps_break_runs_but_do_not_close() -> None:
    facts = [zone_fact(m, 0.95, 3.3) for m in (0, 1, 4, 5)]  # 2, gap, 2: no run of 3
    facts += [zone_fact(m, 0.95, 3.3) for m in range(6, 12)]
    facts += [zone_fact(m, *NORMAL) for m in (12, 13)]  # a close run starts...
    facts += [zone_fact(m, *NORMAL) for m in range(16, 30)]  # ...a 2-minute gap breaks it
    alerts = feed(new_alerter(), facts)
    assert [(a.state, a.started_at, a.ended_at, a.as_of) for a in alerts] == [
        ("open", at(4), None, at(7)),
        ("closed", at(4), at(16), at(21)),
    ]


# --- idempotence ------------------------------------------------------------------------------


def reemitted(facts: list[ZoneOccupancy]) -> list[ZoneOccupancy]:
    """Each minute's fact as the stream sends it: running totals, the last one final.

    Earlier emissions of a minute hold fewer frames and different values (here: the jam
    minutes look clear early on), so only the final one may decide.
    """
    out = []
    for fact in facts:
        for frames, share, pcu in ((20, 0.3, 0.5), (40, 0.6, 1.0)):
            early = zone_fact(
                int((fact.window_start - T0).total_seconds() // 60),
                share,
                pcu,
                frames=frames,
                emitted_s=frames / 2,
            )
            out.append(early)
        out.append(fact)
    return out


def test_reemitted_duplicated_and_reordered_facts_give_the_same_alerts() -> None:
    expected = feed(new_alerter(), jam_facts())
    rng = random.Random(7)
    facts = reemitted(jam_facts())
    facts += rng.sample(facts, 25)  # duplicates...
    # ...and any order within a minute of delay: sort by arrival = emission + random delay
    arrival = {id(f): f.emitted_at.timestamp() + rng.uniform(0, 55) for f in facts}
    shuffled = sorted(facts, key=lambda f: arrival[id(f)])
    assert shuffled != facts
    assert feed(new_alerter(), shuffled) == expected


def test_an_earlier_emission_arriving_after_the_final_one_is_ignored() -> None:
    expected = feed(new_alerter(), jam_facts())
    facts = reemitted(jam_facts())
    backwards = [f for i in range(0, len(facts), 3) for f in reversed(facts[i : i + 3])]
    assert feed(new_alerter(), backwards) == expected


def both_sources(plan: list[tuple[float, float]] = JAM) -> tuple[list[Any], list[Any]]:
    zones = jam_facts(plan)
    lines = [line_fact(m, 600, speed=8.0, samples=5) for m in range(len(plan))]
    return zones, lines


def test_a_source_read_ahead_of_the_other_changes_nothing() -> None:
    """A worker catching up reads the line and zone topics at different paces."""
    zones, lines = both_sources()
    interleaved = [f for pair in zip(zones, lines, strict=True) for f in pair]
    expected = feed(new_alerter(), interleaved, clock=0.0)
    assert [a.state for a in expected] == ["open", "ongoing", "closed"]
    assert feed(new_alerter(), lines + zones, clock=0.0) == expected
    assert feed(new_alerter(), zones + lines, clock=0.0) == expected


def test_a_source_that_stops_stops_holding_the_others_back() -> None:
    """Zones left the registry: after source_timeout_s without zone facts, lines alone
    settle the camera's minutes (the zone track then closes for want of data)."""
    zones, lines = both_sources([(0.95, 3.5)] * 12)
    alerter = new_alerter()
    alerts = feed(alerter, zones + lines[:6], clock=0.0)
    assert [a.state for a in alerts] == ["open"]
    assert alerter.states["cam"]["evaluated"] == int(at(3).timestamp())  # lines are at 5
    later = SETTINGS.source_timeout_s + 60
    alerts = feed(alerter, [line_fact(m, 600, speed=8.0, samples=5) for m in range(6, 30)], later)
    assert [(a.state, a.ended_at) for a in alerts] == [("closed", at(12))]  # zone data ended
    assert alerter.states["cam"]["evaluated"] == int(at(27).timestamp())


def test_after_a_start_a_camera_waits_for_the_source_it_has_not_heard_of_yet() -> None:
    zones, lines = both_sources([(0.95, 3.5)] * 12)
    alerter = new_alerter()
    assert feed(alerter, lines, clock=0.0) == []  # the zones topic is read later...
    assert alerter.states.get("cam", {}).get("evaluated") is None
    assert [a.state for a in feed(alerter, zones, clock=20.0)] == ["open"]  # ...and counts


def test_replaying_everything_again_publishes_nothing_new() -> None:
    alerter = new_alerter()
    assert len(feed(alerter, jam_facts())) == 3
    assert feed(alerter, reemitted(jam_facts())) == []


def test_late_facts_for_judged_minutes_change_nothing() -> None:
    alerter = new_alerter()
    feed(alerter, jam_facts()[:20])
    counted, alerts = alerter.add_fact(zone_fact(12, 0.1, 0.1, frames=600), NOW)
    assert (counted, alerts) == (False, [])
    assert [a.state for a in feed(alerter, jam_facts()[20:])] == ["closed"]


def test_state_survives_a_restart_through_json() -> None:
    """The worker's tables hold JSON: stop half-way, rebuild from the maps, same alerts."""
    facts = reemitted(jam_facts())
    expected = feed(new_alerter(), facts)
    first = new_alerter()
    alerts = feed(first, facts[:40])
    states, pending, evidence = (
        orjson.loads(orjson.dumps(m)) for m in (first.states, first.pending, first.evidence)
    )
    alerts += feed(Alerter(states, pending, evidence, SETTINGS), facts[40:])
    assert alerts == expected


# --- evidence ---------------------------------------------------------------------------------


def test_evidence_is_the_most_crowded_frame_of_the_worst_minute() -> None:
    alerter = new_alerter()
    ts = at(13).timestamp()
    for minute, vehicles, offset, frame in [
        (11, 9, 1, "f-11a"),
        (13, 4, 1, "f-13a"),
        (13, 7, 30, "f-13b"),
        (13, 7, 10, "f-13c"),  # as crowded as f-13b and earlier: wins whatever the order
        (13, 2, 40, "f-13d"),
    ]:
        record = [
            vehicles,
            ts + offset if minute == 13 else at(11).timestamp(),
            frame,
            f"u/{frame}",
        ]
        alerter.add_evidence("cam", at(minute).timestamp().__int__(), record)
    alerts = feed(alerter, jam_facts())
    evidence = [(a.state, a.evidence.frame_id if a.evidence else None) for a in alerts]
    assert evidence == [("open", "f-11a"), ("ongoing", "f-13c"), ("closed", "f-13c")]
    assert alerts[-1].evidence is not None
    assert alerts[-1].evidence.captured_at == datetime.fromtimestamp(ts + 10, UTC)
    assert not any(k.startswith("cam|") for k in alerter.evidence if k <= minute_key("cam", 0))


def test_evidence_without_facts_expires() -> None:
    alerter = new_alerter()
    for m in range(200):
        alerter.add_evidence("no-lines", int(at(m).timestamp()), [1, at(m).timestamp(), "f", "u"])
    assert len(alerter.evidence) == 61


def test_evidence_for_judged_minutes_is_refused() -> None:
    alerter = new_alerter()
    feed(alerter, jam_facts()[:10])
    assert not alerter.add_evidence("cam", int(at(3).timestamp()), [5, 0.0, "f", "u"])
    assert alerter.add_evidence("cam", int(at(9).timestamp()), [5, 0.0, "f", "u"])


# --- abnormal flow ------------------------------------------------------------------------------

DAY0 = datetime(2026, 1, 5, tzinfo=LOCAL)  # a Monday, local midnight


def profile(local_minute: int) -> float:
    """A weekday's PCU per hour by minute of the day: quiet nights, two rush hours."""
    h = local_minute / 60
    return (
        60
        + 1100 * np.exp(-(((h - 8) / 1.5) ** 2))
        + 500 * np.exp(-(((h - 13) / 3) ** 2))
        + (1200 * np.exp(-(((h - 17.5) / 1.5) ** 2)))
    )


@dataclass
class Camera:
    state: CameraAlerts
    rng: np.random.Generator
    settings: AlertSettings = field(default_factory=AlertSettings)

    def day(self, index: int, factor: Any = None, flow: Any = None) -> list[TrafficAlert]:
        """One day, minute by minute; `factor(minute_of_day)` scales, `flow` replaces."""
        alerts = []
        start = DAY0 + timedelta(days=index)
        for m in range(24 * 60):
            rate = flow(m) if flow else profile(m) * (factor(m) if factor else 1.0)
            count = self.rng.poisson(rate / 60)  # vehicles (1 PCU) in the minute
            minute = int((start + timedelta(minutes=m)).timestamp())
            reading = MinuteReading(minute, flow_pcu_per_hour=float(count * 60))
            alerts += self.state.evaluate("cam", reading, self.settings, NOW)
        return alerts


def learned_camera(days: int = 7) -> Camera:
    camera = Camera(CameraAlerts(), np.random.default_rng(42))
    for d in range(days):
        assert camera.day(d) == [], "no alerts while learning or on normal days"
    return camera


def test_no_flow_alert_while_learning_even_for_a_surge() -> None:
    camera = Camera(CameraAlerts(), np.random.default_rng(1))
    surge = camera.day(0) + camera.day(1, factor=lambda m: 3.0 if 8 * 60 <= m < 9 * 60 else 1.0)
    assert surge == []
    assert camera.state.baselines["wd08"].days == 2


def test_normal_days_raise_no_flow_alert() -> None:
    camera = learned_camera()
    for d in range(7, 14):  # weekdays and the weekend after a week of learning
        if (DAY0 + timedelta(days=d)).weekday() < 5:
            assert camera.day(d) == []


def test_three_times_the_usual_flow_for_an_hour_raises_one_abnormal_flow_episode() -> None:
    camera = learned_camera()
    alerts = camera.day(7, factor=lambda m: 3.0 if 14 * 60 <= m < 15 * 60 else 1.0)
    assert [a.state for a in alerts if a.state != "ongoing"] == ["open", "closed"]
    opened, closed = alerts[0], alerts[-1]
    assert {a.alert_id for a in alerts} == {opened.alert_id}
    local_start = opened.started_at.astimezone(LOCAL)
    local_end = closed.ended_at.astimezone(LOCAL) if closed.ended_at else None
    assert (
        (DAY0 + timedelta(days=7, hours=14))
        <= local_start
        < (DAY0 + timedelta(days=7, hours=14, minutes=10))
    )
    assert local_end is not None
    assert (
        (DAY0 + timedelta(days=7, hours=15))
        <= local_end
        <= (DAY0 + timedelta(days=7, hours=15, minutes=15))
    )
    assert (closed.kind, closed.zone_id, closed.deviation, closed.severity) == (
        "abnormal_flow",
        None,
        "above",
        "high",
    )
    assert closed.baseline is not None and closed.value > 2.5 * closed.baseline
    assert closed.z_score is not None and closed.z_score > 8


def test_a_drop_in_flow_is_abnormal_too() -> None:
    camera = learned_camera()
    alerts = camera.day(7, factor=lambda m: 0.1 if 7 * 60 <= m < 9 * 60 else 1.0)
    assert [(a.state, a.deviation) for a in alerts if a.state != "ongoing"] == [
        ("open", "below"),
        ("closed", "below"),
    ]


def test_hours_of_the_day_have_separate_baselines() -> None:
    """The morning rush's flow is normal at 08:00 and abnormal at 03:00."""
    camera = learned_camera()
    rush = profile(8 * 60)
    at_eight = camera.day(7, flow=lambda m: rush if 7 * 60 + 45 <= m < 8 * 60 + 15 else profile(m))
    at_three = camera.day(8, flow=lambda m: rush if 3 * 60 <= m < 4 * 60 else profile(m))
    assert at_eight == []
    assert [a.state for a in at_three if a.state != "ongoing"] == ["open", "closed"]
    assert at_three[0].started_at.astimezone(LOCAL).hour == 3


def test_weekends_and_holidays_learn_apart_from_weekdays() -> None:
    settings = AlertSettings(holidays=[date(2026, 1, 7)])
    monday = int(datetime(2026, 1, 5, 8, 30, tzinfo=LOCAL).timestamp())
    assert flow_bucket(monday, settings) == ("wd08", date(2026, 1, 5).toordinal())
    assert flow_bucket(monday + 5 * 86400, settings)[0] == "we08"  # Saturday
    assert flow_bucket(monday + 2 * 86400, settings)[0] == "we08"  # the holiday
    assert flow_bucket(monday - 7 * 3600, settings)[0] == "wd01"  # 08:30 local is 01:30 UTC


def test_baseline_is_a_running_mean_and_variance_at_first() -> None:
    baseline = Baseline()
    values = [100.0, 140.0, 90.0, 130.0]
    for i, value in enumerate(values):
        baseline.update(value, day=i, s=SETTINGS)
    assert baseline.mean == pytest.approx(np.mean(values))
    assert baseline.var == pytest.approx(np.var(values))
    assert baseline.days == 4 and baseline.ready(SETTINGS)


def test_learned_spread_never_drops_below_counting_noise() -> None:
    """A camera that always counted exactly 2 vehicles a minute has learned no variance at
    all; 3 a minute is still well inside Poisson noise, not an abnormal flow."""
    settings = AlertSettings(flow_min_history_days=2)
    state = CameraAlerts()
    start = int(DAY0.timestamp()) + 14 * 3600

    def hour(day: int, flow: float) -> list[TrafficAlert]:
        alerts = []
        for m in range(60):
            reading = MinuteReading(start + day * 86400 + m * MINUTE, flow_pcu_per_hour=flow)
            alerts += state.evaluate("cam", reading, settings, NOW)
        return alerts

    assert hour(0, 120.0) + hour(1, 120.0) == []
    assert state.baselines["wd14"].var == pytest.approx(0, abs=1e-6)
    assert state.baselines["wd14"].std(settings) == pytest.approx((60 * 120 / 10) ** 0.5)
    assert hour(2, 180.0) == []
    assert hour(3, 480.0) != []  # 8 a minute is not noise


def test_learned_baseline_resists_an_incident() -> None:
    camera = learned_camera()
    before = camera.state.baselines["wd14"].mean
    camera.day(7, factor=lambda m: 3.0 if 14 * 60 <= m < 15 * 60 else 1.0)
    assert camera.state.baselines["wd14"].mean < before * 1.25


# --- the minute reading -------------------------------------------------------------------------


def test_summary_sums_flow_over_lines_and_weights_speed_by_samples() -> None:
    alerter = new_alerter()
    facts: list[LineCrossings | ZoneOccupancy] = [
        line_fact(0, 600, speed=20.0, samples=2, line="a"),
        line_fact(0, 300, speed=50.0, samples=1, line="b"),
        line_fact(0, 0, speed=4.0, samples=3, vehicle_class="pedestrian"),
        line_fact(0, 900, frames=2, line="c"),  # too few frames: not a reading
        zone_fact(0, 0.5, 1.0),
    ]
    for fact in facts:
        alerter.add_fact(fact, NOW)
    reading = summarize(
        int(at(0).timestamp()),
        alerter.pending[minute_key("cam", int(at(0).timestamp()))],
        None,
        SETTINGS,
    )
    assert reading.flow_pcu_per_hour == 900
    assert reading.speed_kmh == 30.0
    assert set(reading.zones) == {"junction"}


def test_settings_refuse_close_thresholds_tighter_than_open_ones() -> None:
    with pytest.raises(ValueError, match="congestion_close_share"):
        AlertSettings(congestion_close_share=0.95)
    with pytest.raises(ValueError, match="time zone"):
        AlertSettings(timezone="Mars/Olympus")


# --- warehouse rows ---------------------------------------------------------------------------


def test_alert_rows_pass_the_alerts_suite_and_broken_ones_are_held_back() -> None:
    from warehouse.quality import QualityGate
    from warehouse.sink import COLUMNS, alert_rows

    camera = learned_camera()
    alerts = feed(new_alerter(), jam_facts())
    alerts += camera.day(7, factor=lambda m: 3.0 if 14 * 60 <= m < 15 * 60 else 1.0)
    assert {a.kind for a in alerts} == {"congestion", "abnormal_flow"}
    rows = [alert_rows(a)["alerts"][0] for a in alerts]
    gate = QualityGate()
    assert gate.split("alerts", rows, COLUMNS["alerts"]) == (rows, [])
    column = {name: i for i, name in enumerate(COLUMNS["alerts"])}
    broken = [list(r) for r in rows[:3]]
    broken[0][column["state"]] = "closed"  # ...without ended_at
    broken[1][column["zone_id"]] = None  # congestion without its zone
    broken[2][column["value"]] = -1.0
    valid, failed = gate.split("alerts", broken, COLUMNS["alerts"])
    assert valid == []
    assert [q.failed_expectations for q in failed] == [
        ("expect_column_values_to_be_in_set(closed_xor_ended)",),
        ("expect_column_values_to_be_in_set(congestion_without_zone)",),
        ("expect_column_values_to_be_between(value)",),
    ]


# --- silent cameras: camera-health minutes, and the wall-clock fallback ------------------------

GONE_QUIET = [NORMAL] * 2 + [(0.95, 3.3)] * 6  # opens as of minute 5; data ends after minute 7
Report = tuple[int, int]  # (health minute, frames published in it)


def reports(live: range, dead: range) -> list[Report]:
    return [(m, 60) for m in live] + [(m, 0) for m in dead]


def replay(
    alerter: Alerter, facts: list[Any], health: list[Report], late: float = 0.0
) -> list[tuple[str, TrafficAlert]]:
    """Facts and health reports in order of arrival: a fact when emitted (plus `late`
    seconds: inference lagging), a minute's report one second after the minute. Each alert
    comes with the message that raised it."""
    events: list[tuple[float, Any]] = [(f.emitted_at.timestamp() + late, f) for f in facts]
    events += [(at(m + 1).timestamp() + 1, (m, n)) for m, n in health]
    out: list[tuple[str, TrafficAlert]] = []
    for arrival, item in sorted(events, key=lambda e: e[0]):
        if isinstance(item, tuple):
            minute, published = item
            raised = alerter.add_health("cam", int(at(minute).timestamp()), published, NOW)
            out += [(f"health {minute}", a) for a in raised]
        else:
            raised = alerter.add_fact(item, NOW, clock=arrival)[1]
            out += [(f"fact {item.window_start:%H:%M}", a) for a in raised]
    return out


def gap_rule_close() -> TrafficAlert:
    """How the gap rule closes the GONE_QUIET jam when data comes back at minute 30."""
    facts = jam_facts(GONE_QUIET) + [zone_fact(m, *NORMAL) for m in range(30, 36)]
    closed = [a for a in feed(new_alerter(), facts) if a.state == "closed"]
    assert len(closed) == 1
    return closed[0]


def test_dead_minutes_close_a_silent_cameras_episode_once_as_the_gap_rule_would() -> None:
    """Camera health goes on while the camera is dead (nothing published): minute 20 is the
    first whose settled horizon (18) lies more than 10 minutes past the last reading (7)."""
    alerter = new_alerter()
    raised = replay(alerter, jam_facts(GONE_QUIET), reports(range(8), range(8, 60)))
    assert [(source, a.state, a.as_of) for source, a in raised] == [
        ("fact 01:06", "open", at(5)),
        ("health 20", "closed", at(8)),
    ]
    assert raised[-1][1] == gap_rule_close()
    assert alerter.pending == {}  # the last minutes (6, 7) were judged too
    assert replay(alerter, jam_facts(GONE_QUIET), reports(range(8), range(8, 60))) == []


def test_health_ahead_of_lagging_facts_settles_nothing_until_they_catch_up() -> None:
    """Reports skip inference: on a backlog they arrive long before the facts. A dead minute
    must not judge minutes whose facts are still on their way."""
    facts = jam_facts(GONE_QUIET)
    alerter = new_alerter()
    early = replay(alerter, facts[:4], reports(range(8), range(8, 40)))
    assert early == []
    assert alerter.states["cam"]["evaluated"] is None  # minutes 0-3 still wait for more facts
    assert len(alerter.pending) == 4
    late = replay(alerter, facts[4:], [], late=40 * 60.0)  # minutes 4-7, 40 minutes late
    late += replay(alerter, [], reports(range(0), range(40, 45)))
    in_order = replay(new_alerter(), facts, reports(range(8), range(8, 60)))
    assert [a for _, a in late] == [a for _, a in in_order]
    assert [(source, a.state) for source, a in late] == [
        ("fact 01:06", "open"),
        ("health 40", "closed"),
    ]


def test_a_camera_back_within_the_gap_keeps_its_episode() -> None:
    """Dead for 5 minutes, then jammed again: one episode, closed by its data."""
    plan = GONE_QUIET + [(0.95, 3.3)] * 10 + [NORMAL] * 12  # minutes 8-12 missing below
    facts = [f for f in jam_facts(plan) if not 8 <= (f.window_start - T0).seconds // 60 <= 12]
    health = reports(range(8), range(8, 13)) + reports(range(13, 30), range(0))
    raised = replay(new_alerter(), facts, health)
    assert [(a.state, a.started_at, a.ended_at) for _, a in raised] == [
        ("open", at(2), None),
        ("closed", at(2), at(18)),
    ]


def test_only_a_dead_minute_after_the_last_live_one_counts() -> None:
    """An ingest restarted within a minute reports it twice: the part without frames must
    not make a live camera look silent. Nor do reports count while the facts lag behind them
    or run ahead of them."""
    state = CameraAlerts(latest={"zones": 600, "lines": 600}, live=600)
    assert not state.silent_at(600)
    assert state.silent_at(660)
    assert not CameraAlerts(latest={"zones": 540, "lines": 600}, live=600).silent_at(660)
    assert not CameraAlerts(latest={"zones": 600}).silent_at(660)  # never reported live
    ahead = CameraAlerts(latest={"zones": 780, "lines": 780}, live=600)  # a fast replay
    assert not ahead.silent_at(660)


def test_the_wall_clock_closes_a_camera_that_sends_nothing_at_all() -> None:
    alerter = new_alerter()
    facts = jam_facts(GONE_QUIET)
    feed(alerter, facts)
    last = facts[-1].emitted_at.timestamp()
    after = last + SETTINGS.silent_close_s
    assert alerter.silent_cameras(after - 1) == []
    assert alerter.silent_cameras(after) == ["cam"]
    assert alerter.close_silent("cam", NOW, after) == [gap_rule_close()]
    assert alerter.pending == {}
    assert alerter.silent_cameras(after + 3600) == []
    assert alerter.close_silent("cam", NOW, after + 3600) == []


def test_a_fact_after_the_silence_was_noticed_cancels_the_fallback() -> None:
    alerter = new_alerter()
    feed(alerter, jam_facts(GONE_QUIET))
    later = at(30).timestamp()
    assert alerter.silent_cameras(later) == ["cam"]
    alerter.add_fact(zone_fact(9, 0.95, 3.3), NOW, clock=later + 1)
    assert alerter.close_silent("cam", NOW, later + 2) == []


def test_after_a_restart_silence_counts_from_the_first_look() -> None:
    first = new_alerter()
    feed(first, jam_facts(GONE_QUIET))
    states, pending, evidence = (
        orjson.loads(orjson.dumps(m)) for m in (first.states, first.pending, first.evidence)
    )
    del states["cam"]["live"]  # a state written before health was read
    restarted = Alerter(states, pending, evidence, SETTINGS)
    start = at(600).timestamp()  # long after the facts stopped, but this process just began
    assert restarted.silent_cameras(start) == []
    assert restarted.close_silent("cam", NOW, start + 60) == []
    assert restarted.silent_cameras(start + SETTINGS.silent_close_s) == ["cam"]
    assert restarted.close_silent("cam", NOW, start + SETTINGS.silent_close_s) == [gap_rule_close()]


def test_health_closes_first_and_the_fallback_then_has_nothing_to_close() -> None:
    alerter = new_alerter()
    raised = replay(alerter, jam_facts(GONE_QUIET), reports(range(8), range(8, 25)))
    assert [a.state for _, a in raised] == ["open", "closed"]
    assert alerter.silent_cameras(at(600).timestamp()) == []
    assert alerter.close_silent("cam", NOW, at(600).timestamp()) == []


def test_silence_closes_an_abnormal_flow_episode_too() -> None:
    camera = learned_camera()
    start = int((DAY0 + timedelta(days=7, hours=14)).timestamp())
    alerts = []
    for m in range(30):  # three times the usual flow, then the camera dies
        reading = MinuteReading(start + m * MINUTE, flow_pcu_per_hour=3 * profile(14 * 60 + m))
        alerts += camera.state.evaluate("cam", reading, camera.settings, NOW)
    assert [a.state for a in alerts if a.state != "ongoing"] == ["open"]
    last = start + 29 * MINUTE
    assert camera.state.close_stale("cam", last + 10 * MINUTE, SETTINGS, NOW) == []
    (closed,) = camera.state.close_stale("cam", last + 11 * MINUTE, SETTINGS, NOW)
    assert (closed.kind, closed.alert_id) == ("abnormal_flow", alerts[0].alert_id)
    assert closed.ended_at == closed.as_of == datetime.fromtimestamp(last + MINUTE, UTC)


def test_settings_refuse_a_fallback_within_the_gap() -> None:
    with pytest.raises(ValueError, match="silent_close_s"):
        AlertSettings(max_gap_minutes=20, silent_close_s=1200)


# --- seeding baselines from history ---------------------------------------------------------


def flow_history(days: int, seed: int = 3) -> list[tuple[int, float]]:
    """(minute, PCU per hour) of a camera's days from DAY0, with an hour down every day."""
    rng = np.random.default_rng(seed)
    history = []
    for d in range(days):
        for m in range(24 * 60):
            if 3 * 60 <= m < 4 * 60:
                continue  # no reading: the camera was down
            minute = int((DAY0 + timedelta(days=d, minutes=m)).timestamp())
            history.append((minute, float(rng.poisson(profile(m) / 60) * 60)))
    return history


def test_seeding_gives_the_baselines_the_stream_learns_from_the_same_minutes() -> None:
    history = flow_history(days=5)
    learned = CameraAlerts()
    for minute, flow in history:
        learned.evaluate("cam", MinuteReading(minute, flow_pcu_per_hour=flow), SETTINGS, NOW)
    seeded = seed_baselines(history, SETTINGS)
    assert seeded == {key: b for key, b in learned.baselines.items() if b.n}
    assert "wd03" not in seeded and seeded["wd08"].days == 5 and seeded["wd08"].ready(SETTINGS)


def test_a_camera_is_seeded_once_and_never_over_what_it_learned() -> None:
    seeded = seed_baselines(flow_history(days=3), SETTINGS)
    alerter = new_alerter()
    assert alerter.claim_seed("cam") and not alerter.claim_seed("cam")
    assert alerter.seed("cam", seeded)
    assert CameraAlerts.from_json(alerter.states["cam"]).baselines == seeded
    assert not alerter.seed("cam", seeded)  # it has flow now
    assert not Alerter(alerter.states, {}, {}, SETTINGS).claim_seed("cam")  # nor after a restart
    assert not new_alerter().seed("cam", {})  # no history: nothing to seed
