"""torchvision's nms / roi_align through ``ensure_torchvision_ops`` against naive references.

On a machine where torchvision's compiled ops load, the same tests check those instead.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.torchvision_ops import ensure_torchvision_ops

ensure_torchvision_ops()

import torchvision  # noqa: E402  (needs the ops registered first)
from torchvision.ops import RoIAlign, batched_nms, nms, roi_align  # noqa: E402

# --- references: plain loops written from the definitions ------------------------------------


def reference_iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union != 0 else math.nan


def reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy: visit by decreasing score, keep a box unless a kept box overlaps it > threshold.

    The IoU is computed in the boxes' own dtype and compared as a double, as torchvision's
    kernel does: in float32, 9/30 is a little over 0.3 and suppresses at threshold 0.3."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        if all(not float(reference_iou(boxes[i], boxes[k])) > threshold for k in kept):
            kept.append(i)
    return kept


def reference_bilinear(feature: np.ndarray, y: float, x: float) -> float:
    """One sample as RoIAlign defines it: zero beyond one pixel outside, clamped otherwise."""
    height, width = feature.shape
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    return (
        (1 - ly) * (1 - lx) * feature[y_low, x_low]
        + (1 - ly) * lx * feature[y_low, x_high]
        + ly * (1 - lx) * feature[y_high, x_low]
        + ly * lx * feature[y_high, x_high]
    )


def reference_roi_align(
    features: np.ndarray,
    rois: np.ndarray,
    spatial_scale: float,
    pooled: tuple[int, int],
    sampling_ratio: int,
    aligned: bool,
) -> np.ndarray:
    pooled_h, pooled_w = pooled
    out = np.zeros((len(rois), features.shape[1], pooled_h, pooled_w))
    offset = 0.5 if aligned else 0.0
    for k, (batch, x1, y1, x2, y2) in enumerate(rois):
        start_x, start_y = x1 * spatial_scale - offset, y1 * spatial_scale - offset
        roi_w = x2 * spatial_scale - offset - start_x
        roi_h = y2 * spatial_scale - offset - start_y
        if not aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_h, bin_w = roi_h / pooled_h, roi_w / pooled_w
        grid_h = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_h / pooled_h)
        grid_w = sampling_ratio if sampling_ratio > 0 else math.ceil(roi_w / pooled_w)
        count = max(grid_h * grid_w, 1)
        for c in range(features.shape[1]):
            feature = features[int(batch), c]
            for ph in range(pooled_h):
                for pw in range(pooled_w):
                    total = 0.0
                    for iy in range(grid_h):
                        y = start_y + ph * bin_h + (iy + 0.5) * bin_h / grid_h
                        for ix in range(grid_w):
                            x = start_x + pw * bin_w + (ix + 0.5) * bin_w / grid_w
                            total += reference_bilinear(feature, y, x)
                    out[k, c, ph, pw] = total / count
    return out


# --- nms -------------------------------------------------------------------------------------

box_strategy = st.tuples(
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 12),
    st.integers(0, 12),
).map(lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3]))


@settings(max_examples=150, deadline=None)
@given(
    boxes=st.lists(box_strategy, min_size=0, max_size=40),
    threshold=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 1.0]),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    data=st.data(),
)
def test_nms_matches_brute_force(
    boxes: list[tuple[int, int, int, int]],
    threshold: float,
    dtype: torch.dtype,
    data: st.DataObject,
) -> None:
    # Distinct scores: with ties the kept set legitimately depends on the sort.
    order = data.draw(st.permutations(range(len(boxes))))
    scores = np.array(order, dtype=np.float64) / max(len(boxes), 1)
    boxes_t = torch.tensor(boxes, dtype=dtype).reshape(-1, 4)
    kept = nms(boxes_t, torch.tensor(scores, dtype=dtype), threshold)
    assert kept.dtype == torch.int64
    assert kept.tolist() == reference_nms(boxes_t.numpy(), scores, threshold)


@pytest.mark.parametrize(("dtype", "kept"), [(torch.float32, [1]), (torch.float64, [1, 0])])
def test_nms_compares_the_iou_in_the_boxes_dtype(dtype: torch.dtype, kept: list[int]) -> None:
    """IoU 9/30 at threshold 0.3: a hair over it in float32, exactly it in float64 (found by
    the property test above, whose reference once worked in float64 only)."""
    boxes = torch.tensor([[0, 0, 3, 3], [0, 0, 3, 10]], dtype=dtype)
    assert nms(boxes, torch.tensor([0.0, 0.5], dtype=dtype), 0.3).tolist() == kept


@pytest.mark.parametrize("boxes_per_class", [40, 250])  # 250 x 5 takes the per-class path
def test_batched_nms_keeps_classes_apart(boxes_per_class: int) -> None:
    generator = np.random.default_rng(7)
    count = boxes_per_class * 5
    corners = generator.uniform(0, 200, (count, 2))
    boxes = np.concatenate([corners, corners + generator.uniform(5, 60, (count, 2))], axis=1)
    scores = generator.permutation(count) / count
    classes = generator.integers(0, 5, count)
    kept = batched_nms(torch.tensor(boxes), torch.tensor(scores), torch.tensor(classes), 0.5)
    expected = []
    for label in range(5):
        members = np.flatnonzero(classes == label)
        expected += [members[i] for i in reference_nms(boxes[members], scores[members], 0.5)]
    assert kept.tolist() == sorted(expected, key=lambda i: -scores[i])


def test_nms_of_nothing_and_of_bad_shapes() -> None:
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).shape == (0,)
    with pytest.raises(RuntimeError, match="4 elements"):
        nms(torch.zeros(3, 5), torch.zeros(3), 0.5)
    with pytest.raises(RuntimeError, match="same number"):
        nms(torch.zeros(3, 4), torch.zeros(2), 0.5)


# --- roi_align -------------------------------------------------------------------------------

HEIGHT, WIDTH = 7, 9

# Inside, touching the right/bottom border, straddling every border, beyond the one-pixel
# margin, degenerate and reversed: in input coordinates before spatial_scale.
BORDER_ROIS = [
    [0, 1.0, 1.0, 5.0, 4.0],
    [1, 0.0, 0.0, WIDTH, HEIGHT],
    [0, WIDTH - 2.5, HEIGHT - 1.5, WIDTH, HEIGHT],
    [1, -3.0, -2.0, WIDTH + 4.0, HEIGHT + 3.0],
    [0, -6.0, 2.0, 0.5, 3.0],
    [1, WIDTH + 0.5, HEIGHT - 3.0, WIDTH + 5.0, HEIGHT + 2.0],
    [0, 3.3, 2.2, 3.3, 2.2],
    [1, 6.0, 5.0, 2.0, 1.0],
    [0, 0.25, 5.75, 8.9, 6.99],
]


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 0, 1, 2, 3])
@pytest.mark.parametrize(("spatial_scale", "pooled"), [(1.0, (2, 3)), (0.5, (3, 3)), (2.0, (1, 2))])
def test_roi_align_matches_reference_at_borders(
    aligned: bool,
    sampling_ratio: int,
    spatial_scale: float,
    pooled: tuple[int, int],
) -> None:
    features = np.random.default_rng(3).normal(size=(2, 3, HEIGHT, WIDTH))
    rois = np.array(BORDER_ROIS) * np.array([1, *[1 / spatial_scale] * 4])
    got = roi_align(
        torch.tensor(features), torch.tensor(rois), pooled, spatial_scale, sampling_ratio, aligned
    )
    expected = reference_roi_align(features, rois, spatial_scale, pooled, sampling_ratio, aligned)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    corners=st.lists(st.tuples(*[st.floats(-4.0, 12.0)] * 4), min_size=1, max_size=6),
    sampling_ratio=st.integers(-1, 3),
    aligned=st.booleans(),
    pooled=st.tuples(st.integers(1, 4), st.integers(1, 4)),
)
def test_roi_align_matches_reference_for_random_boxes(
    corners: list[tuple[float, float, float, float]],
    sampling_ratio: int,
    aligned: bool,
    pooled: tuple[int, int],
) -> None:
    features = np.random.default_rng(len(corners)).normal(size=(1, 2, HEIGHT, WIDTH))
    rois = np.array([[0, *c] for c in corners])
    got = roi_align(
        torch.tensor(features), torch.tensor(rois), pooled, 1.0, sampling_ratio, aligned
    )
    expected = reference_roi_align(features, rois, 1.0, pooled, sampling_ratio, aligned)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-12)


def test_roi_align_float32_list_boxes_and_module_form() -> None:
    features = torch.randn(2, 4, 16, 20)
    boxes = [
        torch.tensor([[0.0, 0.0, 20.0, 16.0], [-2.0, 3.0, 9.5, 18.0]]),
        torch.tensor([[4.0, 4.0, 12.0, 9.0]]),
    ]
    got = RoIAlign((7, 7), spatial_scale=1.0, sampling_ratio=2, aligned=True)(features, boxes)
    rois = np.array([[0, 0, 0, 20, 16], [0, -2, 3, 9.5, 18], [1, 4, 4, 12, 9]])
    expected = reference_roi_align(features.double().numpy(), rois, 1.0, (7, 7), 2, True)
    assert got.dtype == torch.float32 and got.shape == (3, 4, 7, 7)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_roi_align_is_differentiable() -> None:
    features = torch.randn(1, 2, 5, 6, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0, 0.5, 0.5, 4.0, 3.5], [0, -1.0, 2.0, 7.0, 6.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(
        lambda f: roi_align(f, rois, (2, 2), 1.0, 2, False), (features,)
    )


def test_ensure_is_idempotent_and_torchvision_imports() -> None:
    ensure_torchvision_ops()
    ensure_torchvision_ops()
    assert torchvision.ops.nms is nms
    assert hasattr(torch.ops.torchvision, "nms") and hasattr(torch.ops.torchvision, "roi_align")
