"""Open camera sources with PyAV and yield decoded frames with their stream time."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import av
import numpy as np

from citycam.cameras import Camera

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD_PACKETS = 100  # a decoder refusing this many in a row needs a fresh start


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
    camera: Camera,
    open_timeout_s: float,
    read_timeout_s: float,
    on_decode_error: Callable[[], None] = lambda: None,
) -> Iterator[DecodedFrame]:
    """Decode the camera's first video stream; raise SourceError on open or read failure.

    A packet the decoder refuses, a frame it flags as corrupt (error-concealed) and a frame
    without a timestamp are each reported through `on_decode_error`; decoding goes on (a
    corrupt frame is still yielded: concealment usually leaves it usable). Only a run of
    MAX_CONSECUTIVE_BAD_PACKETS refused packets ends the session, so that a reconnect can
    reset a decoder that lost its footing.
    """
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
            yield from _frames(container, stream, camera, on_decode_error)
        except av.FFmpegError as exc:
            raise SourceError(f"{camera.id}: stream failed: {exc}") from exc


def _frames(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    camera: Camera,
    on_decode_error: Callable[[], None],
) -> Iterator[DecodedFrame]:
    start_wall = time.monotonic()
    first_pts: float | None = None
    for frame in _decoded(container, stream, camera.id, on_decode_error):
        untimed = frame.pts is None or frame.time is None
        if untimed or frame.is_corrupt:
            on_decode_error()
        if untimed:
            continue  # undecodable timing: no honest capture time, skip the frame
        t = float(frame.time)
        first_pts = t if first_pts is None else first_pts
        offset = t - first_pts
        if camera.realtime:
            delay = offset - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
        yield DecodedFrame(offset, frame)


def _decoded(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    camera_id: str,
    on_decode_error: Callable[[], None],
) -> Iterator[av.VideoFrame]:
    """Demux and decode packet by packet: a refused packet is counted and skipped.

    `container.decode()` would raise on the first bad packet and end the session (a damaged
    file would then replay its first part forever). Demuxing errors (I/O, a dropped
    connection) still raise.
    """
    bad_in_a_row = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError as exc:
            on_decode_error()
            bad_in_a_row += 1
            if bad_in_a_row >= MAX_CONSECUTIVE_BAD_PACKETS:
                raise SourceError(
                    f"{camera_id}: stream failed: {bad_in_a_row} packets in a row did not decode "
                    f"({exc})"
                ) from exc
            continue
        bad_in_a_row = 0
        yield from frames
