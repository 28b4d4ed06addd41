"""FrameRef: a sampled camera frame, stored in the frame store and referenced by URI."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from schemas._base import CAMERA_ID_PATTERN, Event, UtcDatetime, schema_version_field


class FrameRef(Event):
    """One sampled frame of one camera. The image itself lives in the frame store."""

    SCHEMA_NAME: ClassVar[str] = "frame_ref"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN, description="Camera registry id.")
    frame_id: str = Field(
        min_length=1,
        max_length=200,
        description="Deterministic id: camera id and capture time in ms; unique per camera.",
    )
    captured_at: UtcDatetime = Field(description="When the frame was captured (UTC).")
    frame_uri: str = Field(
        min_length=1, description="Where the JPEG lives, e.g. file:///data/frames/cam/x.jpg."
    )
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    sequence: int = Field(ge=0, description="Sampled-frame counter within one ingest session.")
    session_id: str = Field(
        min_length=1, description="Id of the ingest session (one opening of the source)."
    )
