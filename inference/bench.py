"""Inference benchmark: decode + detect + track (+ line counting) on real footage, per core.

    python -m inference.bench [--camera hue-le-loi-01] [--device auto] [--out results.json]

One process, one torch thread (so figures are per CPU core; on CUDA the detector runs on the
GPU and the rest on one core). The demo camera's clip is decoded with PyAV, sampled at the
camera's rate, run through the detector, the tracker and the camera's counting lines, each
stage timed on its own. Reported:

- frames per second per core end to end, and each stage's share of the time;
- tracker + counting time as a ratio of detector time;
- the detector's own overhead: `detect()` (resize, forward, box selection, transfer) against
  the raw model forward on the same, already resized, batch (the baseline);
- decoding against a raw PyAV decode of the same file without sampling or conversion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from citycam.cameras import Camera, load_cameras
from citycam.config import InferenceSettings
from inference.detector import Detector, load_detector, select_device
from inference.tracking import UNTRACKED, CameraTrackers
from ingest.sampler import FrameSampler
from streams.geometry import LineCounter, anchors

DEMO_REGISTRY = Path(__file__).parents[1] / "citycam" / "demo" / "cameras.yaml"


@dataclass
class StageTimes:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started


def raw_decode_s(path: Path) -> tuple[float, int]:
    """The baseline for decoding: every frame through PyAV, nothing else."""
    started = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = sum(1 for _ in container.decode(stream))
    return time.perf_counter() - started, frames


def sampled_images(camera: Camera, times: StageTimes) -> list[tuple[float, np.ndarray]]:
    """Decode the clip and keep frames at the camera's sample rate, as RGB arrays."""
    assert camera.source_path is not None
    sampler = FrameSampler(camera.sample_fps)
    kept: list[tuple[float, np.ndarray]] = []

    def decode() -> None:
        with av.open(str(camera.source_path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if frame.time is not None and sampler.take(float(frame.time)):
                    kept.append((float(frame.time), frame.to_ndarray(format="rgb24")))

    with times.stage("decode"):
        decode()
    return kept


def raw_forward_s(detector: Detector, images: list[np.ndarray], batch_size: int) -> float:
    """The baseline for detection: the model's forward alone on pre-resized batches."""
    from inference.detector import images_to_device
    from inference.models.ssd_mobilenet_v2 import INPUT_SIZE, resize_bilinear_tf_legacy

    model = getattr(detector, "model", None)
    if model is None:
        raise SystemExit("the raw-forward baseline is measured for the default detector only")
    device = getattr(detector, "device", torch.device("cpu"))
    with torch.inference_mode():
        batches = [
            torch.stack(
                [
                    resize_bilinear_tf_legacy(f, INPUT_SIZE, INPUT_SIZE)
                    for f in images_to_device(images[i : i + batch_size], device)
                ]
            )
            for i in range(0, len(images), batch_size)
        ]
        model(batches[0])  # warm-up
        synchronize(device)
        started = time.perf_counter()
        for batch in batches:
            model(batch)
        synchronize(device)
    return time.perf_counter() - started


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(camera: Camera, device: torch.device, batch_size: int) -> dict[str, Any]:
    times = StageTimes()
    frames = sampled_images(camera, times)
    images = [image for _, image in frames]
    detector = load_detector(device=device)
    detector.detect(images[:1])  # warm-up: first-call allocations are not throughput
    synchronize(device)
    trackers = CameraTrackers(InferenceSettings())
    geometry = camera.geometry.scaled(images[0].shape[1::-1]) if camera.geometry else None
    counters = [LineCounter(line) for line in geometry.lines] if geometry else []
    start = datetime(2026, 1, 1, tzinfo=UTC)
    boxes = 0
    for i in range(0, len(frames), batch_size):
        chunk = frames[i : i + batch_size]
        with times.stage("detect"):
            found = detector.detect([image for _, image in chunk])
            synchronize(device)
        for (t, _), dets in zip(chunk, found, strict=True):
            boxes += len(dets)
            with times.stage("track"):
                tracked = trackers.update(camera.id, start + timedelta(seconds=t), dets)
            with times.stage("count"):
                count(counters, tracked)
    total = sum(times.seconds.values())
    raw_forward = raw_forward_s(detector, images, batch_size)
    raw_decode, decoded = raw_decode_s(camera.source_path)  # type: ignore[arg-type]
    return {
        "camera": camera.id,
        "clip": camera.source_path.name if camera.source_path else camera.source,
        "frames_decoded": decoded,
        "frames_sampled": len(frames),
        "sample_fps": camera.sample_fps,
        "boxes": boxes,
        "crossings": {line.line.id: line.counts for line in counters},
        "seconds": {stage: round(s, 3) for stage, s in times.seconds.items()},
        "share": {stage: round(s / total, 3) for stage, s in times.seconds.items()},
        "fps_per_core": round(len(frames) / total, 2),
        "detect_ms_per_frame": round(times.seconds["detect"] / len(frames) * 1000, 1),
        "track_and_count_over_detect": round(
            (times.seconds["track"] + times.seconds["count"]) / times.seconds["detect"], 4
        ),
        "baselines": {
            "raw_forward_s": round(raw_forward, 3),
            "detect_over_raw_forward": round(times.seconds["detect"] / raw_forward, 3),
            "raw_decode_s": round(raw_decode, 3),
            "decode_over_raw_decode": round(times.seconds["decode"] / raw_decode, 3),
        },
    }


def count(counters: list[LineCounter], tracked: Any) -> None:
    points = anchors(tracked.xyxy)
    for track_id, point in zip(tracked.tracker_id, points, strict=True):
        if track_id != UNTRACKED:
            for counter in counters:
                counter.update(int(track_id), point)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", type=Path, default=DEMO_REGISTRY)
    parser.add_argument("--camera", action="append", help="camera id (default: all enabled)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=InferenceSettings().batch_size)
    parser.add_argument("--out", type=Path, default=Path(".data/bench/inference.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("CITYCAM_FOOTAGE_DIR", str(Path(".data/footage").resolve()))  # as the CLI
    torch.set_num_threads(1)  # figures per core
    device = select_device(args.device)
    registry = load_cameras(args.registry)
    cameras = [registry.get(c) for c in args.camera] if args.camera else list(registry.enabled)
    runs = []
    for camera in cameras:
        result = run(camera, device, args.batch_size)
        print(
            f"{camera.id}: {result['fps_per_core']} frames/s per core, shares {result['share']}, "
            f"track+count / detect {result['track_and_count_over_detect']}, "
            f"detect / raw forward {result['baselines']['detect_over_raw_forward']}"
        )
        runs.append(result)
    results = {
        "benchmark": "inference",
        "environment": {
            "device": str(device),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
