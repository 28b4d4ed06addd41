"""Pure-torch stand-ins for torchvision's compiled ``nms`` and ``roi_align`` operators.

The PyPI torchvision wheel is a CUDA build: next to the CPU-only torch used on CPU machines its
``_C`` library cannot load, and ``import torchvision`` then fails with
``operator torchvision::nms does not exist``. :func:`ensure_torchvision_ops` registers the
operators with the same schemas as torchvision's C++ code before torchvision is imported, so
``import torchvision``, ``torchvision.ops.nms / batched_nms / roi_align`` and the detection models
work. Where the compiled library loads (a matching CUDA machine) it changes nothing.

The kernels follow torchvision's CPU kernels (``csrc/ops/cpu/nms_kernel.cpp`` and
``roi_align_kernel.cpp``), including roi_align's handling of samples near and beyond the border.
Other compiled torchvision ops (roi_pool, ps_roi_align, deform_conv2d, ...) stay unavailable.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import threading
from pathlib import Path

import numpy as np
import torch

NMS_SCHEMA = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
QNMS_SCHEMA = "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
ROI_ALIGN_SCHEMA = (
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor"
)

# Elements gathered at once by roi_align: bounds memory for large RoIs or adaptive sampling.
_ROI_ALIGN_GATHER_BUDGET = 1 << 24

_lock = threading.Lock()
# Registrations last as long as their Library object lives, so keep it for the process.
_fallback_library: torch.library.Library | None = None


def ensure_torchvision_ops() -> None:
    """Make ``torchvision::nms`` and ``torchvision::roi_align`` available; idempotent.

    Call before importing torchvision. Uses torchvision's compiled library when it loads,
    otherwise registers the pure-torch kernels of this module.
    """
    global _fallback_library
    with _lock:
        if _fallback_library is not None or _compiled_ops_available():
            return
        _fallback_library = _register_fallback_ops()
        _route_torchvision_wrappers_to_ops()


def fallback_ops_active() -> bool:
    """True when this module's kernels, not torchvision's compiled ones, serve the ops."""
    return _fallback_library is not None


def _op_exists(name: str) -> bool:
    try:
        getattr(torch.ops.torchvision, name)
    except (AttributeError, RuntimeError):
        return False
    return True


def _compiled_ops_available() -> bool:
    if _op_exists("nms") and _op_exists("roi_align"):
        return True  # torchvision already imported with its compiled library
    return _load_compiled_library() and _op_exists("nms") and _op_exists("roi_align")


def _load_compiled_library() -> bool:
    """Load torchvision's ``_C`` the way torchvision does, without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("torchvision is not installed")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        library = package_dir / f"_C{suffix}"
        if library.exists():
            try:
                torch.ops.load_library(str(library))
            except OSError:
                return False  # e.g. a CUDA build next to a CPU-only torch
            return True
    return False


def _register_fallback_ops() -> torch.library.Library:
    library = torch.library.Library("torchvision", "DEF")
    library.define(NMS_SCHEMA)
    # torchvision registers a fake kernel for qnms at import time, so the schema must exist;
    # quantized NMS itself stays unimplemented.
    library.define(QNMS_SCHEMA)
    library.define(ROI_ALIGN_SCHEMA)
    for dispatch_key in ("CPU", "CUDA"):
        library.impl("nms", nms_kernel, dispatch_key)
    # Composite: works on any device and autograd differentiates through the torch ops.
    library.impl("roi_align", roi_align_kernel, "CompositeImplicitAutograd")
    return library


def _route_torchvision_wrappers_to_ops() -> None:
    """Point torchvision's Python wrappers at the registered ops.

    The wrappers check ``torchvision.extension._has_ops()``, which stays False when the compiled
    library failed to load: nms would raise and roi_align would take torchvision's
    ``torch.compile`` fallback, which differs from the C++ kernel near image borders.
    """
    boxes_module = importlib.import_module("torchvision.ops.boxes")
    roi_align_module = importlib.import_module("torchvision.ops.roi_align")
    boxes_module._assert_has_ops = _ops_registered  # type: ignore[attr-defined]
    roi_align_module._assert_has_ops = _ops_registered  # type: ignore[attr-defined]
    roi_align_module._has_ops = lambda: True  # type: ignore[attr-defined]


def _ops_registered() -> None:
    """Stands in for torchvision's ``_assert_has_ops``: the ops are registered."""


# --- nms -----------------------------------------------------------------------------------


def nms_kernel(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS as torchvision's CPU kernel: indices of kept boxes, by decreasing score."""
    _check_nms_inputs(dets, scores)
    if dets.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=dets.device)
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = dets[order].detach().cpu().numpy()
    kept_positions = _greedy_nms(boxes, iou_threshold)
    return order[torch.from_numpy(kept_positions).to(dets.device)]


def _check_nms_inputs(dets: torch.Tensor, scores: torch.Tensor) -> None:
    if dets.dim() != 2:
        raise RuntimeError(f"boxes should be a 2d tensor, got {dets.dim()}D")
    if dets.size(1) != 4:
        raise RuntimeError(f"boxes should have 4 elements in dimension 1, got {dets.size(1)}")
    if scores.dim() != 1:
        raise RuntimeError(f"scores should be a 1d tensor, got {scores.dim()}D")
    if dets.size(0) != scores.size(0):
        raise RuntimeError(
            "boxes and scores should have same number of elements in dimension 0, "
            f"got {dets.size(0)} and {scores.size(0)}"
        )
    if dets.dtype != scores.dtype:
        raise RuntimeError("dets should have the same type as scores")


def _greedy_nms(boxes: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Positions (into score-sorted ``boxes``) that survive; arithmetic in the boxes' dtype."""
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[:, i]) for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), dtype=bool)
    kept: list[int] = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        kept.append(i)
        rest = slice(i + 1, None)
        width = np.maximum(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0)
        height = np.maximum(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0)
        inter = width * height
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[i] + areas[rest] - inter)
        # The C++ kernel compares the box-dtype IoU with the threshold as a double.
        suppressed[rest] |= iou.astype(np.float64) > iou_threshold
    return np.asarray(kept, dtype=np.int64)


# --- roi_align -----------------------------------------------------------------------------


def roi_align_kernel(
    input: torch.Tensor,
    rois: torch.Tensor,
    spatial_scale: float,
    pooled_height: int,
    pooled_width: int,
    sampling_ratio: int,
    aligned: bool,
) -> torch.Tensor:
    """RoIAlign (average of bilinear samples per bin) as torchvision's C++ kernel computes it.

    ``rois`` is ``[K, 5]``: batch index, then x1, y1, x2, y2 in input coordinates before
    ``spatial_scale``. ``sampling_ratio <= 0`` picks ``ceil(roi_size / pooled_size)`` samples
    per bin for each RoI.
    """
    if rois.dim() != 2 or rois.size(1) != 5:
        raise RuntimeError("rois must have shape as Tensor[K, 5]")
    if input.dtype != rois.dtype:
        raise RuntimeError("input should have the same type as rois")
    output = input.new_zeros((rois.size(0), input.size(1), pooled_height, pooled_width))
    if output.numel() == 0:
        return output
    geometry = _RoiGeometry(rois, spatial_scale, pooled_height, pooled_width, aligned)
    grid_h, grid_w = geometry.sampling_grid(sampling_ratio)
    grids = torch.stack([grid_h, grid_w], dim=1)
    for grid_size in torch.unique(grids, dim=0).tolist():
        if min(grid_size) <= 0:
            continue  # no sample points: the bin stays zero, as in the C++ kernel
        members = torch.nonzero((grids == grids.new_tensor(grid_size)).all(dim=1)).flatten()
        roi_step, channel_step = _chunk_sizes(
            input.size(1), pooled_height * pooled_width, grid_size[0] * grid_size[1]
        )
        for chunk in torch.split(members, roi_step):
            for first in range(0, input.size(1), channel_step):
                channels = slice(first, first + channel_step)
                output[chunk, channels] = _roi_align_fixed_grid(
                    input[:, channels], geometry, chunk, *grid_size
                )
    return output


class _RoiGeometry:
    """Per-RoI start, bin size and batch index, computed as in the C++ kernel."""

    def __init__(
        self,
        rois: torch.Tensor,
        spatial_scale: float,
        pooled_height: int,
        pooled_width: int,
        aligned: bool,
    ) -> None:
        offset = 0.5 if aligned else 0.0
        start_w = rois[:, 1] * spatial_scale - offset
        start_h = rois[:, 2] * spatial_scale - offset
        roi_width = rois[:, 3] * spatial_scale - offset - start_w
        roi_height = rois[:, 4] * spatial_scale - offset - start_h
        if not aligned:  # legacy mode forces malformed RoIs to 1x1
            roi_width = roi_width.clamp(min=1.0)
            roi_height = roi_height.clamp(min=1.0)
        self.batch_index = rois[:, 0].to(torch.long)
        self.start_h, self.start_w = start_h, start_w
        self.roi_height, self.roi_width = roi_height, roi_width
        self.bin_h, self.bin_w = roi_height / pooled_height, roi_width / pooled_width
        self.pooled_height, self.pooled_width = pooled_height, pooled_width

    def sampling_grid(self, sampling_ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
        count = self.batch_index.numel()
        if sampling_ratio > 0:
            fixed = torch.full(
                (count,), sampling_ratio, dtype=torch.long, device=self.batch_index.device
            )
            return fixed, fixed
        # C++ converts ceil(...) to int; NaN sizes become no samples here.
        grid_h = torch.nan_to_num(torch.ceil(self.roi_height.detach() / self.pooled_height))
        grid_w = torch.nan_to_num(torch.ceil(self.roi_width.detach() / self.pooled_width))
        return grid_h.to(torch.long), grid_w.to(torch.long)


def _chunk_sizes(channels: int, bins: int, samples_per_bin: int) -> tuple[int, int]:
    """RoIs and channels per step so that one gather stays within the budget."""
    per_channel = bins * samples_per_bin * 4  # four bilinear neighbours per sample
    channel_step = max(1, min(channels, _ROI_ALIGN_GATHER_BUDGET // per_channel))
    roi_step = max(1, _ROI_ALIGN_GATHER_BUDGET // (per_channel * channel_step))
    return roi_step, channel_step


def _roi_align_fixed_grid(
    input: torch.Tensor,
    geometry: _RoiGeometry,
    rois: torch.Tensor,
    grid_h: int,
    grid_w: int,
) -> torch.Tensor:
    """Pooled values ``[k, C, PH, PW]`` for RoIs that share one sampling grid size."""
    height, width = input.shape[-2:]
    rows, row_weights = _axis_samples(
        geometry.start_h[rois], geometry.bin_h[rois], geometry.pooled_height, grid_h, height
    )
    cols, col_weights = _axis_samples(
        geometry.start_w[rois], geometry.bin_w[rois], geometry.pooled_width, grid_w, width
    )
    # Bilinear weights factor into a row part and a column part: gather the
    # [k, PH, 2*GH, PW, 2*GW] corner pixels once, then contract both sample axes.
    pixels = input.permute(0, 2, 3, 1)[
        geometry.batch_index[rois][:, None, None, None, None],
        rows[:, :, :, None, None],
        cols[:, None, None, :, :],
    ]
    pooled = torch.einsum("kpr,kqs,kprqsc->kcpq", row_weights, col_weights, pixels)
    return pooled / max(grid_h * grid_w, 1)


def _axis_samples(
    start: torch.Tensor,
    bin_size: torch.Tensor,
    pooled: int,
    grid: int,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour indices and bilinear weights ``[k, pooled, 2 * grid]`` along one axis.

    Mirrors ``pre_calc_for_bilinear_interpolate``: samples beyond one pixel outside the map
    weigh zero, the rest are clamped into it, and at the last row/column both neighbours
    collapse onto that pixel.
    """
    bins = torch.arange(pooled, device=start.device, dtype=start.dtype)
    steps = torch.arange(grid, device=start.device, dtype=start.dtype) + 0.5
    coord = (
        start[:, None, None]
        + bins[None, :, None] * bin_size[:, None, None]
        + steps[None, None, :] * bin_size[:, None, None] / grid
    )
    inside = (coord >= -1.0) & (coord <= size)  # False for NaN, as in the C++ kernel
    coord = torch.where(inside, coord.clamp(min=0.0), torch.zeros_like(coord))
    low = coord.floor().to(torch.long)
    at_edge = low >= size - 1
    low = torch.where(at_edge, torch.full_like(low, size - 1), low)
    high = torch.where(at_edge, low, low + 1)
    coord = torch.where(at_edge, low.to(coord.dtype), coord)
    frac = (coord - low.to(coord.dtype)) * inside
    weights = torch.stack([(1.0 - frac) * inside, frac], dim=-1)
    indices = torch.stack([low, high], dim=-1)
    return indices.flatten(2), weights.flatten(2)
