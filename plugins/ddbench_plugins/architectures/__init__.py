"""Built-in architectures: the ConvNets, ResNet18/10, VGG11, AlexNet and MobileNet of the
reference code (github.com/db-Lee/selfsup_dd, ``models/``), registered through the same
hook a third-party plugin uses.

This module must not import torch (``ddbench ls`` imports it to list plugins); the networks
live in :mod:`ddbench_plugins.architectures.nets`, imported inside ``build()``.
``param_count`` is the trunk's parameter count at ``default_shape``, ``width=1.0`` and
default keyword arguments; the tests check it against a real build.
"""

from __future__ import annotations

import difflib
from typing import Any, ClassVar, Iterable

from ddbench import hookimpl
from ddbench.errors import OptionError
from ddbench.interfaces import Architecture


def _check_kwargs(kwargs: dict[str, Any], known: Iterable[str], where: str) -> None:
    known = list(known)
    for k in kwargs:
        close = difflib.get_close_matches(k, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise OptionError(f"unknown argument {k!r} for architecture {where}; {hint}"
                          f"known: {', '.join(known) or '(none)'}")


def _check_common(in_shape: Any, width: float, where: str) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in in_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise OptionError(f"architecture {where}: in_shape must be (channels, height, width), got {in_shape!r}")
    if not float(width) > 0:
        raise OptionError(f"architecture {where}: width must be > 0, got {width!r}")
    return shape


def _network(name: str, trunk: Any, feature_dim: int, num_outputs: int | None, width: float,
             in_shape: tuple[int, int, int], spec: dict[str, Any]):
    from ddbench.toolkit.nn import Network

    from .nets import count

    full = dict(arch=name, **spec, width_mult=float(width), in_shape=list(in_shape), trunk_params=count(trunk))
    return Network(trunk, feature_dim, num_outputs, spec=full)


class ConvNetArch(Architecture):
    name = "convnet"
    description = "ConvNet: per width, conv3x3 -> norm (bn|in|none) -> ReLU -> avgpool2; flattened last map"
    default_shape: ClassVar[tuple[int, int, int]] = (3, 32, 32)
    default_widths: ClassVar[tuple[int, ...]] = (128, 256, 512)
    param_count: ClassVar[int] = 1_480_704

    def build(self, in_shape, num_outputs=None, width=1.0, widths=None, norm="bn", **kwargs):
        """``widths``: channels per block (default ``default_widths``); ``norm``: bn, in
        (GroupNorm(c, c), i.e. instance norm with affine) or none."""
        _check_kwargs(kwargs, ("widths", "norm"), self.name)
        shape = _check_common(in_shape, width, self.name)
        from .nets import convnet_trunk

        widths = self.default_widths if widths is None else tuple(int(c) for c in widths)
        trunk, dim, spec = convnet_trunk(shape, widths, norm=norm, width=width)
        return _network(self.name, trunk, dim, num_outputs, width, shape, spec)


class ConvNet3(ConvNetArch):
    name = "convnet3"
    description = "ConvNet 128-256-512 with BN (the CIFAR-100 source model, 32 px)"


class ConvNet4(ConvNetArch):
    name = "convnet4"
    description = "ConvNet 64-128-256-512 with BN (the TinyImageNet source model, 64 px)"
    default_shape = (3, 64, 64)
    default_widths = (64, 128, 256, 512)
    param_count = 1_552_896


class ResNetArch(Architecture):
    name = "resnet18"
    description = "ResNet18 (BasicBlock [2,2,2,2]) with a conv3x3 stride-1 stem, no max-pool; 512-d pooled"
    blocks: ClassVar[tuple[int, int, int, int]] = (2, 2, 2, 2)
    param_count: ClassVar[int] = 11_168_832

    def build(self, in_shape, num_outputs=None, width=1.0, stem_padding=1, zero_init_residual=True, **kwargs):
        """``stem_padding``: 1 keeps the input size; the reference code uses 2 (34x34 maps at
        32 px; same parameter count). ``zero_init_residual``: zero each block's last BN
        weight, as the reference does."""
        _check_kwargs(kwargs, ("stem_padding", "zero_init_residual"), self.name)
        shape = _check_common(in_shape, width, self.name)
        from .nets import resnet_trunk

        trunk, dim, spec = resnet_trunk(shape, self.blocks, width=width, stem_padding=stem_padding,
                                        zero_init_residual=zero_init_residual)
        return _network(self.name, trunk, dim, num_outputs, width, shape, spec)


class ResNet10(ResNetArch):
    name = "resnet10"
    description = "ResNet10 (BasicBlock [1,1,1,1]) with a conv3x3 stride-1 stem, no max-pool; 512-d pooled"
    blocks = (1, 1, 1, 1)
    param_count = 4_898_112


class VGG11(Architecture):
    name = "vgg11"
    description = "VGG11 with BN after each conv, 5 max-pools; flattened last map (512 at 32 px)"
    param_count: ClassVar[int] = 9_225_984

    def build(self, in_shape, num_outputs=None, width=1.0, norm="bn", **kwargs):
        """``norm``: bn (the reference default), in (GroupNorm(c, c)) or none."""
        _check_kwargs(kwargs, ("norm",), self.name)
        shape = _check_common(in_shape, width, self.name)
        from .nets import vgg_trunk

        trunk, dim, spec = vgg_trunk(shape, width=width, norm=norm)
        return _network(self.name, trunk, dim, num_outputs, width, shape, spec)


class AlexNet(Architecture):
    name = "alexnet"
    description = "AlexNet with BN: conv5x5(128), conv5x5(192), conv3x3(256,192,192), 3 max-pools; flattened"
    param_count: ClassVar[int] = 1_843_392

    def build(self, in_shape, num_outputs=None, width=1.0, **kwargs):
        _check_kwargs(kwargs, (), self.name)
        shape = _check_common(in_shape, width, self.name)
        from .nets import alexnet_trunk

        trunk, dim, spec = alexnet_trunk(shape, width=width)
        return _network(self.name, trunk, dim, num_outputs, width, shape, spec)


class MobileNet(Architecture):
    name = "mobilenet"
    description = "CIFAR MobileNetV2 (expansion 2, stride-1 stem), 1x1 conv to 1280, pooled 1280-d"
    param_count: ClassVar[int] = 1_079_504

    def build(self, in_shape, num_outputs=None, width=1.0, **kwargs):
        _check_kwargs(kwargs, (), self.name)
        shape = _check_common(in_shape, width, self.name)
        from .nets import mobilenet_trunk

        trunk, dim, spec = mobilenet_trunk(shape, width=width)
        return _network(self.name, trunk, dim, num_outputs, width, shape, spec)


BUILTIN = (ConvNetArch(), ConvNet3(), ConvNet4(), ResNetArch(), ResNet10(), VGG11(), AlexNet(), MobileNet())


@hookimpl
def ddbench_register_architectures(register):
    for arch in BUILTIN:
        register(arch)
