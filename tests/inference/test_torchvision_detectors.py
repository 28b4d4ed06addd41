"""torchvision detectors built by name with weights from a local file.

No pretrained torchvision weights can be fetched here, so the models are randomly initialised:
these tests check loading, batching, types and coordinates, not detection accuracy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from inference.detector import Detector, load_detector
from inference.models.torchvision_detectors import (
    TorchvisionDetector,
    build_architecture,
    category_names,
)
from tests.inference.helpers import FrameReader, columns

FAST_ARCHITECTURES = ["fasterrcnn_mobilenet_v3_large_320_fpn", "ssdlite320_mobilenet_v3_large"]


def save_random_weights(architecture: str, path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state_dict = build_architecture(architecture).state_dict()
    torch.save(state_dict, path)
    return state_dict


@pytest.mark.parametrize("architecture", FAST_ARCHITECTURES)
def test_local_weights_load_and_detect_on_real_frames(
    architecture: str,
    tmp_path: Path,
    footage_frames: FrameReader,
) -> None:
    """Random weights, so only the plumbing is checked: scores are meaningless."""
    weights = tmp_path / "weights.pth"
    saved = save_random_weights(architecture, weights)
    detector = load_detector(
        f"torchvision:{architecture}:{weights}", device=torch.device("cpu"), score_threshold=0.0
    )
    assert isinstance(detector, Detector) and isinstance(detector, TorchvisionDetector)
    assert detector.name == architecture and detector.version.startswith("weights.pth@sha256:")
    loaded = detector.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in saved.items())

    frames = footage_frames("vtest.avi", [0]) + footage_frames("bikes.mp4", [60])
    results = detector.detect(frames)
    assert len(results) == 2
    names = np.array(category_names(architecture))
    for frame, detections in zip(frames, results, strict=True):
        height, width = frame.shape[:2]
        xyxy, _, class_id, class_name = columns(detections)
        assert len(xyxy) > 0  # threshold 0: a random model still proposes boxes
        assert xyxy.dtype == np.float32 and xyxy.shape[1] == 4
        assert np.issubdtype(class_id.dtype, np.integer)
        assert np.all(xyxy >= 0)
        assert np.all(xyxy[:, [0, 2]] <= width) and np.all(xyxy[:, [1, 3]] <= height)
        np.testing.assert_array_equal(class_name, names[class_id])


def test_detect_matches_the_bare_model(tmp_path: Path, footage_frames: FrameReader) -> None:
    architecture = FAST_ARCHITECTURES[0]
    weights = tmp_path / "weights.pth"
    save_random_weights(architecture, weights)
    detector = TorchvisionDetector.from_weights_file(architecture, weights, score_threshold=0.0)
    frame = footage_frames("bikes.mp4", [120])[0]
    xyxy, confidence, class_id, _ = columns(detector.detect([frame])[0])
    with torch.inference_mode():
        expected = detector.model([torch.from_numpy(frame).permute(2, 0, 1).float() / 255])[0]
    np.testing.assert_allclose(xyxy, expected["boxes"].numpy(), atol=1e-4)
    np.testing.assert_allclose(confidence, expected["scores"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(class_id, expected["labels"].numpy())


@pytest.mark.parametrize("architecture", ["fasterrcnn_resnet50_fpn", "retinanet_resnet50_fpn"])
def test_larger_architectures_build_offline(architecture: str) -> None:
    assert len(build_architecture(architecture).state_dict()) > 100
    assert category_names(architecture)[1] == "person"


def test_missing_weights_file_is_reported(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        load_detector(f"torchvision:{FAST_ARCHITECTURES[0]}:{missing}")


def test_unreadable_weights_file_is_reported(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch state_dict"):
        load_detector(f"torchvision:{FAST_ARCHITECTURES[0]}:{garbage}")


def test_weights_of_another_architecture_are_reported(tmp_path: Path) -> None:
    other = tmp_path / "ssdlite.pth"
    save_random_weights(FAST_ARCHITECTURES[1], other)
    with pytest.raises(ValueError, match="does not fit fasterrcnn_mobilenet_v3_large_320_fpn"):
        load_detector(f"torchvision:{FAST_ARCHITECTURES[0]}:{other}")


def test_unknown_architecture_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"known: .*fasterrcnn_resnet50_fpn"):
        load_detector(f"torchvision:yolo_v99:{tmp_path / 'w.pth'}")
