"""Open camera sources with PyAV and yield decoded frames with their stream time."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from citycam.cameras import Camera

log = logging.getLogger(__name__)


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering frames."""


@dataclass(frozen=True)
class DecodedFrame:
    stream_time_s: float  # seconds from the stream's first frame
    frame: av.VideoFrame

    def to_bgr(self) -> np.ndarray:
        """Pixel conversion is the costly part: done only for the frames that are sampled."""
        return self.frame.to_ndarray(format="bgr24")


def open_options(camera: Camera) -> dict[str, str]:
    if camera.source.startswith(("rtsp://", "rtsps://")):
        # TCP survives lossy links better than UDP and is what camera NVRs expose.
        return {"rtsp_transport": "tcp"}
    return {}


def decode_frames(
    camera: Camera, open_timeout_s: float, read_timeout_s: float
) -> Iterator[DecodedFrame]:
    """Decode the camera's first video stream; raise SourceError on open or read failure."""
    if camera.source_path is not None and not camera.source_path.is_file():
        raise SourceError(f"{camera.id}: no such video file {camera.source_path}")
    try:
        container = av.open(
            camera.source, options=open_options(camera), timeout=(open_timeout_s, read_timeout_s)
        )
    except (av.FFmpegError, OSError) as exc:
        raise SourceError(f"{camera.id}: cannot open {camera.source}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise SourceError(f"{camera.id}: {camera.source} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            yield from _frames(container, stream, camera.realtime)
        except av.FFmpegError as exc:
            raise SourceError(f"{camera.id}: stream failed: {exc}") from exc


def _frames(
    container: av.container.InputContainer, stream: av.VideoStream, realtime: bool
) -> Iterator[DecodedFrame]:
    start_wall = time.monotonic()
    first_pts: float | None = None
    for frame in container.decode(stream):
        if frame.pts is None or frame.time is None:
            continue  # undecodable timing: no honest capture time, skip the frame
        t = float(frame.time)
        first_pts = t if first_pts is None else first_pts
        offset = t - first_pts
        if realtime:
            delay = offset - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
        yield DecodedFrame(offset, frame)
