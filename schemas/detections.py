"""FrameDetections: what a detector found on one frame."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas._base import CAMERA_ID_PATTERN, Event, UtcDatetime, schema_version_field


class BoundingBox(BaseModel):
    """Pixel box in the frame's own coordinates; x1 < x2 and y1 < y2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: float = Field(ge=0)
    y1: float = Field(ge=0)
    x2: float = Field(ge=0)
    y2: float = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not (self.x1 < self.x2 and self.y1 < self.y2):
            raise ValueError(f"box corners out of order: {self.x1},{self.y1},{self.x2},{self.y2}")
        return self


class Detection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    class_name: str = Field(min_length=1, description="Model label, e.g. car, motorcycle.")
    class_id: int = Field(ge=0, description="Model label id (COCO id for the default model).")
    score: float = Field(ge=0, le=1)
    bbox: BoundingBox
    # Optional for 1-0-0 payloads and other producers; the inference service always sets it.
    track_id: int | None = Field(
        default=None,
        ge=0,
        description="Id of the object's track, unique per camera and stable across frames. "
        "The inference service always sets it: a track's first box already carries the id, "
        "and low-score boxes that continue no track are not published. Null only from "
        "producers without a tracker and in events published before this rule.",
    )
    # 1-1-0: rider association (additions, optional).
    riders: int = Field(
        default=0,
        ge=0,
        description="People riding this motorcycle or bicycle: the detections of this frame "
        "whose rider_of is this one's index (0 for anything else).",
    )
    rider_of: int | None = Field(
        default=None,
        ge=0,
        description="For a person riding a motorcycle or bicycle: that vehicle's index in this "
        "frame's detections. A rider is not a pedestrian; count the vehicle once.",
    )


class FrameDetections(Event):
    """All detections of one frame (possibly none), with the model that produced them."""

    SCHEMA_NAME: ClassVar[str] = "frame_detections"
    SCHEMA_VERSION: ClassVar[str] = "1-1-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    frame_id: str = Field(min_length=1, max_length=200)
    captured_at: UtcDatetime
    frame_uri: str = Field(min_length=1)
    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)
    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    inferred_at: UtcDatetime
    detections: tuple[Detection, ...] = ()

    @model_validator(mode="after")
    def _boxes_inside_frame(self) -> Self:
        for i, det in enumerate(self.detections):
            if det.bbox.x2 > self.width + 1 or det.bbox.y2 > self.height + 1:
                raise ValueError(
                    f"detections.{i}.bbox lies outside the {self.width}x{self.height} frame"
                )
        return self

    @model_validator(mode="after")
    def _riders_point_at_their_vehicles(self) -> Self:
        carried = [0] * len(self.detections)
        for i, det in enumerate(self.detections):
            if det.rider_of is None:
                continue
            if det.rider_of >= len(self.detections) or det.rider_of == i:
                raise ValueError(f"detections.{i}.rider_of: no other detection {det.rider_of}")
            carried[det.rider_of] += 1
        for i, det in enumerate(self.detections):
            if det.riders != carried[i]:
                raise ValueError(
                    f"detections.{i}.riders is {det.riders} but {carried[i]} detections ride it"
                )
        return self
