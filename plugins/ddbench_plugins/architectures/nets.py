"""The torch side of the built-in architectures.

Imported lazily from ``build()`` so that listing plugins never imports torch. Each
``*_trunk`` function returns ``(trunk, feature_dim, spec)``: a module that maps
``(N, C, H, W)`` images to ``(N, feature_dim)`` features, and what was built.

The layouts follow the reference code of "Self-Supervised Dataset Distillation for
Transfer Learning" (github.com/db-Lee/selfsup_dd, ``models/``, commit d9a422c). Where
ddbench generalises it (input channels, a width multiplier, non-default resolutions)
the reference configuration is the ``width=1.0`` default. ReLUs are never in-place, so
the trunks stay usable under ``torch.func`` transforms.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ddbench.errors import OptionError

NORMS = ("bn", "in", "none")


def scale(c: int, width: float) -> int:
    """A channel count times the width multiplier: rounded, at least 1."""
    return max(1, int(round(c * width)))


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "bn":
        return nn.BatchNorm2d(c)
    if kind == "in":
        # Per-channel, per-sample normalisation with a learned affine. GroupNorm(c, c) is
        # what the DC/DSA family calls "instancenorm"; selfsup_dd's ConvNet uses
        # InstanceNorm2d(c, affine=True) without running stats, which computes the same
        # function with the same parameters in train and eval mode.
        return nn.GroupNorm(c, c, affine=True)
    return nn.Identity()


def _check_norm(norm: str, where: str) -> str:
    kind = str(norm).lower()
    if kind not in NORMS:
        raise OptionError(f"{where}: unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    return kind


def _halve(in_shape: Sequence[int], times: int, where: str) -> tuple[int, int]:
    """Spatial size after ``times`` floor-halvings (2x2 pools, stride 2)."""
    h, w = int(in_shape[1]), int(in_shape[2])
    h, w = h >> times, w >> times
    if h < 1 or w < 1:
        raise OptionError(
            f"{where}: input {in_shape[1]}x{in_shape[2]} is too small for {times} 2x2 poolings; "
            f"use at least {2 ** times}x{2 ** times} pixels"
        )
    return h, w


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------- ConvNet


def convnet_trunk(in_shape, widths: Sequence[int], norm: str = "bn", width: float = 1.0):
    """conv3x3(bias) -> norm -> ReLU -> avgpool2 per width; features are the flattened last map."""
    where = "convnet"
    kind = _check_norm(norm, where)
    if not widths:
        raise OptionError(f"{where}: widths must name at least one block, e.g. 128,256,512")
    chans = [scale(int(c), width) for c in widths]
    h, w = _halve(in_shape, len(chans), where)
    layers: list[nn.Module] = []
    c_in = int(in_shape[0])
    for c in chans:
        layers += [nn.Conv2d(c_in, c, 3, stride=1, padding=1, bias=True), _norm(kind, c),
                   nn.ReLU(), nn.AvgPool2d(2, 2)]
        c_in = c
    layers.append(nn.Flatten())
    trunk = nn.Sequential(*layers)
    return trunk, chans[-1] * h * w, dict(widths=chans, norm=kind)


# --------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    """Two 3x3 convs (no bias) with BN; a strided 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.downsample: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def resnet_trunk(in_shape, blocks: Sequence[int], width: float = 1.0, stem_padding: int = 1,
                 zero_init_residual: bool = True):
    """torchvision's BasicBlock ResNet with a CIFAR stem: conv3x3 stride 1, BN, ReLU, no max-pool."""
    stem_padding = int(stem_padding)
    if stem_padding < 0:
        raise OptionError(f"resnet: stem_padding must be >= 0, got {stem_padding}")
    chans = [scale(c, width) for c in (64, 128, 256, 512)]
    stem = nn.Conv2d(int(in_shape[0]), chans[0], 3, stride=1, padding=stem_padding, bias=False)
    layers: list[nn.Module] = [stem, nn.BatchNorm2d(chans[0]), nn.ReLU()]
    c_in = chans[0]
    for stage, (c, n) in enumerate(zip(chans, blocks)):
        stage_blocks = []
        for i in range(int(n)):
            stage_blocks.append(BasicBlock(c_in, c, stride=2 if (stage > 0 and i == 0) else 1))
            c_in = c
        layers.append(nn.Sequential(*stage_blocks))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    trunk = nn.Sequential(*layers)

    # Initialisation as in the reference: torchvision's ResNet init (kaiming-normal, fan_out,
    # on every conv; BN weight 1, bias 0), then zero_init_residual=True (each block's last BN
    # weight set to 0). The reference swaps in the 3x3 stem *after* that init, so the stem
    # keeps torch's default init; we skip it here for the same result.
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d) and m is not stem:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in trunk.modules():
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)
    spec = dict(widths=chans, norm="bn", blocks=[int(b) for b in blocks], stem_padding=stem_padding,
                zero_init_residual=bool(zero_init_residual))
    return trunk, chans[-1], spec


# --------------------------------------------------------------------------- VGG

VGG11_CFG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg_trunk(in_shape, cfg=VGG11_CFG, width: float = 1.0, norm: str = "bn"):
    """conv3x3(bias) -> norm -> ReLU per number, 2x2 max-pool per "M"; flattened last map."""
    kind = _check_norm(norm, "vgg")
    h, w = _halve(in_shape, sum(1 for v in cfg if v == "M"), "vgg")
    layers: list[nn.Module] = []
    chans: list[int] = []
    c_in = int(in_shape[0])
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        c = scale(int(v), width)
        layers += [nn.Conv2d(c_in, c, 3, padding=1), _norm(kind, c), nn.ReLU()]
        chans.append(c)
        c_in = c
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c_in * h * w, dict(widths=chans, norm=kind)


# --------------------------------------------------------------------------- AlexNet


def alexnet_trunk(in_shape, width: float = 1.0):
    """The CIFAR AlexNet of the DC benchmarks with BN: 5 convs (5x5, 5x5, 3x3 x3), 3 max-pools."""
    h, w = _halve(in_shape, 3, "alexnet")
    c1, c2, c3, c4, c5 = (scale(c, width) for c in (128, 192, 256, 192, 192))

    def block(c_in, c_out, k):
        return [nn.Conv2d(c_in, c_out, k, stride=1, padding=k // 2), nn.BatchNorm2d(c_out), nn.ReLU()]

    trunk = nn.Sequential(
        *block(int(in_shape[0]), c1, 5), nn.MaxPool2d(2, 2),
        *block(c1, c2, 5), nn.MaxPool2d(2, 2),
        *block(c2, c3, 3),
        *block(c3, c4, 3),
        *block(c4, c5, 3), nn.MaxPool2d(2, 2),
        nn.Flatten(),
    )
    return trunk, c5 * h * w, dict(widths=[c1, c2, c3, c4, c5], norm="bn")


# --------------------------------------------------------------------------- MobileNetV2

# (expansion, out_planes, num_blocks, stride): the CIFAR variant of the reference, with the
# second stage's stride changed 2 -> 1 and expansion 2 instead of MobileNetV2's 6.
MOBILENET_CFG = ((1, 16, 1, 1), (2, 24, 2, 1), (2, 32, 3, 2), (2, 64, 4, 2),
                 (2, 96, 3, 1), (2, 160, 3, 2), (2, 320, 1, 1))


class InvertedResidual(nn.Module):
    """1x1 expand -> BN -> ReLU -> 3x3 depthwise -> BN -> ReLU -> 1x1 project -> BN.

    As in the reference, stride-1 blocks always add a shortcut (a 1x1 conv + BN when the
    channel count changes) and strided blocks have none.
    """

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int):
        super().__init__()
        planes = expansion * c_in
        self.stride = stride
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, groups=planes, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride == 1 and c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return out + self.shortcut(x) if self.stride == 1 else out


def mobilenet_trunk(in_shape, width: float = 1.0, cfg=MOBILENET_CFG, stem: int = 32, last: int = 1280):
    """Stride-1 stem conv3x3 -> BN -> ReLU, inverted residual stages, 1x1 conv to ``last`` -> BN -> ReLU,
    global average pool. The width multiplier scales every channel count, ``last`` included."""
    c_stem, c_last = scale(stem, width), scale(last, width)
    layers: list[nn.Module] = [nn.Conv2d(int(in_shape[0]), c_stem, 3, stride=1, padding=1, bias=False),
                               nn.BatchNorm2d(c_stem), nn.ReLU()]
    chans = [c_stem]
    c_in = c_stem
    for expansion, out_planes, n, stride in cfg:
        c = scale(out_planes, width)
        for i in range(n):
            layers.append(InvertedResidual(c_in, c, expansion, stride if i == 0 else 1))
            c_in = c
        chans.append(c)
    layers += [nn.Conv2d(c_in, c_last, 1, bias=False), nn.BatchNorm2d(c_last), nn.ReLU(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    chans.append(c_last)
    return nn.Sequential(*layers), c_last, dict(widths=chans, norm="bn")
