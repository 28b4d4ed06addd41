"""The detector interface of the inference stage and the factory that builds detectors by spec."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import supervision as sv
import torch

DEFAULT_SPEC = "ssd_mobilenet_v2_coco"
SPEC_FORMS = (
    f"'{DEFAULT_SPEC}' (TF model-zoo SSD-MobileNetV2 COCO, bundled weights)",
    "'torchvision:<architecture>:<path/to/state_dict.pth>' (local weights file)",
)


@runtime_checkable
class Detector(Protocol):
    """Finds objects in RGB frames.

    ``detect`` takes HxWx3 uint8 RGB images (sizes may differ) and returns, per image, a
    ``supervision.Detections`` with ``xyxy`` (float32, that image's pixels), ``confidence``,
    ``class_id`` (int) and ``data["class_name"]`` (array of str).
    """

    name: str
    version: str
    device: torch.device

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]: ...


def select_device(preference: str = "auto") -> torch.device:
    """``"auto"``: CUDA when there is a GPU, else CPU; or explicitly ``"cpu"`` / ``"cuda[:n]"``."""
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(preference)
    except RuntimeError as error:
        raise ValueError(f"unknown device {preference!r}: use auto, cpu or cuda[:n]") from error
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"unsupported device {preference!r}: use auto, cpu or cuda[:n]")
    if not torch.cuda.is_available():
        raise RuntimeError(f"device {preference!r} requested but CUDA is not available here")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"device {preference!r} requested but only {torch.cuda.device_count()} "
            "CUDA device(s) exist"
        )
    return device


def load_detector(
    spec: str = DEFAULT_SPEC,
    *,
    device: torch.device | None = None,
    score_threshold: float = 0.3,
) -> Detector:
    """Build the detector named by ``spec`` (see ``SPEC_FORMS``) on ``device`` (default: auto)."""
    device = device if device is not None else select_device()
    if spec == DEFAULT_SPEC:
        from inference.models.ssd_mobilenet_v2 import SSDMobileNetV2Detector

        return SSDMobileNetV2Detector.from_frozen_graph(
            device=device, score_threshold=score_threshold
        )
    kind, _, rest = spec.partition(":")
    architecture, _, weights = rest.partition(":")
    if kind == "torchvision" and architecture and weights:
        from inference.models.torchvision_detectors import TorchvisionDetector

        return TorchvisionDetector.from_weights_file(
            architecture, Path(weights), device=device, score_threshold=score_threshold
        )
    raise ValueError(f"unknown detector spec {spec!r}; valid forms: " + ", ".join(SPEC_FORMS))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_images(images: Sequence[np.ndarray]) -> None:
    for index, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f"image {index}: expected HxWx3 uint8 RGB, got {image.shape} {image.dtype}"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"image {index} is empty: {image.shape}")


def images_to_device(images: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """HxWx3 uint8 tensors on ``device``, moved in one host-to-device copy for the whole batch."""
    check_images(images)
    flat = torch.from_numpy(np.concatenate([np.ascontiguousarray(i).reshape(-1) for i in images]))
    if device.type == "cuda":
        flat = flat.pin_memory().to(device, non_blocking=True)
    else:
        flat = flat.to(device)
    sizes = [image.size for image in images]
    return [part.view(image.shape) for part, image in zip(flat.split(sizes), images, strict=True)]


def detections_to_host(
    per_image: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    category_names: Sequence[str],
) -> list[sv.Detections]:
    """``(xyxy, scores, labels)`` per image on any device -> Detections, in one device-to-host copy.

    ``labels`` index ``category_names``.
    """
    if not per_image:
        return []
    packed = (
        torch.cat(
            [
                torch.cat([xyxy.float(), scores.float()[:, None], labels.float()[:, None]], dim=1)
                for xyxy, scores, labels in per_image
            ]
        )
        .cpu()
        .numpy()
    )
    counts = [len(scores) for _, scores, _ in per_image]
    names = np.asarray(category_names, dtype=str)
    results = []
    for rows in np.split(packed, np.cumsum(counts)[:-1]):
        class_id = rows[:, 5].astype(int)
        results.append(
            sv.Detections(
                xyxy=rows[:, :4].astype(np.float32),
                confidence=rows[:, 4].astype(np.float32),
                class_id=class_id,
                data={"class_name": names[class_id]},
            )
        )
    return results
