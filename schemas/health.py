"""CameraHealth: how one camera and its ingest worker fared in one wall-clock minute."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Self

from pydantic import Field, model_validator

from schemas._base import CAMERA_ID_PATTERN, Event, UtcDatetime, schema_version_field

WINDOW = timedelta(minutes=1)
UINT32_MAX = 2**32 - 1
UINT16_MAX = 2**16 - 1  # the warehouse column of reconnects


class CameraHealth(Event):
    """One ingest worker's report on its camera for one UTC minute.

    Minutes are wall-clock minutes, not capture-time windows: a camera that delivers nothing
    still gets a report for every minute its worker was running (up_share 0, its reconnect
    attempts counted), which is what tells a dead camera from one that is not ingested at
    all (no reports). The minute in which the worker started or stopped is reported for the
    part it was running (`covered_s` < 60); rates and shares refer to that part. A minute is
    reported once, after it ended; an ingest restarted within a minute reports that minute
    again for its own part, and the warehouse keeps the later report.
    """

    SCHEMA_NAME: ClassVar[str] = "camera_health"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN, description="Camera registry id.")
    window_start: UtcDatetime = Field(description="Start of the minute (a whole UTC minute).")
    window_end: UtcDatetime = Field(description="window_start + 60 s (exclusive).")
    covered_s: float = Field(
        gt=0,
        le=60,
        description="Seconds of the minute the ingest worker was running: 60, less in the "
        "minute it started or stopped in.",
    )
    frames_decoded: int = Field(
        ge=0, le=UINT32_MAX, description="Frames decoded from the source in the minute."
    )
    frames_published: int = Field(
        ge=0,
        le=UINT32_MAX,
        description="Sampled frames stored and published as FrameRefs (a subset of the "
        "decoded frames, counted in the minute they were decoded).",
    )
    decode_errors: int = Field(
        ge=0,
        le=UINT32_MAX,
        description="Packets the decoder refused, plus frames it flagged as corrupt (error-"
        "concealed) or gave no timestamp.",
    )
    reconnects: int = Field(
        ge=0,
        le=UINT16_MAX,
        description="Attempts to open the source started in the minute, failed ones and the "
        "first opening included (a replayed file is reopened at its end).",
    )
    fps: float = Field(ge=0, description="frames_published / covered_s.")
    target_fps: float = Field(
        gt=0, le=60, description="The camera's configured sample rate (registry sample_fps)."
    )
    up_share: float = Field(
        ge=0,
        le=1,
        description="Share of the covered one-second slots of the minute in which the source "
        "delivered at least one decoded frame.",
    )
    lag_ms_mean: float | None = Field(
        default=None,
        description="Mean delay from a published frame's captured_at to its publication, ms; "
        "null when nothing was published. Negative only where capture times are synthetic "
        "and run ahead of the clock (a file replayed faster than real time).",
    )
    lag_ms_max: float | None = Field(
        default=None, description="Largest such delay, ms; null when nothing was published."
    )
    emitted_at: UtcDatetime = Field(description="When the report was emitted; the latest wins.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_start.timestamp() % 60 != 0:
            raise ValueError("window_start must be a whole UTC minute")
        if self.window_end - self.window_start != WINDOW:
            raise ValueError("window_end must be window_start + 60 s")
        if self.frames_published > self.frames_decoded:
            raise ValueError("frames_published cannot exceed frames_decoded")
        if (self.up_share > 0) != (self.frames_decoded > 0):
            raise ValueError("up_share is 0 exactly when no frame was decoded")
        mean, top = self.lag_ms_mean, self.lag_ms_max
        if (mean is not None, top is not None) != (self.frames_published > 0,) * 2:
            raise ValueError("lag_ms_mean and lag_ms_max are set exactly when frames are published")
        if mean is not None and top is not None and top < mean:
            raise ValueError("lag_ms_max cannot be below lag_ms_mean")
        return self
