"""Facts derived by the streams stage: traffic density, line crossings, zone occupancy."""

from __future__ import annotations

from typing import ClassVar, Literal, Self

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


Orientation = Literal["positive", "negative"]


class LineCrossings(Event):
    """Tracked road users of one class crossing one counting line, one way, in one window.

    A track counts once each time it crosses (the rule is streams.geometry's: its ground anchor
    passes from one side of the line segment to the other). `direction` is the name the camera
    registry gives that way across the line; `orientation` says which of the line's two
    configured ways it is, so consumers need no registry to pair opposite flows. Riders are
    never counted as pedestrians: their vehicle is counted once.

    Emitted like TrafficDensity: the window's running totals, again whenever they changed,
    zeros included for every configured line, way and class of a camera that sent frames in
    the window (no flow is information too). `frames` only grows within a window, so the
    warehouse keeps the emission with most frames.
    """

    SCHEMA_NAME: ClassVar[str] = "line_crossings"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    line_id: str = Field(pattern=CAMERA_ID_PATTERN, description="Counting line of the camera.")
    direction: str = Field(
        min_length=1, description="The registry's name for this way across the line."
    )
    orientation: Orientation = Field(
        description="positive: from the left-hand to the right-hand side of the line as drawn "
        "(points[0] -> points[1], y down); negative: the other way."
    )
    vehicle_class: str = Field(
        min_length=1,
        description="car, motorbike, bicycle, bus, truck, or pedestrian (not a vehicle: "
        "PCU factor 0).",
    )
    window_start: UtcDatetime
    window_end: UtcDatetime
    frames: int = Field(ge=1, description="Sampled frames of the camera inside the window.")
    crossings: int = Field(ge=0, description="Crossings this way in the window.")
    pcu_factor: float = Field(
        ge=0, description="Passenger-car-unit factor of the class; 0 for pedestrians."
    )
    pcu: float = Field(ge=0, description="crossings x pcu_factor.")
    pcu_per_hour: float = Field(
        ge=0, description="Flow rate: pcu scaled to one hour (pcu x 3600 / window seconds)."
    )
    pcu_version: str = Field(
        min_length=1, description="Which PCU factor table was applied (per road class)."
    )
    speed_samples: int = Field(
        ge=0, description="Crossings with a ground-speed estimate (cameras with a homography)."
    )
    speed_kmh_mean: float | None = Field(
        default=None, ge=0, description="Mean ground speed of those crossings; null if none."
    )
    speed_kmh_p85: float | None = Field(
        default=None,
        ge=0,
        description="85th percentile ground speed of those crossings (linear interpolation); "
        "null if none.",
    )
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.speed_samples > self.crossings:
            raise ValueError("speed_samples cannot exceed crossings")
        has_speed = (self.speed_kmh_mean is not None, self.speed_kmh_p85 is not None)
        if has_speed != (self.speed_samples > 0,) * 2:
            raise ValueError(
                "speed_kmh_mean and speed_kmh_p85 are set exactly when speed_samples > 0"
            )
        return self


class ZoneOccupancy(Event):
    """Road users inside one configured zone of one camera, over the sampled frames of a window.

    An object is inside when its ground anchor (bottom centre of its box) lies in the zone's
    polygon. Objects are the counted classes (vehicles and pedestrians above the score
    threshold; riders are not counted, their vehicle is), tracked or not. Emitted like
    TrafficDensity: running totals, zeros included, the emission with most frames wins.
    """

    SCHEMA_NAME: ClassVar[str] = "zone_occupancy"
    SCHEMA_VERSION: ClassVar[str] = "1-0-0"
    schema_version: str = schema_version_field(SCHEMA_VERSION)

    camera_id: str = Field(pattern=CAMERA_ID_PATTERN)
    zone_id: str = Field(pattern=CAMERA_ID_PATTERN, description="Zone of the camera.")
    zone_kind: str | None = Field(
        default=None, description="The zone's kind in the registry: junction, parking, ..."
    )
    window_start: UtcDatetime
    window_end: UtcDatetime
    frames: int = Field(ge=1, description="Sampled frames of the camera inside the window.")
    objects: int = Field(ge=0, description="Objects inside the zone summed over those frames.")
    mean_objects: float = Field(ge=0, description="objects / frames: mean objects in the zone.")
    max_objects: int = Field(ge=0, description="Most objects inside the zone on one frame.")
    occupied_frames: int = Field(ge=0, description="Frames with at least one object inside.")
    occupied_share: float = Field(ge=0, le=1, description="occupied_frames / frames.")
    mean_pcu: float = Field(
        ge=0, description="Mean passenger car units inside the zone per frame (0 for people)."
    )
    pcu_version: str = Field(min_length=1, description="Which PCU factor table was applied.")
    mean_objects_by_class: dict[str, float] = Field(
        default_factory=dict,
        description="Mean objects inside per frame, per class seen in the window (classes "
        "never seen are left out).",
    )
    emitted_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        if self.occupied_frames > self.frames:
            raise ValueError("occupied_frames cannot exceed frames")
        if self.max_objects > self.objects:
            raise ValueError("max_objects cannot exceed objects")
        if (self.objects > 0) != (self.occupied_frames > 0):
            raise ValueError("occupied_frames is 0 exactly when objects is 0")
        return self
