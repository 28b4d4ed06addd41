"""Facts derived by the streams stage."""

from __future__ import annotations

from typing import ClassVar, Self

from pydantic import Field, model_validator

from schemas._base import CAMERA_ID_PATTERN, Event, UtcDatetime, schema_version_field


class TrafficDensity(Event):
    """Vehicles of one class seen by one camera in one tumbling window.

    `detections` sums the class's boxes over the window's sampled frames; divided by `frames`
    it is the mean number of such vehicles in view (the density). `pcu` weights `detections`
    by the class's passenger-car-unit factor. The stream emits a window again whenever it
    changes; `frames` only grows, so the warehouse keeps the emission with most frames.
    """

    SCHEMA_NAME: ClassVar[str] = "traffic_density"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    window_start: UtcDatetime
    window_end: UtcDatetime
    vehicle_class: str = Field(min_length=1, description="car, motorbike, bicycle, bus, truck...")
    frames: int = Field(ge=1, description="Sampled frames of the camera inside the window.")
    detections: int = Field(ge=0, description="Boxes of this class summed over those frames.")
    mean_in_view: float = Field(ge=0, description="detections / frames.")
    max_in_view: int = Field(ge=0, description="Most boxes of this class in one frame.")
    pcu_factor: float = Field(gt=0)
    pcu: float = Field(ge=0, description="detections x pcu_factor.")
    pcu_version: str = Field(min_length=1, description="Which PCU factor table was applied.")
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _window_ordered(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.max_in_view > self.detections:
            raise ValueError("max_in_view cannot exceed detections")
        return self
