"""Congestion and abnormal-flow alerts from the per-minute facts: pure logic, no Kafka.

Inputs are the facts of one camera (ZoneOccupancy, LineCrossings) and, for evidence, its most
crowded frame per minute. Facts are running totals re-emitted as a window fills, possibly
repeated or late, so nothing is judged on arrival:

1. Buffering. Each minute's facts are kept in a record, per zone and per line x way x class,
   keeping the emission with the most frames (then the latest): a repeat or an out-of-order
   older emission changes nothing (`add_zone_fact`, `add_line_fact`).
2. Settling. A camera's minute is judged once facts of a minute `settle_minutes` later have
   arrived from each of its sources, zones and lines (its final emission is in by then: the
   stream flushes every few seconds), in minute order, exactly once (`CameraAlerts.due`,
   `CameraAlerts.evaluate`). Facts for a minute already judged are ignored. So re-emission,
   duplicates and reordering within the settle delay cannot change an outcome, and the
   judgement is deterministic. Waiting for every source matters when a worker catches up
   on a backlog or starts: it reads the two topics at different paces, minutes apart in
   event time. A source not heard from for `source_timeout_s` (wall clock, in this process:
   the camera has no zones, or its zones left the registry) stops holding the other back;
   so after a (re)start a camera with one source is judged `source_timeout_s` late once.
3. Hysteresis (`Track`). An episode opens after `open_minutes` consecutive minutes meeting
   the open condition and closes after `close_minutes` consecutive minutes failing the looser
   hold condition; it starts at the first minute of its opening run and ends where its
   closing run began. A minute without a reading (camera down, too few frames) breaks a run;
   more than `max_gap_minutes` of them close an open episode at its last known minute.
4. Silence. The gap rule acts at the next judged minute, and a dead camera sends no facts: its
   last minutes would wait unsettled and its open episode stay open for ever. So event time
   comes from ingest too: it reports every wall-clock minute of every camera it runs
   (CameraHealth, dead cameras included). A minute in which the camera published no frame is
   one no fact can come for, and it moves the camera's clock as a fact of that minute would:
   the camera's minutes settle `settle_minutes` behind it and the gap rule closes its episodes
   (`Alerter.add_health`). Only once the facts have caught up with the camera's last live
   health minute (`CameraAlerts.silent_at`): reports skip inference, so on a backlog they run
   minutes ahead of the facts, and a dead minute must not settle minutes whose facts are still
   to come; and only while the facts' minutes (capture time) keep to the reports' (wall clock),
   as a live camera's do. Live minutes only note where the facts will end; the facts themselves
   settle a live camera. A repeated report changes nothing (a dead minute not after the newest
   live one is ignored; an idle track has nothing to close). The fallback is the wall clock
   (`Alerter.silent_cameras`, `Alerter.close_silent`): a camera with no fact for
   `silent_close_s` has its waiting minutes judged and its episodes closed the same way, for
   when no reports show it silent (ingest down too, a file replayed off the wall clock, or
   facts that never caught up: the last frames' capture times fell in an earlier minute than
   their report's). Either way an episode closes once, at its last known minute, with the
   message the gap rule sends when the camera comes back: a close depends on the episode's last
   reading only, never on when or how the silence was noticed. `silent_close_s` exceeds the
   gap, so a live camera silent that long (wall clock) has been silent longer than the gap in
   event time too.

Congestion (per zone): mean PCU in the zone (pedestrians weigh 0) and occupied share, and where
the camera is calibrated the mean ground speed of its line crossings. Open: share >= 0.9,
mean PCU >= 3, speed <= 10 km/h (if known) for 3 minutes; hold: 0.7, 1.5, 20 km/h; closed
after 5 minutes not holding (defaults in citycam.config.AlertSettings).

Abnormal flow (per camera): PCU per hour summed over its lines and ways, averaged over the last
`flow_window_minutes` (a single minute's count is mostly Poisson noise at city flows), against
the camera's own baseline for the same local hour of day and day type (weekday / weekend or
holiday): an exponentially weighted mean and variance per bucket (`Baseline`). z uses the
larger of the learned variance and the Poisson counting noise of the measure, so a very regular
or quiet camera does not alert on a handful of vehicles. Open when |z| >= 4 and the flow is at
least 50% off the baseline for 5 minutes; hold while |z| >= 2 and 25% off; nothing while a
bucket has seen fewer than `flow_min_history_days` days. Every judged minute then updates its
bucket, winsorised at the open z once the bucket is learned, so an incident barely moves the
baseline while a lasting change of traffic is still learned.

Seeding. A new or reset job would judge no flow for `flow_min_history_days`. So the first time
the job sees a camera that has learned no flow, it reads up to `seed_history_days` of the
camera's per-minute flow from the warehouse (line_crossings_1m FINAL: each minute's final
emission, as `summarize` keeps it), ending before the first minute it sees, and replays those
minutes through the stream's own flow judgement (`seed_baselines`): the baselines are the ones
the stream would have learned from the same facts, and minutes the job will judge itself (a
reset job re-reads the facts topic from its start) are not counted twice. A warehouse that
cannot be read costs a warning; the camera then learns from the stream as before. The read is
this module's only I/O (`BaselineSeeder`), here so it is tested without the Faust app.

All state is plain JSON-able data for Faust tables (changelogged).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, MutableMapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from citycam.clickhouse import connect
from citycam.config import AlertSettings, StreamsSettings, WarehouseSettings
from schemas import Evidence, FrameDetections, LineCrossings, TrafficAlert, ZoneOccupancy
from schemas.alerts import Severity, alert_id
from streams.density import count_vehicles

log = logging.getLogger(__name__)

MINUTE = 60
EVIDENCE_TOPIC = "citycam-streams-alert-evidence"  # internal to the streams job
CLOCK_TOPIC = "citycam-streams-alert-clock"  # internal: health minutes and silence checks
MinuteRecord = dict[str, Any]
SEVERITIES = ("low", "medium", "high")


def minute_of(ts: float) -> int:
    return int(math.floor(ts / MINUTE) * MINUTE)


def minute_key(camera_id: str, minute: int) -> str:
    return f"{camera_id}|{minute}"


def parse_minute_key(key: str) -> tuple[str, int]:
    camera_id, minute = key.rsplit("|", 1)
    return camera_id, int(minute)


# ---------------------------------------------------------------------------------------------
# 1. Buffering one minute's facts: the emission with most frames wins, whatever the order.


def _supersedes(old: list[Any] | None, frames: int, emitted: float) -> bool:
    return old is None or (frames, emitted) > (old[0], old[1])


def add_zone_fact(record: MinuteRecord | None, fact: ZoneOccupancy) -> MinuteRecord | None:
    """The record with the fact in, or None if it holds this emission or a later one.

    Congestion reads the zone's mean PCU, not its mean objects: pedestrians count as objects.
    """
    record = record or {"zones": {}, "lines": {}}
    emitted = fact.emitted_at.timestamp()
    if not _supersedes(record["zones"].get(fact.zone_id), fact.frames, emitted):
        return None
    reading = [fact.frames, emitted, fact.occupied_share, fact.mean_pcu, fact.zone_kind]
    return {**record, "zones": {**record["zones"], fact.zone_id: reading}}


def add_line_fact(record: MinuteRecord | None, fact: LineCrossings) -> MinuteRecord | None:
    """The record with the fact in, or None if it holds this emission or a later one.

    Speeds are kept for vehicles only (PCU factor > 0): walking pace is not a traffic speed.
    """
    record = record or {"zones": {}, "lines": {}}
    key = f"{fact.line_id}|{fact.orientation}|{fact.vehicle_class}"
    emitted = fact.emitted_at.timestamp()
    if not _supersedes(record["lines"].get(key), fact.frames, emitted):
        return None
    vehicle = fact.pcu_factor > 0 and fact.speed_kmh_mean is not None
    samples, speed = (fact.speed_samples, fact.speed_kmh_mean) if vehicle else (0, None)
    reading = [fact.frames, emitted, fact.pcu_per_hour, samples, speed]
    return {**record, "lines": {**record["lines"], key: reading}}


# Evidence: per camera and minute, the frame with the most vehicles (then the earliest).
EvidenceRecord = list[Any]  # [vehicles, captured_ts, frame_id, frame_uri]


def evidence_candidate(
    frame: FrameDetections, streams: StreamsSettings
) -> tuple[int, EvidenceRecord]:
    """(minute, evidence record) of a detections frame."""
    ts = frame.captured_at.timestamp()
    vehicles = sum(count_vehicles(frame, streams).values())
    return minute_of(ts), [vehicles, ts, frame.frame_id, frame.frame_uri]


def better_evidence(old: EvidenceRecord | None, new: EvidenceRecord) -> bool:
    return old is None or (new[0], -new[1]) > (old[0], -old[1])


# ---------------------------------------------------------------------------------------------
# 2. A settled minute's readings.


@dataclass(frozen=True)
class ZoneReading:
    occupied_share: float
    mean_pcu: float


@dataclass(frozen=True)
class MinuteReading:
    """What one camera's facts say about one settled minute; None where they say nothing."""

    start: int
    zones: dict[str, ZoneReading] = field(default_factory=dict)
    flow_pcu_per_hour: float | None = None
    speed_kmh: float | None = None
    evidence: Evidence | None = None


def summarize(
    start: int,
    record: MinuteRecord | None,
    evidence: EvidenceRecord | None,
    settings: AlertSettings,
) -> MinuteReading:
    record = record or {"zones": {}, "lines": {}}
    zones = {
        zone_id: ZoneReading(occupied_share=share, mean_pcu=pcu)
        for zone_id, (frames, _, share, pcu, kind) in sorted(record["zones"].items())
        if frames >= settings.min_frames and kind not in settings.congestion_skip_zone_kinds
    }
    lines = [r for r in record["lines"].values() if r[0] >= settings.min_frames]
    flow = round(sum(r[2] for r in lines), 4) if lines else None
    samples = sum(r[3] for r in lines)
    speed = None
    if samples >= settings.speed_min_samples:
        speed = round(sum(r[3] * r[4] for r in lines if r[3]) / samples, 3)
    frame = None
    if evidence is not None:
        _, ts, frame_id, frame_uri = evidence
        captured = datetime.fromtimestamp(ts, UTC)
        frame = Evidence(frame_id=frame_id, frame_uri=frame_uri, captured_at=captured)
    return MinuteReading(start, zones, flow, speed, frame)


# ---------------------------------------------------------------------------------------------
# 3. Hysteresis: one episode at a time per zone (congestion) or camera (flow).


@dataclass(frozen=True)
class Judgement:
    """One minute as a detector sees it."""

    trips: bool  # meets the open condition
    holds: bool  # meets the (looser) hold condition; trips implies holds
    score: float  # how far past the open threshold: severity, and which minute is worst
    measures: dict[str, Any]  # TrafficAlert fields describing this minute


@dataclass(frozen=True)
class Transition:
    state: Literal["open", "ongoing", "closed"]
    started: int
    ended: int | None
    as_of: int
    score: float
    measures: dict[str, Any]
    evidence: list[Any] | None


@dataclass
class Track:
    """Hysteresis state of one detector. `run` counts consecutive minutes toward a change:
    tripping minutes while idle, failing minutes while open; `peak` is the worst minute of the
    opening run or the episode, `evidence` the frame of its worst minute that had one."""

    phase: Literal["idle", "open"] = "idle"
    run: int = 0
    run_start: int | None = None
    last: int | None = None
    started: int | None = None
    peak_score: float = 0.0
    peak: dict[str, Any] | None = None
    evidence: list[Any] | None = None  # [frame_id, frame_uri, captured_ts]
    evidence_score: float = 0.0
    published_severity: str | None = None
    published_as_of: int | None = None

    def _reset_run(self) -> None:
        self.run, self.run_start = 0, None
        if self.phase == "idle":
            self.peak_score, self.peak, self.evidence, self.evidence_score = 0.0, None, None, 0.0

    def _remember(self, judged: Judgement, evidence: Evidence | None) -> None:
        if self.peak is None or judged.score > self.peak_score:
            self.peak_score, self.peak = judged.score, judged.measures
        if evidence is not None and (self.evidence is None or judged.score > self.evidence_score):
            self.evidence = [
                evidence.frame_id,
                evidence.frame_uri,
                evidence.captured_at.timestamp(),
            ]
            self.evidence_score = judged.score

    def _transition(self, state: Literal["open", "ongoing", "closed"], as_of: int) -> Transition:
        assert self.started is not None and self.peak is not None
        ended = None
        if state == "closed":
            ended = self.run_start if self.run_start is not None else as_of
        return Transition(
            state, self.started, ended, as_of, self.peak_score, self.peak, self.evidence
        )

    def stale(self, minute: int, max_gap_minutes: int) -> Transition | None:
        """Close an open episode whose last reading is more than max_gap minutes before
        `minute` (a minute without a reading of this track). Deterministic: the close says
        the same whenever it is noticed."""
        if self.last is None or (minute - self.last) // MINUTE <= max_gap_minutes:
            return None
        closed = None
        if self.phase == "open":
            closed = self._transition("closed", self.last + MINUTE)
            self.phase, self.started = "idle", None
        self._reset_run()
        self.published_severity = self.published_as_of = None
        return closed

    def step(
        self,
        minute: int,
        judged: Judgement,
        evidence: Evidence | None,
        settings: AlertSettings,
        open_after: int,
        close_after: int,
    ) -> list[Transition]:
        """Judge the next settled minute that has a reading (minutes strictly increase)."""
        out: list[Transition] = []
        if self.last is not None and minute - self.last > MINUTE:
            closed = self.stale(minute - MINUTE, settings.max_gap_minutes)
            if closed is not None:
                out.append(closed)
            self._reset_run()  # missing minutes break any run
        self.last = minute
        as_of = minute + MINUTE
        if self.phase == "idle":
            if not judged.trips:
                self._reset_run()
                return out
            if self.run == 0:
                self.run_start = minute
            self.run += 1
            self._remember(judged, evidence)
            if self.run >= open_after:
                self.phase, self.started = "open", self.run_start
                self.run, self.run_start = 0, None
                out.append(self._published(self._transition("open", as_of), settings))
            return out
        if judged.holds:
            self.run, self.run_start = 0, None
            self._remember(judged, evidence)
            due = self._ongoing_due(as_of, settings)
            if due:
                out.append(self._published(self._transition("ongoing", as_of), settings))
            return out
        if self.run == 0:
            self.run_start = minute
        self.run += 1
        if self.run >= close_after:
            out.append(self._transition("closed", as_of))
            self.phase, self.started = "idle", None
            self.published_severity = self.published_as_of = None
            self._reset_run()
        return out

    def _ongoing_due(self, as_of: int, settings: AlertSettings) -> bool:
        rises = SEVERITIES.index(severity(self.peak_score, settings)) > SEVERITIES.index(
            self.published_severity or "low"
        )
        every = settings.ongoing_every_minutes * MINUTE
        periodic = every > 0 and as_of - (self.published_as_of or as_of) >= every
        return rises or periodic

    def _published(self, transition: Transition, settings: AlertSettings) -> Transition:
        self.published_severity = severity(transition.score, settings)
        self.published_as_of = transition.as_of
        return transition


def severity(score: float, settings: AlertSettings) -> Severity:
    if score >= settings.severity_high:
        return "high"
    if score >= settings.severity_medium:
        return "medium"
    return "low"


# ---------------------------------------------------------------------------------------------
# Congestion, per zone.


def judge_congestion(zone: ZoneReading, speed: float | None, s: AlertSettings) -> Judgement:
    """Speed, where known, must be low too; where unknown (no calibration, or too few
    crossings: a standstill lets few vehicles cross) the zone's load decides alone."""
    trips = (
        zone.occupied_share >= s.congestion_open_share
        and zone.mean_pcu >= s.congestion_open_mean_pcu
        and (speed is None or speed <= s.congestion_open_speed_kmh)
    )
    holds = (
        zone.occupied_share >= s.congestion_close_share
        and zone.mean_pcu >= s.congestion_close_mean_pcu
        and (speed is None or speed <= s.congestion_close_speed_kmh)
    )
    score = zone.mean_pcu / s.congestion_open_mean_pcu
    if speed is not None:
        score = max(score, s.congestion_open_speed_kmh / max(speed, 1.0))
    measures = {
        "metric": "mean_pcu",
        "value": round(zone.mean_pcu, 4),
        "threshold": s.congestion_open_mean_pcu,
        "occupied_share": round(zone.occupied_share, 4),
        "speed_kmh": speed,
        "speed_threshold_kmh": s.congestion_open_speed_kmh if speed is not None else None,
    }
    return Judgement(trips, holds, round(score, 4), measures)


# ---------------------------------------------------------------------------------------------
# Abnormal flow, per camera.


@dataclass
class Baseline:
    """Exponentially weighted mean and variance of one time-of-day bucket's flow.

    The weight of a new minute is max(1/n, alpha): a plain running mean and variance until the
    bucket has `flow_halflife_days` of data, then a half-life of that many days (a bucket gets
    60 minutes a day). Updates are West's incremental weighted variance.
    """

    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    days: int = 0
    last_day: int = -1

    def ready(self, s: AlertSettings) -> bool:
        return self.days >= s.flow_min_history_days

    def std(self, s: AlertSettings) -> float:
        """Learned spread, but never below the Poisson noise of the measure: a mean over W
        minutes of 60 x count has variance 60 x mean / W in (PCU/h)^2 (at least 1 PCU/min)."""
        noise = MINUTE * max(self.mean, 60.0) / s.flow_window_minutes
        return math.sqrt(max(self.var, noise))

    def update(self, value: float, day: int, s: AlertSettings) -> None:
        if self.ready(s):
            band = s.flow_open_z * self.std(s)
            value = min(max(value, self.mean - band), self.mean + band)
        self.n += 1
        if day != self.last_day:
            self.days, self.last_day = self.days + 1, day
        alpha = max(1 / self.n, 1 - 0.5 ** (1 / (s.flow_halflife_days * 60)))
        diff = value - self.mean
        self.mean += alpha * diff
        self.var = (1 - alpha) * (self.var + diff * alpha * diff)


def flow_bucket(minute: int, s: AlertSettings) -> tuple[str, int]:
    """('wd08' | 'we08', local day ordinal) of a minute: day type and local hour of day."""
    local = datetime.fromtimestamp(minute, ZoneInfo(s.timezone))
    weekend = local.weekday() >= 5 or local.date() in s.holidays
    return f"{'we' if weekend else 'wd'}{local.hour:02d}", local.date().toordinal()


def judge_flow(measure: float, baseline: Baseline, s: AlertSettings) -> Judgement | None:
    """None while the bucket is still learning: no alert without a baseline."""
    if not baseline.ready(s):
        return None
    std = baseline.std(s)
    z = (measure - baseline.mean) / std
    if baseline.mean > 0:
        change = abs(measure - baseline.mean) / baseline.mean
    else:
        change = math.inf if measure > 0 else 0.0
    trips = abs(z) >= s.flow_open_z and change >= s.flow_open_change
    holds = abs(z) >= s.flow_close_z and change >= s.flow_close_change
    measures = {
        "metric": "pcu_per_hour",
        "value": round(measure, 4),
        "threshold": round(baseline.mean + math.copysign(s.flow_open_z * std, z), 4),
        "baseline": round(baseline.mean, 4),
        "baseline_std": round(std, 4),
        "z_score": round(z, 4),
        "deviation": "above" if z >= 0 else "below",
    }
    return Judgement(trips, holds, round(abs(z) / s.flow_open_z, 4), measures)


# ---------------------------------------------------------------------------------------------
# One camera's alert state and the judgement of its settled minutes.


def to_alert(
    camera_id: str,
    kind: Literal["congestion", "abnormal_flow"],
    zone_id: str | None,
    t: Transition,
    s: AlertSettings,
    emitted_at: datetime,
) -> TrafficAlert:
    started = datetime.fromtimestamp(t.started, UTC)
    evidence = None
    if t.evidence is not None:
        frame_id, frame_uri, captured = t.evidence
        evidence = Evidence(
            frame_id=frame_id,
            frame_uri=frame_uri,
            captured_at=datetime.fromtimestamp(captured, UTC),
        )
    return TrafficAlert(
        alert_id=alert_id(camera_id, kind, zone_id, started),
        camera_id=camera_id,
        kind=kind,
        zone_id=zone_id,
        state=t.state,
        severity=severity(t.score, s),
        started_at=started,
        ended_at=None if t.ended is None else datetime.fromtimestamp(t.ended, UTC),
        as_of=datetime.fromtimestamp(t.as_of, UTC),
        evidence=evidence,
        emitted_at=emitted_at,
        **t.measures,
    )


@dataclass
class CameraAlerts:
    """Everything alerts keep per camera (one Faust table value)."""

    latest: dict[str, int] = field(default_factory=dict)  # source -> newest minute seen
    evaluated: int | None = None  # newest minute judged; facts for it or older are ignored
    zones: dict[str, Track] = field(default_factory=dict)
    flow: Track = field(default_factory=Track)
    recent_flow: list[list[float]] = field(default_factory=list)  # [[minute, pcu/h], ...]
    baselines: dict[str, Baseline] = field(default_factory=dict)
    live: int | None = None  # newest health minute in which the camera published frames

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> CameraAlerts:
        if not data:
            return cls()
        return cls(
            latest=dict(data["latest"]),  # copies: `Alerter._save` compares with `data`
            evaluated=data["evaluated"],
            zones={k: Track(**v) for k, v in data["zones"].items()},
            flow=Track(**data["flow"]),
            recent_flow=[list(r) for r in data["recent_flow"]],
            baselines={k: Baseline(**v) for k, v in data["baselines"].items()},
            live=data.get("live"),  # absent from states written before health was read
        )

    def accepts(self, minute: int) -> bool:
        """Whether a fact for this minute still counts (its minute is not judged yet)."""
        return self.evaluated is None or minute > self.evaluated

    def saw(self, source: str, minute: int) -> bool:
        """Note a fact's source (zones, lines) and minute; True if it is the source's newest."""
        if minute > self.latest.get(source, minute - 1):
            self.latest[source] = minute
            return True
        return False

    def due(self, pending: set[int], s: AlertSettings, waited: set[str]) -> list[int]:
        """Pending minutes that can be judged now, oldest first: those `settle_minutes`
        behind the newest minute of every source in `waited` (none before all were seen)."""
        if not waited or not waited <= self.latest.keys():
            return []
        horizon = min(self.latest[source] for source in waited) - s.settle_minutes * MINUTE
        return sorted(m for m in pending if m <= horizon and self.accepts(m))

    def silent_at(self, minute: int) -> bool:
        """Whether a health minute without published frames shows the camera silent: it comes
        after the camera's last live minute, and the facts of every source the camera has
        reached that minute (none still on their way through inference) but not run ahead
        of it (capture time keeps to the reports' wall clock, as a live camera's does; a file
        replayed faster than real time has facts the reports say nothing about)."""
        live = self.live
        if live is None or minute <= live or not self.latest:
            return False
        return all(live <= newest <= live + MINUTE for newest in self.latest.values())

    def has_open_episode(self) -> bool:
        return self.flow.phase == "open" or any(t.phase == "open" for t in self.zones.values())

    def learned_flow(self) -> bool:
        """Whether any flow minute went into the baselines (judged here, or seeded)."""
        return any(baseline.n for baseline in self.baselines.values())

    def close_stale(
        self, camera_id: str, minute: int, s: AlertSettings, emitted_at: datetime
    ) -> list[TrafficAlert]:
        """Close what the gap rule would close at a reading after `minute`, for a camera
        known to have no reading after its judged minutes up to `minute` (silent)."""
        alerts = [
            to_alert(camera_id, "congestion", zone_id, t, s, emitted_at)
            for zone_id, track in sorted(self.zones.items())
            if (t := track.stale(minute, s.max_gap_minutes))
        ]
        flow = self.flow.stale(minute, s.max_gap_minutes)
        if flow is not None:
            alerts.append(to_alert(camera_id, "abnormal_flow", None, flow, s, emitted_at))
        return alerts

    def evaluate(
        self, camera_id: str, reading: MinuteReading, s: AlertSettings, emitted_at: datetime
    ) -> list[TrafficAlert]:
        """Judge the next settled minute; return the alerts to publish."""
        if not self.accepts(reading.start):
            raise ValueError(f"minute {reading.start} of {camera_id} is already judged")
        minute = self.evaluated = reading.start
        alerts = []
        for zone_id in sorted(set(self.zones) | set(reading.zones)):
            track = self.zones.setdefault(zone_id, Track())
            zone = reading.zones.get(zone_id)
            if zone is None:
                transitions = [t for t in [track.stale(minute, s.max_gap_minutes)] if t]
            else:
                judged = judge_congestion(zone, reading.speed_kmh, s)
                transitions = track.step(
                    minute,
                    judged,
                    reading.evidence,
                    s,
                    s.congestion_open_minutes,
                    s.congestion_close_minutes,
                )
            alerts += [
                to_alert(camera_id, "congestion", zone_id, t, s, emitted_at) for t in transitions
            ]
            gone = track.last is not None and (minute - track.last) // MINUTE > s.max_gap_minutes
            if track.phase == "idle" and gone:
                del self.zones[zone_id]  # a zone gone from the facts (registry change)
        alerts += [
            to_alert(camera_id, "abnormal_flow", None, t, s, emitted_at)
            for t in self.judge_flow_minute(reading, s)
        ]
        return alerts

    def judge_flow_minute(self, reading: MinuteReading, s: AlertSettings) -> list[Transition]:
        """Judge a minute's flow against its bucket, then learn it (seeding replays this)."""
        minute = reading.start
        measure = None
        if reading.flow_pcu_per_hour is not None:
            window = s.flow_window_minutes * MINUTE
            self.recent_flow = [r for r in self.recent_flow if r[0] > minute - window]
            self.recent_flow.append([minute, reading.flow_pcu_per_hour])
            if len(self.recent_flow) >= math.ceil(s.flow_window_minutes / 2):
                measure = sum(r[1] for r in self.recent_flow) / len(self.recent_flow)
        key, day = flow_bucket(minute, s)
        baseline = self.baselines.setdefault(key, Baseline())
        judged = None if measure is None else judge_flow(measure, baseline, s)
        if judged is None:
            transitions = [t for t in [self.flow.stale(minute, s.max_gap_minutes)] if t]
        else:
            transitions = self.flow.step(
                minute, judged, reading.evidence, s, s.flow_open_minutes, s.flow_close_minutes
            )
        if measure is not None:
            baseline.update(measure, day, s)
        return transitions


# ---------------------------------------------------------------------------------------------
# The job's state over three key-value maps (Faust tables in the worker, dicts in tests).

SOURCES = ("zones", "lines")  # fact kinds a camera's minutes wait for
EVIDENCE_KEEP_MINUTES = 60  # evidence ahead of a camera's facts, or of a camera without any


class Alerter:
    """Feeds facts, evidence and camera health into per-camera state; returns the alerts to
    publish.

    `states`: camera_id -> CameraAlerts.to_json(); `pending`: "camera|minute" -> the minute's
    fact record until it is judged; `evidence`: "camera|minute" -> its most crowded frame.
    Each call reads and writes the maps without awaiting, so agents may share one Alerter.
    Which minutes a camera has pending is an in-memory index, rebuilt from the maps' keys after
    `forget_index()` (call it when partitions were reassigned). Wall times (`clock`) only ever
    decide when to stop waiting: which sources hold minutes back, and the silence fallback.
    """

    def __init__(
        self,
        states: MutableMapping[str, Any],
        pending: MutableMapping[str, Any],
        evidence: MutableMapping[str, Any],
        settings: AlertSettings,
    ) -> None:
        self.states, self.pending, self.evidence = states, pending, evidence
        self.settings = settings
        self._index: dict[str, set[int]] = {}
        self._heard: dict[tuple[str, str], float] = {}  # (camera, source) -> wall time
        self._first: dict[str, float] = {}  # camera -> wall time of its first fact here
        self._last_fact: dict[str, float] = {}  # camera -> wall time of its latest fact here
        self._seed_claimed: set[str] = set()  # cameras whose seeding this process has tried

    def forget_index(self) -> None:
        self._index.clear()
        self._last_fact.clear()  # a camera (re)assigned here is silent from now on, not before

    def _minutes(self, camera_id: str) -> set[int]:
        if camera_id not in self._index:
            keys = [*self.pending.keys(), *self.evidence.keys()]
            self._index[camera_id] = {
                minute for camera, minute in map(parse_minute_key, keys) if camera == camera_id
            }
        return self._index[camera_id]

    def _waited(self, camera_id: str, clock: float) -> set[str]:
        """Sources whose facts hold back the camera's minutes: those heard of within
        source_timeout_s, and, for that long after the camera's first fact, those not yet."""
        timeout = self.settings.source_timeout_s
        first = self._first.setdefault(camera_id, clock)
        return {
            source
            for source in SOURCES
            if clock - self._heard.get((camera_id, source), first) <= timeout
        }

    def _judge(
        self, camera_id: str, state: CameraAlerts, due: list[int], now: datetime
    ) -> list[TrafficAlert]:
        """Judge these minutes (settled, ascending) from their records; they leave the maps."""
        minutes = self._minutes(camera_id)
        alerts: list[TrafficAlert] = []
        for minute in due:
            key = minute_key(camera_id, minute)
            record, evidence = self.pending.pop(key, None), self.evidence.pop(key, None)
            minutes.discard(minute)
            reading = summarize(minute, record, evidence, self.settings)
            alerts += state.evaluate(camera_id, reading, self.settings, now)
        return alerts

    def add_fact(
        self, fact: ZoneOccupancy | LineCrossings, now: datetime, clock: float | None = None
    ) -> tuple[bool, list[TrafficAlert]]:
        """(whether the fact still counted, alerts). A fact for a judged minute is ignored.

        `now` stamps the alerts (emitted_at); `clock`, wall time in seconds (default: now),
        tells which sources are still heard of, and since when the camera is (silence)."""
        camera_id, minute = fact.camera_id, minute_of(fact.window_start.timestamp())
        clock = now.timestamp() if clock is None else clock
        self._last_fact[camera_id] = clock
        state = CameraAlerts.from_json(self.states.get(camera_id))
        if not state.accepts(minute):
            return False, []
        key = minute_key(camera_id, minute)
        if isinstance(fact, ZoneOccupancy):
            record = add_zone_fact(self.pending.get(key), fact)
        else:
            record = add_line_fact(self.pending.get(key), fact)
        minutes = self._minutes(camera_id)
        if record is not None:
            self.pending[key] = record
            minutes.add(minute)
        source = "zones" if isinstance(fact, ZoneOccupancy) else "lines"
        waited = self._waited(camera_id, clock)
        self._heard[(camera_id, source)] = clock
        advanced = state.saw(source, minute)
        alerts: list[TrafficAlert] = []
        due_minutes = state.due(minutes, self.settings, waited | {source})
        if advanced or due_minutes:
            alerts = self._judge(camera_id, state, due_minutes, now)
            self.states[camera_id] = state.to_json()
        return True, alerts

    def add_health(
        self, camera_id: str, minute: int, frames_published: int, now: datetime
    ) -> list[TrafficAlert]:
        """A camera-health report (its wall-clock minute, frames published in it): alerts.

        A live minute is noted; a dead one that shows the camera silent settles the camera's
        minutes `settle_minutes` behind it, as a fact of that minute would, and closes what
        the gap rule closes there. Cameras without facts yet have nothing to settle."""
        data = self.states.get(camera_id)
        if data is None:
            return []
        state = CameraAlerts.from_json(data)
        alerts: list[TrafficAlert] = []
        if frames_published > 0:
            state.live = max(minute, state.live if state.live is not None else minute)
        elif state.silent_at(minute):
            horizon = minute - self.settings.settle_minutes * MINUTE
            minutes = self._minutes(camera_id)
            due = sorted(m for m in minutes if m <= horizon and state.accepts(m))
            alerts = self._judge(camera_id, state, due, now)
            alerts += state.close_stale(camera_id, horizon, self.settings, now)
        self._save(camera_id, state, data)
        return alerts

    def silent_cameras(self, clock: float) -> list[str]:
        """Cameras with an open episode or unjudged facts and no fact for silent_close_s (wall
        clock; a camera not heard of in this process counts from its first look here)."""
        waiting = {parse_minute_key(key)[0] for key in list(self.pending.keys())}
        waiting |= {
            camera_id
            for camera_id, data in list(self.states.items())
            if data and CameraAlerts.from_json(data).has_open_episode()
        }
        return sorted(camera_id for camera_id in waiting if self._silent(camera_id, clock))

    def _silent(self, camera_id: str, clock: float) -> bool:
        since = self._last_fact.setdefault(camera_id, clock)
        return clock - since >= self.settings.silent_close_s

    def close_silent(self, camera_id: str, now: datetime, clock: float) -> list[TrafficAlert]:
        """The wall-clock fallback for a camera that is still silent (see `silent_cameras`):
        judge its minutes up to its last fact's and close its episodes as the gap rule
        would. Nothing if a fact came since it was found silent."""
        data = self.states.get(camera_id)
        if data is None or not self._silent(camera_id, clock):
            return []
        state = CameraAlerts.from_json(data)
        minutes = self._minutes(camera_id)
        with_facts = [m for m in minutes if minute_key(camera_id, m) in self.pending]
        last = max(with_facts, default=None)
        due = sorted(m for m in minutes if last is not None and m <= last and state.accepts(m))
        alerts = self._judge(camera_id, state, due, now)
        if state.evaluated is not None:
            beyond_gap = state.evaluated + (self.settings.max_gap_minutes + 1) * MINUTE
            alerts += state.close_stale(camera_id, beyond_gap, self.settings, now)
        self._save(camera_id, state, data)
        return alerts

    def _save(self, camera_id: str, state: CameraAlerts, before: Any) -> None:
        """Write a camera's state back if it changed (a table write is a changelog message)."""
        after = state.to_json()
        if after != before:
            self.states[camera_id] = after

    def claim_seed(self, camera_id: str) -> bool:
        """Whether to seed the camera's flow baselines now: it has learned no flow, and this
        process has not tried yet (once per camera: a warehouse that is down is not asked
        again for every fact)."""
        if camera_id in self._seed_claimed:
            return False
        self._seed_claimed.add(camera_id)
        return not CameraAlerts.from_json(self.states.get(camera_id)).learned_flow()

    def seed(self, camera_id: str, baselines: dict[str, Baseline]) -> bool:
        """Give the camera these baselines unless it learned some flow meanwhile; True if so."""
        data = self.states.get(camera_id)
        state = CameraAlerts.from_json(data)
        if not baselines or state.learned_flow():
            return False
        state.baselines = dict(baselines)
        self._save(camera_id, state, data)
        return True

    def add_evidence(self, camera_id: str, minute: int, record: EvidenceRecord) -> bool:
        """Keep the frame if it is the minute's most crowded so far; True if kept."""
        state = CameraAlerts.from_json(self.states.get(camera_id))
        key = minute_key(camera_id, minute)
        if not state.accepts(minute) or not better_evidence(self.evidence.get(key), record):
            return False
        self.evidence[key] = record
        minutes = self._minutes(camera_id)
        minutes.add(minute)
        horizon = max(minutes) - EVIDENCE_KEEP_MINUTES * MINUTE
        for old in [m for m in minutes if m < horizon]:
            old_key = minute_key(camera_id, old)
            if old_key not in self.pending:  # facts' minutes are judged; evidence-only expire
                self.evidence.pop(old_key, None)
                minutes.discard(old)
        return True


# ---------------------------------------------------------------------------------------------
# Seeding flow baselines from the warehouse's history of the camera.

DAY = 86400

# A minute's flow as `summarize` reads it: PCU per hour summed over the lines, ways and classes
# of the minute's final emission (FINAL keeps the row with most frames), rows with enough
# frames only; no row with enough frames, no reading.
FLOW_HISTORY_SQL = """
SELECT toUnixTimestamp(window_start) AS minute, round(sum(pcu_per_hour), 4) AS flow
FROM line_crossings_1m FINAL
WHERE camera_id = {camera_id:String}
  AND window_start >= toDateTime({since:Int64}, 'UTC')
  AND window_start < toDateTime({until:Int64}, 'UTC')
  AND frames >= {min_frames:UInt32}
GROUP BY minute
ORDER BY minute
"""


def seed_baselines(history: Iterable[tuple[int, float]], s: AlertSettings) -> dict[str, Baseline]:
    """The baselines the stream would have learned from these (minute, PCU per hour) flow
    readings, given in minute order: they are judged by the stream's own flow judgement (its
    smoothing, buckets, winsorising), on a scratch state whose alerts are dropped."""
    scratch = CameraAlerts()
    for minute, flow in history:
        scratch.judge_flow_minute(MinuteReading(minute, flow_pcu_per_hour=flow), s)
    return {key: baseline for key, baseline in scratch.baselines.items() if baseline.n}


def flow_history(
    client: Client, camera_id: str, since: int, until: int, min_frames: int
) -> list[tuple[int, float]]:
    """(minute, PCU per hour) of the camera's minutes in [since, until), in minute order."""
    parameters = {
        "camera_id": camera_id,
        "since": since,
        "until": until,
        "min_frames": min_frames,
    }
    result = client.query(FLOW_HISTORY_SQL, parameters=parameters)
    return [(int(minute), float(flow)) for minute, flow in result.result_rows]


class BaselineSeeder:
    """Seeds a camera's flow baselines from the warehouse, as the analyst (read-only) user.

    Never raises for the warehouse: one that cannot be reached or read (down, no table yet,
    wrong credentials) logs a warning and gives no baselines, and the camera learns from the
    stream. The connection is opened on first use and again after a failure.
    """

    def __init__(self, warehouse: WarehouseSettings, settings: AlertSettings) -> None:
        self.warehouse, self.settings = warehouse, settings
        self._client: Client | None = None

    def baselines(self, camera_id: str, until: int) -> dict[str, Baseline]:
        """Baselines from the camera's `seed_history_days` of flow before minute `until`."""
        since = until - self.settings.seed_history_days * DAY
        try:
            history = flow_history(
                self._connect(), camera_id, since, until, self.settings.min_frames
            )
        except (ClickHouseError, OSError, ValueError) as exc:
            self._client = None
            log.warning(
                "flow baselines of %s not seeded from the warehouse, learning them from the "
                "stream instead: %s",
                camera_id,
                exc,
            )
            return {}
        baselines = seed_baselines(history, self.settings)
        log.info(
            "flow baselines of %s seeded from %d warehouse minutes (%d buckets)",
            camera_id,
            len(history),
            len(baselines),
        )
        return baselines

    def _connect(self) -> Client:
        if self._client is None:
            password = self.warehouse.analyst_password.get_secret_value()
            self._client = connect(
                self.warehouse, username=self.warehouse.analyst_username, password=password
            )
        return self._client
