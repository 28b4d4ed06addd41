"""TrafficAlert: a congestion or abnormal-flow episode of one camera, as it opens and closes."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas._base import CAMERA_ID_PATTERN, Event, UtcDatetime, schema_version_field

AlertKind = Literal["congestion", "abnormal_flow"]
AlertState = Literal["open", "ongoing", "closed"]
Severity = Literal["low", "medium", "high"]


def alert_id(camera_id: str, kind: str, zone_id: str | None, started_at: datetime) -> str:
    """The episode's deduplication key: camera, kind, zone (or `-`) and episode start."""
    return f"{kind}:{camera_id}:{zone_id or '-'}:{started_at:%Y%m%dT%H%M%SZ}"


class Evidence(BaseModel):
    """A frame from the episode: the frame store keeps it for a limited time only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frame_id: str = Field(min_length=1, max_length=200)
    frame_uri: str = Field(min_length=1, description="Frame store URI (internal; may expire).")
    captured_at: UtcDatetime


class TrafficAlert(Event):
    """One episode of congestion (per zone) or abnormal flow (per camera), one message per change.

    An episode is published when it opens, possibly while it goes on (`ongoing`: its severity
    rose, or periodically), and once when it closes. Every message of an episode carries the
    same `alert_id` (derived from camera, kind, zone and start) and the whole picture so far,
    so the latest one replaces the earlier ones; `as_of` orders them (event time, not the
    clock: a repeat of an earlier message never wins over a later one).

    The measured values describe the episode's worst minute so far and what it was compared
    with: for congestion the zone's mean PCU (`metric` mean_pcu) against the open threshold,
    with its occupied share and the camera's mean ground speed where calibrated; for abnormal
    flow the camera's smoothed flow in PCU per hour (`metric` pcu_per_hour) against its own
    baseline for that hour of day and day type, as a z-score.
    """

    SCHEMA_NAME: ClassVar[str] = "traffic_alert"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    alert_id: str = Field(
        min_length=1,
        description="Deduplication key of the episode: "
        "`{kind}:{camera_id}:{zone_id or -}:{started_at as YYYYMMDDTHHMMSSZ}`.",
    )
    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    kind: AlertKind = Field(description="congestion (per zone) or abnormal_flow (per camera).")
    zone_id: str | None = Field(
        default=None,
        pattern=CAMERA_ID_PATTERN,
        description="Congestion: the zone. Abnormal flow: null (all lines of the camera).",
    )
    state: AlertState = Field(description="open, ongoing (update), or closed (final).")
    severity: Severity = Field(
        description="How far past the open threshold the worst minute was: low under 1.5x, "
        "medium under 2x, high from 2x (PCU or slowness ratio; |z| ratio for flow)."
    )
    started_at: UtcDatetime = Field(description="Start of the episode's first minute.")
    ended_at: UtcDatetime | None = Field(
        default=None,
        description="End of the episode's last minute past the close threshold; null until closed.",
    )
    as_of: UtcDatetime = Field(
        description="End of the last minute this message accounts for (event time); the "
        "message with the latest as_of is the current state of the alert."
    )
    metric: str = Field(min_length=1, description="mean_pcu (congestion) or pcu_per_hour (flow).")
    value: float = Field(description="The metric in the episode's worst minute so far.")
    threshold: float = Field(
        description="What value was compared with: the open threshold of mean_pcu, or the flow "
        "at which |z| reaches the open z-score (baseline +/- z x std)."
    )
    baseline: float | None = Field(
        default=None, description="Abnormal flow: the camera's expected flow for that minute."
    )
    baseline_std: float | None = Field(
        default=None, ge=0, description="Abnormal flow: the baseline's standard deviation."
    )
    z_score: float | None = Field(
        default=None, description="Abnormal flow: (value - baseline) / baseline_std."
    )
    deviation: Literal["above", "below"] | None = Field(
        default=None, description="Abnormal flow: whether the flow was above or below baseline."
    )
    occupied_share: float | None = Field(
        default=None, ge=0, le=1, description="Congestion: share of frames the zone was occupied."
    )
    speed_kmh: float | None = Field(
        default=None,
        ge=0,
        description="Congestion: mean ground speed of the camera's line crossings in that "
        "minute; null where the camera is not calibrated or too few vehicles crossed.",
    )
    speed_threshold_kmh: float | None = Field(
        default=None, gt=0, description="Congestion: the open threshold speed, when speed is known."
    )
    evidence: Evidence | None = Field(
        default=None, description="A frame from the episode (the most crowded of its worst minute)."
    )
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        expected = alert_id(self.camera_id, self.kind, self.zone_id, self.started_at)
        if self.alert_id != expected:
            raise ValueError(f"alert_id must be {expected!r}, got {self.alert_id!r}")
        if (self.state == "closed") != (self.ended_at is not None):
            raise ValueError("ended_at is set exactly when the state is closed")
        if self.ended_at is not None and self.ended_at <= self.started_at:
            raise ValueError("ended_at must be after started_at")
        if self.as_of <= self.started_at:
            raise ValueError("as_of must be after started_at")
        if self.kind == "congestion" and (self.zone_id is None or self.occupied_share is None):
            raise ValueError("a congestion alert names its zone_id and occupied_share")
        flow_fields = (self.baseline, self.baseline_std, self.z_score, self.deviation)
        if self.kind == "abnormal_flow" and (
            self.zone_id is not None or any(f is None for f in flow_fields)
        ):
            raise ValueError(
                "an abnormal_flow alert has no zone_id and gives baseline, baseline_std, "
                "z_score and deviation"
            )
        return self
