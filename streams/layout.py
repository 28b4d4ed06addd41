"""A camera's counting layout on the frames it actually sends: lines, zones, calibration, PCU.

The registry's geometry is drawn in pixels of its own `frame_size`; detections come in pixels
of the frame the camera delivered. `layout_for` scales the geometry (CameraGeometry.scaled)
and the jitter band with it, and picks the PCU table of the camera's road class. Layouts are
cached per camera and frame size: building one fits a homography.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from citycam.cameras import Camera, CameraRegistry, CountingLine, Zone
from citycam.config import PcuTable, StreamsSettings


@dataclass(frozen=True)
class CameraLayout:
    camera_id: str
    lines: tuple[CountingLine, ...]
    zones: tuple[Zone, ...]
    band_px: float
    """Dead band each side of every line, in pixels of this frame size."""
    image_to_ground: np.ndarray | None
    """Pixels of this frame size -> ground metres; None where the camera is uncalibrated."""
    pcu: PcuTable

    @property
    def counts_anything(self) -> bool:
        return bool(self.lines or self.zones)


def layout_for(
    camera: Camera, width: int, height: int, settings: StreamsSettings
) -> CameraLayout | None:
    """The camera's layout on a width x height frame; None if it has no geometry."""
    if camera.geometry is None:
        return None
    geometry = camera.geometry.scaled((width, height))
    w0, h0 = camera.geometry.frame_size
    scale = math.sqrt(width / w0 * height / h0)
    homography = geometry.homography
    return CameraLayout(
        camera_id=camera.id,
        lines=geometry.lines,
        zones=geometry.zones,
        band_px=settings.crossing_band_px * scale,
        image_to_ground=None if homography is None else homography.image_to_ground,
        pcu=settings.pcu_table(camera.road_class),
    )


class Layouts:
    """Layouts of a registry's cameras, built on first use per frame size."""

    def __init__(self, registry: CameraRegistry, settings: StreamsSettings) -> None:
        self._cameras = {camera.id: camera for camera in registry.cameras}
        self._settings = settings
        self._cache: dict[tuple[str, int, int], CameraLayout | None] = {}

    def get(self, camera_id: str, width: int, height: int) -> CameraLayout | None:
        """None for a camera that is not in the registry or has no geometry."""
        key = (camera_id, width, height)
        if key not in self._cache:
            camera = self._cameras.get(camera_id)
            self._cache[key] = (
                None if camera is None else layout_for(camera, width, height, self._settings)
            )
        return self._cache[key]
