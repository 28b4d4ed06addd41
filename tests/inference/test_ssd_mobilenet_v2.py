"""The torch port of TF's ssd_mobilenet_v2_coco, checked against the frozen graph itself,
against OpenCV's independent TF importer, and on real footage."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import supervision as sv
import torch

from inference.detector import file_sha256
from inference.models import ssd_mobilenet_v2 as ssd
from inference.torchvision_ops import ensure_torchvision_ops
from tests.inference.helpers import FrameReader, columns

VTEST, BIKES = "vtest.avi", "bikes.mp4"


@pytest.fixture(scope="module")
def graph() -> ssd.GraphConstants:
    return ssd.GraphConstants(ssd.default_graph_path())


@pytest.fixture(scope="module")
def detector() -> ssd.SSDMobileNetV2Detector:
    return ssd.SSDMobileNetV2Detector.from_frozen_graph(use_cache=False, score_threshold=0.3)


# --- a tiny evaluator for the graph's constant-only subgraphs --------------------------------


def evaluate_node(
    graph: ssd.GraphConstants, name: str, memo: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """Value of a node whose inputs are all constants, by TF semantics (float32 stays float32)."""
    memo = {} if memo is None else memo
    if name in memo:
        return memo[name]
    node = graph.nodes[name]
    inputs = [
        evaluate_node(graph, i.split(":")[0], memo) for i in node.input if not i.startswith("^")
    ]
    memo[name] = _apply_op(graph, node, inputs)
    return memo[name]


def _apply_op(graph: ssd.GraphConstants, node: object, inputs: list[np.ndarray]) -> np.ndarray:
    op, attr = node.op, node.attr  # type: ignore[attr-defined]
    binary = {
        "Mul": np.multiply,
        "Add": np.add,
        "Sub": np.subtract,
        "RealDiv": np.divide,
        "Minimum": np.minimum,
        "Equal": np.equal,
    }
    if op == "Const":
        return graph.array(node.name)  # type: ignore[attr-defined]
    if op in binary:
        return binary[op](inputs[0], inputs[1])
    if op in ("Identity", "Assert", "All"):
        return inputs[0] if op == "Identity" else np.array(True)
    if op == "Cast":
        return inputs[0].astype({1: np.float32, 3: np.int32}[attr["DstT"].type])
    if op == "Sqrt":
        return np.sqrt(inputs[0])
    if op == "Reshape":
        return inputs[0].reshape(inputs[1])
    if op == "ExpandDims":
        return np.expand_dims(inputs[0], int(inputs[1]))
    if op == "Tile":
        return np.tile(inputs[0], inputs[1])
    if op == "Fill":
        return np.full(inputs[0], inputs[1])
    if op == "Range":
        return np.arange(
            inputs[0].item(), inputs[1].item(), inputs[2].item(), dtype=inputs[0].dtype
        )
    if op == "Pack":
        return np.stack(inputs, axis=attr["axis"].i)
    if op == "ConcatV2":
        return np.concatenate(inputs[:-1], axis=int(inputs[-1]))
    if op == "Slice":
        begin, size = inputs[1], inputs[2]
        return inputs[0][
            tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size, strict=True))
        ]
    if op == "StridedSlice" and attr["shrink_axis_mask"].i == 1 and len(inputs[1]) == 1:
        return inputs[0][int(inputs[1][0])]
    raise NotImplementedError(f"{op} ({node.name})")  # type: ignore[attr-defined]


# --- the graph ---------------------------------------------------------------------------------


def test_anchors_match_the_graphs_anchor_generator(graph: ssd.GraphConstants) -> None:
    from_graph = evaluate_node(graph, "Concatenate/concat")
    ours = ssd.ssd_anchors(ssd.feature_map_sizes(ssd.INPUT_SIZE)).numpy()
    assert ssd.feature_map_sizes(ssd.INPUT_SIZE) == [19, 10, 5, 3, 2, 1]
    assert ours.shape == from_graph.shape == (1917, 4)
    np.testing.assert_allclose(ours, from_graph, atol=2e-6)


def test_graph_uses_the_settings_the_port_assumes(graph: ssd.GraphConstants) -> None:
    assert graph.array("Preprocessor/map/while/ResizeImage/stack").tolist() == [300, 300]
    resize = graph.nodes["Preprocessor/map/while/ResizeImage/ResizeBilinear"]
    assert not resize.attr["align_corners"].b and "half_pixel_centers" not in resize.attr
    assert graph.scalar("Preprocessor/mul/x") == pytest.approx(2 / 255)
    assert graph.scalar("Preprocessor/sub/y") == 1.0
    decode_divisors = [
        graph.scalar(f"Postprocessor/Decode/div{s}/y") for s in ("", "_1", "_2", "_3")
    ]
    assert tuple(decode_divisors) == ssd.BOX_CODER_SCALES
    assert graph.scalar("Postprocessor/scale_logits/y") == 1.0
    assert graph.nodes["Postprocessor/convert_scores"].op == "Sigmoid"
    assert graph.array("Postprocessor/Slice/begin").tolist() == [0, 0, 1]  # drop background
    nms_scope = (
        "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression"
    )
    iou = {
        float(graph.array(n))
        for n in graph.nodes
        if n.startswith(nms_scope) and n.endswith("non_max_suppression/iou_threshold")
    }
    assert len(iou) == 1 and iou.pop() == pytest.approx(ssd.NMS_IOU_THRESHOLD)
    assert graph.scalar(f"{nms_scope}/Minimum/x") == ssd.MAX_DETECTIONS_PER_CLASS


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding"),
    [
        (300, 3, 2, (0, 1)),
        (19, 3, 2, (1, 1)),
        (10, 3, 2, (0, 1)),
        (2, 3, 2, (0, 1)),
        (150, 3, 1, (1, 1)),
        (1, 3, 1, (1, 1)),
        (19, 1, 1, (0, 0)),
    ],
)
def test_tf_same_padding(size: int, kernel: int, stride: int, padding: tuple[int, int]) -> None:
    assert ssd.tf_same_padding(size, kernel, stride) == padding


def reference_tf1_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """TF1 ``resize_bilinear(align_corners=False)``: source = destination * in / out."""
    in_h, in_w = image.shape[:2]
    scale_y, scale_x = np.float32(in_h / height), np.float32(in_w / width)
    out = np.zeros((3, height, width), dtype=np.float64)
    for y in range(height):
        source_y = float(np.float32(y) * scale_y)
        y0 = math.floor(source_y)
        y1, ly = min(y0 + 1, in_h - 1), source_y - y0
        for x in range(width):
            source_x = float(np.float32(x) * scale_x)
            x0 = math.floor(source_x)
            x1, lx = min(x0 + 1, in_w - 1), source_x - x0
            top = image[y0, x0] + (image[y0, x1] - image[y0, x0]) * lx
            bottom = image[y1, x0] + (image[y1, x1] - image[y1, x0]) * lx
            out[:, y, x] = top + (bottom - top) * ly
    return out


@pytest.mark.parametrize(
    ("in_size", "out_size"), [((13, 17), (5, 7)), ((4, 6), (9, 11)), ((576, 768), (30, 30))]
)
def test_resize_follows_tf1_legacy_bilinear(
    in_size: tuple[int, int], out_size: tuple[int, int]
) -> None:
    image = np.random.default_rng(1).integers(0, 256, (*in_size, 3), dtype=np.uint8)
    got = ssd.resize_bilinear_tf_legacy(torch.from_numpy(image), *out_size)
    expected = reference_tf1_resize(image.astype(np.float64), *out_size)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-3)


def test_resize_by_two_takes_every_other_pixel() -> None:
    """TF1 has no half-pixel centres: halving samples pixels 0, 2, 4, ... exactly."""
    image = np.random.default_rng(2).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    got = ssd.resize_bilinear_tf_legacy(torch.from_numpy(image), 4, 3)
    np.testing.assert_array_equal(got.numpy(), image[::2, ::2].transpose(2, 0, 1))


def test_label_map_agrees_with_torchvisions_coco_list() -> None:
    ensure_torchvision_ops()
    import torchvision

    weights = torchvision.models.get_model_weights("ssd300_vgg16")
    torchvision_names = next(iter(weights)).meta["categories"]
    assert list(ssd.CATEGORY_NAMES[1:]) == list(torchvision_names[1:])
    assert len(ssd.COCO_LABELS) == 80


# --- whole model ------------------------------------------------------------------------------


def frames_300(reader: FrameReader) -> list[np.ndarray]:
    frames = reader(VTEST, [0, 100]) + reader(BIKES, [60, 120])
    return [cv2.resize(f, (300, 300), interpolation=cv2.INTER_AREA) for f in frames]


def test_matches_opencv_dnn_on_real_frames(
    detector: ssd.SSDMobileNetV2Detector, footage_frames: FrameReader
) -> None:
    """OpenCV reads the same frozen graph with its own importer, anchors and NMS.

    Frames are 300x300 already so neither side resizes. OpenCV does not clip boxes to the
    image as TF's postprocessor does, so its boxes are clipped here.
    """
    models = ssd.default_graph_path().parent
    net = cv2.dnn.readNetFromTensorflow(
        str(models / "frozen_inference_graph.pb"),
        str(models / "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"),
    )
    for frame in frames_300(footage_frames):
        xyxy, confidence, class_ids, _ = columns(detector.detect([frame])[0])
        net.setInput(cv2.dnn.blobFromImage(frame, 1.0, (300, 300), swapRB=False))
        theirs = net.forward()[0, 0]
        theirs = theirs[theirs[:, 2] > detector.score_threshold]
        assert len(xyxy) == len(theirs) > 0
        for box, score, class_id in zip(xyxy, confidence, class_ids, strict=True):
            same_class = theirs[theirs[:, 1] == class_id]
            assert len(same_class), f"OpenCV has no class {class_id}"
            ious = sv.box_iou_batch(box[None], same_class[:, 3:7].clip(0, 1) * 300)[0]
            best = same_class[ious.argmax()]
            assert ious.max() > 0.995
            assert score == pytest.approx(best[2], abs=2e-3)


def test_finds_people_in_vtest(
    detector: ssd.SSDMobileNetV2Detector, footage_frames: FrameReader
) -> None:
    for frame in footage_frames(VTEST, [0, 100, 400]):
        xyxy, confidence, class_id, class_name = columns(detector.detect([frame])[0])
        height, width = frame.shape[:2]
        assert xyxy.dtype == np.float32
        assert np.issubdtype(class_id.dtype, np.integer)
        assert class_name.dtype.kind == "U"
        assert np.all(confidence > detector.score_threshold)
        assert np.all(xyxy >= 0)
        assert np.all(xyxy[:, [0, 2]] <= width) and np.all(xyxy[:, [1, 3]] <= height)
        assert np.all(xyxy[:, 2:] > xyxy[:, :2])
        people = (class_name == "person") & (confidence > 0.5)
        assert people.sum() >= 3
        assert np.all(class_id[people] == 1)


def test_finds_vehicles_in_bikes(
    detector: ssd.SSDMobileNetV2Detector, footage_frames: FrameReader
) -> None:
    for frame in footage_frames(BIKES, [60, 120]):
        class_name = columns(detector.detect([frame])[0])[3]
        assert {"car", "bicycle"} & set(class_name.tolist())


def test_batch_gives_the_same_as_one_by_one(
    detector: ssd.SSDMobileNetV2Detector, footage_frames: FrameReader
) -> None:
    frames = footage_frames(VTEST, [0]) + footage_frames(BIKES, [120]) + footage_frames(VTEST, [50])
    batched = detector.detect(frames)
    assert len(batched) == len(frames)
    for frame, together in zip(frames, batched, strict=True):
        alone = columns(detector.detect([frame])[0])
        together_columns = columns(together)
        np.testing.assert_array_equal(together_columns[2], alone[2])
        np.testing.assert_allclose(together_columns[0], alone[0], atol=0.05)
        np.testing.assert_allclose(together_columns[1], alone[1], atol=1e-4)


def test_score_threshold_and_input_checks(
    detector: ssd.SSDMobileNetV2Detector, footage_frames: FrameReader
) -> None:
    frame = footage_frames(VTEST, [0])[0]
    strict = ssd.SSDMobileNetV2Detector(detector.model, detector.device, score_threshold=0.8)
    assert len(strict.detect([frame])[0]) < len(detector.detect([frame])[0])
    assert detector.detect([]) == []
    with pytest.raises(ValueError, match="uint8"):
        detector.detect([frame.astype(np.float32)])
    with pytest.raises(ValueError, match="HxWx3"):
        detector.detect([frame[..., 0]])


# --- conversion cache -------------------------------------------------------------------------


def test_cache_is_keyed_by_sha256_and_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    graph_path = ssd.default_graph_path()
    converted = ssd.load_state_dict(graph_path, tmp_path)
    cache_file = tmp_path / ssd.NAME / f"{file_sha256(graph_path)}-v{ssd.CONVERSION_VERSION}.pt"
    assert cache_file.is_file()

    def no_conversion(path: Path) -> dict[str, torch.Tensor]:
        raise AssertionError("converted although the cache holds the weights")

    monkeypatch.setattr(ssd, "convert_frozen_graph", no_conversion)
    cached = ssd.load_state_dict(graph_path, tmp_path)
    assert cached.keys() == converted.keys()
    assert all(torch.equal(cached[k], converted[k]) for k in converted)


def test_unreadable_cache_is_replaced(tmp_path: Path) -> None:
    graph_path = ssd.default_graph_path()
    cache_file = tmp_path / ssd.NAME / f"{file_sha256(graph_path)}-v{ssd.CONVERSION_VERSION}.pt"
    cache_file.parent.mkdir(parents=True)
    cache_file.write_bytes(b"torn write")
    state_dict = ssd.load_state_dict(graph_path, tmp_path)
    assert torch.equal(
        torch.load(cache_file, weights_only=True)["input_scale"], state_dict["input_scale"]
    )


def test_cache_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITYCAM_CACHE_DIR", str(tmp_path))
    assert ssd.default_cache_dir() == tmp_path
    monkeypatch.delenv("CITYCAM_CACHE_DIR")
    assert ssd.default_cache_dir() == Path.home() / ".cache" / "citycam"
