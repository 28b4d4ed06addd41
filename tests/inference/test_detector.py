"""The detector factory: specs and devices."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from inference.detector import Detector, load_detector, select_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


def test_default_spec_is_the_ported_ssd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CITYCAM_CACHE_DIR", str(tmp_path))
    detector = load_detector(device=torch.device("cpu"))
    assert isinstance(detector, Detector)
    assert (detector.name, detector.version) == ("ssd_mobilenet_v2_coco", "tf-2018_03_29")
    assert detector.device == torch.device("cpu")
    assert list(tmp_path.glob("ssd_mobilenet_v2_coco/*.pt"))  # converted once, then cached


@pytest.mark.parametrize(
    "spec",
    [
        "yolo",
        "torchvision",
        "torchvision:fasterrcnn_resnet50_fpn",
        "torchvision::w.pth",
        "onnx:model:w.onnx",
    ],
)
def test_unknown_spec_lists_the_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"valid forms: 'ssd_mobilenet_v2_coco'.*torchvision:<"):
        load_detector(spec, device=torch.device("cpu"))


def test_cpu_is_always_available() -> None:
    assert select_device("cpu") == torch.device("cpu")


@no_cuda
def test_auto_falls_back_to_cpu_and_cuda_is_refused() -> None:
    assert select_device("auto") == torch.device("cpu")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        select_device("cuda:0")


@pytest.mark.parametrize("preference", ["tpu", "gpu please", "mps"])
def test_unsupported_device_names_are_refused(preference: str) -> None:
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        select_device(preference)
