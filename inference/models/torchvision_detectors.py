"""torchvision detection architectures with weights from a local state_dict file.

Nothing is downloaded: the architecture is built with ``weights=None, weights_backbone=None``
and the file must hold a state_dict for exactly that architecture and class count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv
import torch
from torch import nn

from inference.detector import detections_to_host, file_sha256, images_to_device
from inference.torchvision_ops import ensure_torchvision_ops


def detection_architectures() -> list[str]:
    """Names accepted by :func:`build_architecture` (torchvision's detection model registry)."""
    ensure_torchvision_ops()
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models.detection))


def category_names(architecture: str) -> list[str]:
    """Class names indexed by label, from torchvision's weight metadata (COCO: 91 entries)."""
    ensure_torchvision_ops()
    import torchvision

    weights = torchvision.models.get_model_weights(architecture)
    return list(next(iter(weights)).meta["categories"])


def build_architecture(architecture: str) -> nn.Module:
    """The architecture, randomly initialised, without downloading anything."""
    known = detection_architectures()
    if architecture not in known:
        raise ValueError(
            f"unknown torchvision detection architecture {architecture!r}; "
            f"known: {', '.join(known)}"
        )
    import torchvision

    return torchvision.models.get_model(architecture, weights=None, weights_backbone=None)


def load_weights(model: nn.Module, architecture: str, weights_path: Path) -> None:
    """Load a local state_dict, failing with a message that names the file and the problem."""
    if not weights_path.is_file():
        raise FileNotFoundError(f"weights file for {architecture} not found: {weights_path}")
    try:
        state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors all mean "not a state_dict file"
        raise ValueError(f"{weights_path} is not a readable torch state_dict: {error}") from error
    if not isinstance(state_dict, dict):
        raise ValueError(f"{weights_path} holds a {type(state_dict).__name__}, not a state_dict")
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise ValueError(f"{weights_path} does not fit {architecture}: {error}") from error


def _lower_score_threshold(model: nn.Module, score_threshold: float) -> None:
    """Let the model keep boxes down to our threshold (R-CNNs hold it in roi_heads)."""
    holder: Any = getattr(model, "roi_heads", model)
    if isinstance(getattr(holder, "score_thresh", None), float | int):
        holder.score_thresh = min(holder.score_thresh, score_threshold)


class TorchvisionDetector:
    """:class:`inference.detector.Detector` over a torchvision detection model."""

    def __init__(
        self,
        architecture: str,
        model: nn.Module,
        version: str,
        device: torch.device,
        score_threshold: float = 0.3,
    ) -> None:
        self.name = architecture
        self.version = version
        self.device = device
        self.score_threshold = score_threshold
        self.category_names = category_names(architecture)
        _lower_score_threshold(model, score_threshold)
        self.model = model.to(device).eval()

    @classmethod
    def from_weights_file(
        cls,
        architecture: str,
        weights_path: Path,
        *,
        device: torch.device | None = None,
        score_threshold: float = 0.3,
    ) -> TorchvisionDetector:
        model = build_architecture(architecture)
        load_weights(model, architecture, weights_path)
        version = f"{weights_path.name}@sha256:{file_sha256(weights_path)[:12]}"
        return cls(architecture, model, version, device or torch.device("cpu"), score_threshold)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not images:
            return []
        with torch.inference_mode():
            frames = [
                f.permute(2, 0, 1).float() / 255.0 for f in images_to_device(images, self.device)
            ]
            outputs = self.model(frames)  # boxes come back in each input image's pixels
            per_image = []
            for output in outputs:
                keep = output["scores"] > self.score_threshold
                per_image.append(
                    (output["boxes"][keep], output["scores"][keep], output["labels"][keep])
                )
            return detections_to_host(per_image, self.category_names)
