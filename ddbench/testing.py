"""The ddbench conformance suite, generated from the registry. Opt-in for plugin authors.

Use it in your plugin's test suite with one file, ``tests/test_ddbench_conformance.py``::

    from ddbench.testing import *  # noqa: F401,F403  (collects the conformance tests)

    # optional: check only your own plugins
    DDBENCH_CONFORMANCE = {"methods": ["my_method"], "architectures": ["my_net"]}

Every registered method (or those listed) distills a tiny fabricated 32-px set on the
CPU with its ``smoke`` preset, returns the declared label kind and consistent shapes,
and is deterministic under a seed; every architecture builds at 32 and 64 px and
exposes ``embed`` and ``feature_dim``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

__all__ = ["test_method_conformance", "test_architecture_conformance", "ddbench_tiny_source", "pytest_generate_tests"]

TINY_NAME = "ddbench_conformance_tiny"


def write_tiny_npz(folder: Path, name: str = TINY_NAME, classes: int = 4, per_class: int = 12, size: int = 32,
                   seed: int = 0) -> Path:
    """A tiny labelled .npz set in the sample-data format, with a learnable colour signal per class."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(n_per):
        y = np.repeat(np.arange(classes), n_per)
        hue = rng.integers(40, 215, size=(classes, 3))
        x = hue[y][:, None, None, :] + rng.integers(-40, 40, size=(len(y), size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    xtr, ytr = make(per_class)
    xte, yte = make(max(2, per_class // 2))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte,
                        class_names=np.array([f"class{i}" for i in range(classes)]))
    return path


def _selected(kind: str) -> list[str]:
    from ddbench.plugins import registry

    names = registry(kind[:-1]).names()
    mod = sys.modules.get("__main__")
    wanted = None
    for m in list(sys.modules.values()):
        conf = getattr(m, "DDBENCH_CONFORMANCE", None)
        if isinstance(conf, dict) and kind in conf:
            wanted = conf[kind]
    del mod
    return [n for n in names if wanted is None or n in wanted]


def pytest_generate_tests(metafunc):
    if "conformance_method" in metafunc.fixturenames:
        metafunc.parametrize("conformance_method", _selected("methods"))
    if "conformance_architecture" in metafunc.fixturenames:
        metafunc.parametrize("conformance_architecture", _selected("architectures"))


@pytest.fixture
def ddbench_tiny_source(tmp_path, monkeypatch):
    """Name of a tiny 32-px dataset on the data path (4 classes, 12 train images each)."""
    from ddbench import plugins

    write_tiny_npz(tmp_path / "data")
    monkeypatch.setenv("DDBENCH_DATA", str(tmp_path / "data") + os.pathsep + os.environ.get("DDBENCH_DATA", ""))
    plugins.reset()
    yield TINY_NAME
    plugins.reset()


def _distill(method, source, seed, tmp: Path):
    from ddbench.cache import ArtifactCache
    from ddbench.context import RunContext

    ctx = RunContext(seed=seed, preset="smoke", cache=ArtifactCache(tmp / "cache"))
    ctx.checkpoint_dir = tmp / f"ckpt{seed}-{len(list(tmp.iterdir()))}"
    ctx.output_dir = tmp / f"out{seed}-{len(list(tmp.iterdir()))}"
    ctx.checkpoint_dir.mkdir(parents=True)
    ctx.output_dir.mkdir(parents=True)
    ctx.seed_everything()
    opts = method.options("smoke", source=source.name)
    return method.distill(ctx, source, opts)


def test_method_conformance(conformance_method, ddbench_tiny_source, tmp_path):
    import torch

    from ddbench.data import prepare
    from ddbench.distilled import DistilledSet
    from ddbench.plugins import get_method

    method = get_method(conformance_method)
    assert "smoke" in method.presets, f"method {method.name} has no smoke preset"
    source = prepare(ddbench_tiny_source)
    d = _distill(method, source, 0, tmp_path)
    assert isinstance(d, DistilledSet)
    assert d.label_kind == method.label_kind, f"declared {method.label_kind}, returned {d.label_kind}"
    assert isinstance(d.recipe, str) and d.recipe
    assert len(d.images) == len(d.targets)
    if d.label_kind != "none":
        assert d.num_images > 0
        assert tuple(d.images.shape[1:]) == (3, source.resolution, source.resolution)
        assert torch.isfinite(d.images).all() and torch.isfinite(d.targets.float()).all()
    if d.label_kind == "hard":
        assert d.targets.dtype == torch.long and d.targets.dim() == 1
        assert int(d.targets.min()) >= 0 and int(d.targets.max()) < source.num_classes
    if d.label_kind in ("soft", "representation"):
        assert d.targets.dim() == 2 and d.targets.dtype == torch.float32
    again = _distill(method, source, 0, tmp_path)
    assert torch.equal(d.images, again.images) and torch.equal(d.targets, again.targets), "not deterministic under a seed"
    d.save(tmp_path / "saved")
    back = DistilledSet.load(tmp_path / "saved")
    assert torch.equal(back.images, d.images) and back.label_kind == d.label_kind


@pytest.mark.parametrize("size", [32, 64])
def test_architecture_conformance(conformance_architecture, size):
    import torch

    from ddbench.plugins import get_architecture

    arch = get_architecture(conformance_architecture)
    torch.manual_seed(0)
    net = arch.build((3, size, size), 5, width=0.25).eval()
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        f = net.embed(x)
        y = net(x)
    assert f.shape == (2, net.feature_dim)
    assert y.shape == (2, 5)
    assert isinstance(getattr(arch, "param_count", 0), int), "param_count must be an int (ls shows it without torch)"
