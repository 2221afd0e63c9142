"""Conformance tests for every registered architecture, plus the reference numbers of the
built-ins (protocol §1.3)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ddbench import plugins
from ddbench.errors import OptionError

BUILTIN_NAMES = {"convnet", "convnet3", "convnet4", "resnet18", "resnet10", "vgg11", "alexnet", "mobilenet"}


def _registered_names() -> list[str]:
    """Names in the architecture registry with third-party plugins turned off (collection time)."""
    old = os.environ.get("DDBENCH_DISABLE_PLUGINS")
    os.environ["DDBENCH_DISABLE_PLUGINS"] = "1"
    plugins.reset()
    try:
        return plugins.registry("architecture").names()
    finally:
        if old is None:
            del os.environ["DDBENCH_DISABLE_PLUGINS"]
        else:
            os.environ["DDBENCH_DISABLE_PLUGINS"] = old
        plugins.reset()


NAMES = _registered_names()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("DDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "1")
    plugins.reset()
    yield
    plugins.reset()


def _arch(name):
    return plugins.registry("architecture").get(name)


def test_builtins_registered_through_the_hook():
    reg = plugins.registry("architecture")
    assert BUILTIN_NAMES <= set(reg.names())
    for name in BUILTIN_NAMES:
        assert reg.entry(name).origin == "ddbench (built-in: ddbench_plugins.architectures)"


@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("name", NAMES)
def test_builds_embeds_and_is_deterministic(name, res):
    arch = _arch(name)
    shape = (3, res, res)
    torch.manual_seed(0)
    net = arch.build(shape, num_outputs=7, width=0.25)
    x = torch.randn(3, *shape)

    net.train()
    assert net(x).shape == (3, 7)  # also moves BN running stats off their initial values
    net.eval()
    with torch.no_grad():
        z = net.embed(x)
        assert z.shape == (3, net.feature_dim)
        assert torch.isfinite(z).all()
        assert net(x).shape == (3, 7)
        assert torch.equal(net.embed(x), z)
        # eval mode: an image's features do not depend on the rest of the batch
        torch.testing.assert_close(net.embed(x[:1]), z[:1], rtol=1e-4, atol=1e-5)

    torch.manual_seed(0)
    again = arch.build(shape, num_outputs=7, width=0.25)
    torch.manual_seed(0)
    ref = arch.build(shape, num_outputs=7, width=0.25)
    for (k, a), b in zip(again.state_dict().items(), ref.state_dict().values()):
        assert torch.equal(a, b), k

    spec = net.spec
    assert spec["arch"] == name
    assert spec["width_mult"] == 0.25
    assert spec["in_shape"] == [3, res, res]
    assert spec["trunk_params"] == net.trunk_parameters()
    assert {"widths", "norm"} <= set(spec)


@pytest.mark.parametrize("name", NAMES)
def test_param_count_matches_a_real_build(name):
    arch = _arch(name)
    assert isinstance(arch.param_count, int)
    net = arch.build(arch.default_shape)
    assert net.trunk_parameters() == arch.param_count
    assert isinstance(net.head, torch.nn.Identity)


# feature dims at width 1 (reference code): ConvNet flattens its 4x4 map at both sources
@pytest.mark.parametrize("name, res, dim", [
    ("convnet3", 32, 8192), ("convnet4", 64, 8192), ("convnet3", 64, 32768),
    ("resnet18", 32, 512), ("resnet10", 64, 512), ("vgg11", 32, 512), ("vgg11", 64, 2048),
    ("alexnet", 32, 3072), ("alexnet", 64, 12288), ("mobilenet", 32, 1280), ("mobilenet", 64, 1280),
])
def test_reference_feature_dims(name, res, dim):
    assert _arch(name).build((3, res, res)).feature_dim == dim


def test_pinned_reference_param_counts():
    assert _arch("convnet3").param_count == 1_480_704
    assert _arch("convnet").build((3, 32, 32), widths=(128, 256, 512), norm="bn").trunk_parameters() == 1_480_704
    assert _arch("convnet4").param_count == 1_552_896
    assert _arch("convnet4").build((3, 64, 64)).trunk_parameters() == 1_552_896
    assert _arch("resnet18").param_count == 11_168_832
    r18 = _arch("resnet18").build((3, 32, 32), stem_padding=2)
    assert r18.trunk_parameters() == 11_168_832
    assert r18.spec["stem_padding"] == 2


def test_resnet_reference_stem_and_init():
    torch.manual_seed(0)
    net = _arch("resnet10").build((3, 32, 32), width=0.25, stem_padding=2)
    stem = net.trunk[0]
    assert stem.kernel_size == (3, 3) and stem.stride == (1, 1) and stem.padding == (2, 2)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.trunk.modules())
    # zero_init_residual=True, as in the reference
    last_bns = [m.bn2.weight for m in net.trunk.modules() if hasattr(m, "bn2") and hasattr(m, "downsample")]
    assert len(last_bns) == 4 and all(torch.count_nonzero(w) == 0 for w in last_bns)
    assert net.embed(torch.randn(2, 3, 32, 32)).shape == (2, 128)


@pytest.mark.parametrize("norm", ["in", "none"])
def test_convnet_norm_options(norm):
    net = _arch("convnet").build((3, 32, 32), num_outputs=3, width=0.125, norm=norm)
    assert net.spec["norm"] == norm
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    # same parameter count as BN (affine weight + bias per channel) except for 'none'
    bn = _arch("convnet").build((3, 32, 32), width=0.125).trunk_parameters()
    assert (net.trunk_parameters() == bn) == (norm == "in")


def test_width_multiplier_rounds_and_keeps_one_channel():
    net = _arch("convnet").build((3, 32, 32), width=0.001, widths=(8, 16))
    assert net.spec["widths"] == [1, 1]
    assert net.feature_dim == 1 * 8 * 8


def test_bad_arguments_are_option_errors():
    with pytest.raises(OptionError, match="did you mean norm"):
        _arch("convnet").build((3, 32, 32), nrom="bn")
    with pytest.raises(OptionError, match="unknown norm"):
        _arch("vgg11").build((3, 32, 32), norm="layer")
    with pytest.raises(OptionError, match="too small"):
        _arch("vgg11").build((3, 16, 16))
    with pytest.raises(OptionError, match="width must be > 0"):
        _arch("alexnet").build((3, 32, 32), width=0)


def test_listing_architectures_does_not_import_torch():
    code = ("import sys, ddbench_plugins.architectures as a; "
            "assert 'torch' not in sys.modules, 'torch imported'; "
            "print(sorted(x.name for x in a.BUILTIN))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
