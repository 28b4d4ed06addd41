"""Shared helpers for the detector tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import supervision as sv

FrameReader = Callable[[str, Sequence[int]], list[np.ndarray]]


def columns(detections: sv.Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """xyxy, confidence, class_id, class_name: all present for our detectors."""
    assert detections.confidence is not None and detections.class_id is not None
    return (
        detections.xyxy,
        detections.confidence,
        detections.class_id,
        np.asarray(detections.data["class_name"]),
    )
