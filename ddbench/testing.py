"""The ddbench conformance suite, generated from the registry. Opt-in for plugin authors.

Use it in your plugin's test suite with one file, ``tests/test_ddbench_conformance.py``::

    from ddbench.testing import *  # noqa: F401,F403  (collects the conformance tests)

    # optional: check only your own plugins
    DDBENCH_CONFORMANCE = {"methods": ["my_method"], "architectures": ["my_net"]}

Every registered method (or those listed) distills a tiny fabricated 32-px set on the
CPU with its ``smoke`` preset and must return a :class:`~ddbench.distilled.DistilledSet`
that passes the same checks ``ddbench run`` applies (a set the runner would refuse fails
here with the runner's message): the declared label kind, the budget filled, images
float32 ``(N, 3, 32, 32)`` inside their ``value_range``, finite, targets of the right
dtype and shape, hard labels in range; the set must save and load back unchanged and be
deterministic under a seed. Every architecture builds at 32 and 64 px and exposes
``embed`` and ``feature_dim``.

:func:`check_method` runs the method checks on one method object, for a test of your own.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

__all__ = ["test_method_conformance", "test_architecture_conformance", "ddbench_tiny_source", "pytest_generate_tests"]
# check_method and write_tiny_npz are for explicit import: a star import must collect only the tests

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


def _tiers(method) -> set[str]:
    entries = getattr(method, "preset_entries", None)
    return {p.name for p in entries()} if entries else set(method.presets)


def _budget(method, source):
    """The smoke preset's budget resolved against the source, as the runner does (None for a
    ddbench without budgets)."""
    try:
        from ddbench.types import Budget
    except ImportError:  # pragma: no cover
        return None
    if not getattr(method, "takes_budget", True):
        return Budget()
    entry = method.preset("smoke", source.name)
    return (getattr(entry, "budget", None) or Budget(ipc=1)).resolve(source.num_classes)


def _distill(method, source, seed, tmp: Path, budget=None):
    from ddbench.cache import ArtifactCache
    from ddbench.context import RunContext

    extra = {"budget": budget} if budget is not None else {}
    ctx = RunContext(seed=seed, preset="smoke", cache=ArtifactCache(tmp / "cache"), **extra)
    ctx.checkpoint_dir = tmp / f"ckpt{seed}-{len(list(tmp.iterdir()))}"
    ctx.output_dir = tmp / f"out{seed}-{len(list(tmp.iterdir()))}"
    ctx.checkpoint_dir.mkdir(parents=True)
    ctx.output_dir.mkdir(parents=True)
    ctx.seed_everything()
    opts = method.options("smoke", source=source.name, **extra)
    return method.distill(ctx, source, opts), opts


def check_method(method, source, tmp: Path):
    """The conformance checks for one method on a prepared ``source``; fails the calling
    test with the first broken rule (the runner's own message where the runner checks it).
    Returns the distilled set."""
    import torch

    from ddbench.distilled import DistilledSet, check_returned
    from ddbench.errors import DDBenchError

    def fail(msg: str):
        pytest.fail(f"method {method.name} does not conform: {msg}", pytrace=False)

    if "smoke" not in _tiers(method):
        fail("it has no smoke preset (the conformance suite and tests run it)")
    try:
        budget = _budget(method, source)
        d, opts = _distill(method, source, 0, tmp, budget)
        check_returned(d, method.name)
        again, _ = _distill(method, source, 0, tmp, budget)
        check_returned(again, method.name)
    except DDBenchError as e:
        fail(str(e))
    declared = method.label_kind_for(opts) if hasattr(method, "label_kind_for") else method.label_kind
    if d.label_kind != declared:
        fail(f"it declares label kind {declared!r} but returned a set with {d.label_kind!r}")
    if budget is not None and getattr(method, "takes_budget", True) and budget.images is not None \
            and d.num_images != budget.images:
        fail(f"it returned {d.num_images} images for a budget of {budget.label()}; a method must fill its budget exactly")
    recipes = tuple(getattr(method, "recipes", ()) or ())
    if recipes and d.label_kind != "none" and d.recipe not in recipes:
        fail(f"its set names recipe {d.recipe!r}, which is not among the recipes it declares {recipes}")
    if d.label_kind != "none":
        if d.num_images == 0:
            fail(f"it returned no images for label kind {d.label_kind!r}")
        want = (len(source.mean), source.resolution, source.resolution)
        if tuple(d.images.shape[1:]) != want or d.resolution != source.resolution:
            fail(f"its images are {tuple(d.images.shape[1:])} at resolution {d.resolution}; the source gives {want}")
        if d.label_kind == "hard" and d.num_classes != source.num_classes:
            fail(f"its set says num_classes={d.num_classes}; the source has {source.num_classes}")
    if not (torch.equal(d.images, again.images) and torch.equal(d.targets, again.targets)):
        fail("two runs with seed 0 gave different sets: draw every random number from ctx.generator() "
             "or after ctx.seed_everything()")
    d.save(tmp / "saved")
    back = DistilledSet.load(tmp / "saved")

    def as_json(m):  # provenance tuples come back as lists
        return json.loads(json.dumps(m, sort_keys=True, default=str))

    if not (torch.equal(back.images, d.images) and torch.equal(back.targets, d.targets)
            and as_json(back.manifest()) == as_json(d.manifest())):
        fail("the set does not load back unchanged after save(); keep provenance JSON-serialisable")
    return d


def test_method_conformance(conformance_method, ddbench_tiny_source, tmp_path):
    from ddbench.data import prepare
    from ddbench.plugins import get_method

    check_method(get_method(conformance_method), prepare(ddbench_tiny_source), tmp_path)


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
