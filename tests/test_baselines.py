"""The real-subset baselines (``random``, ``kmeans``) and the no-pre-training reference
(``none``), on tiny fabricated ``.npz`` datasets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench import plugins
from ddbench.cache import ArtifactCache
from ddbench.context import RunContext
from ddbench.errors import DataError, OptionError
from ddbench.types import Budget

SOURCE, TARGET_A, TARGET_B = "tiny_src", "tiny_tgt", "flowers_tiny"


def make_npz(path: Path, k: int, n_train: int, n_test: int, size: int = 16, seed: int = 0) -> None:
    """``k`` classes with a learnable signal: a class colour plus a class stripe frequency, plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.integers(40, 215, size=(k, 3))
    freqs = 1 + np.arange(k) % 3

    def split(n: int):
        y = np.repeat(np.arange(k), n)
        stripes = np.sin(np.arange(size)[None, :] * freqs[y][:, None] * 2 * np.pi / size)
        x = colours[y][:, None, None, :] + 40 * stripes[:, None, :, None] + rng.normal(0, 40, (len(y), size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    x_train, y_train = split(n_train)
    x_test, y_test = split(n_test)
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        class_names=np.array([f"class{i}" for i in range(k)]))


def write_datasets(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    make_npz(folder / f"{SOURCE}.npz", k=4, n_train=20, n_test=6, seed=0)
    make_npz(folder / f"{TARGET_A}.npz", k=3, n_train=20, n_test=10, seed=1)
    make_npz(folder / f"{TARGET_B}.npz", k=5, n_train=12, n_test=6, seed=2)
    return folder


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Datasets and a cache shared by every test of the session: the smoke target model
    (Barlow Twins) is trained once, not once per test."""
    root = tmp_path_factory.mktemp("tiny_transfer")
    write_datasets(root / "data")
    return root


@pytest.fixture
def tiny_data(tiny_root, monkeypatch):
    """DDBENCH_DATA points at the fabricated sets; returns the session's shared cache."""
    from ddbench import data

    monkeypatch.setenv("DDBENCH_DATA", str(tiny_root / "data"))
    plugins.reset()
    data.clear_memo()
    yield ArtifactCache(tiny_root / "cache")
    plugins.reset()
    data.clear_memo()


def ctx_for(cache, seed: int = 0, preset: str = "smoke") -> RunContext:
    return RunContext(seed=seed, preset=preset, cache=cache)


def source_data(cache):
    from ddbench.data import prepare

    return prepare(SOURCE, cache=cache)


def distill(name: str, cache, seed: int = 0, *, images: int | None = None, ipc: int | None = None, **overrides):
    """``name``'s smoke set on the tiny source, with the budget ``images`` / ``ipc`` (default:
    the smoke preset's), as the runner would pass it."""
    method = plugins.get_method(name)
    source = source_data(cache)
    options = method.options("smoke", overrides, source=SOURCE)
    ctx = ctx_for(cache, seed)
    if method.takes_budget:
        budget = Budget(images=images, ipc=ipc)
        if budget.empty:
            budget = method.preset("smoke").budget
        ctx.budget = budget.resolve(source.num_classes)
    return method.distill(ctx, source, options), source


def matches_source(images01: torch.Tensor, source) -> list[int]:
    """For each image, the index of the identical source training image (fails if none)."""
    out = []
    for img in images01:
        err = (source.x_train - img).abs().flatten(1).amax(1)
        i = int(err.argmin())
        assert float(err[i]) < 1e-5, "a selected image is not a real source image"
        out.append(i)
    return out


# ----------------------------------------------------------------------------- none


def test_none_is_empty(tiny_data):
    ds, source = distill("none", tiny_data)
    assert ds.label_kind == "none" and ds.recipe == "none"
    assert ds.num_images == 0 and ds.images.shape[1:] == (3, source.resolution, source.resolution)
    assert ds.source == SOURCE and ds.budget()["images"] == 0


# ----------------------------------------------------------------------------- random


def test_random_is_class_balanced_real_and_seeded(tiny_data):
    a, source = distill("random", tiny_data, seed=0, ipc=3)
    assert a.label_kind == "hard" and a.recipe == "hard_ce_dsa" and a.targets.dtype == torch.long
    assert torch.bincount(a.targets, minlength=4).tolist() == [3, 3, 3, 3]
    idx = matches_source(a.pixels01(), source)
    assert torch.equal(source.y_train[idx], a.targets)
    assert idx == a.provenance.details["indices"]
    same, _ = distill("random", tiny_data, seed=0, ipc=3)
    other, _ = distill("random", tiny_data, seed=1, ipc=3)
    assert torch.equal(a.images, same.images) and torch.equal(a.targets, same.targets)
    assert not torch.equal(a.images, other.images)


def test_random_spreads_a_total_budget(tiny_data):
    ds, _ = distill("random", tiny_data, images=6)
    counts = torch.bincount(ds.targets, minlength=4).tolist()
    assert sum(counts) == 6 and max(counts) - min(counts) <= 1
    with pytest.raises(DataError, match="only"):
        distill("random", tiny_data, ipc=1000)


def test_random_same_recipe_control_uses_target_representations(tiny_data):
    ds, source = distill("random", tiny_data, recipe="representation_mse", ipc=2)
    assert ds.label_kind == "representation" and ds.recipe == "representation_mse"
    assert ds.targets.dtype == torch.float32 and ds.targets.shape[0] == 8 and ds.targets.dim() == 2
    tm = ds.provenance.depends_on["target_model"]
    assert Path(tm.path).is_dir() and len(tm.sha256) == 64
    from ddbench_plugins.targets import load_target_model

    model = load_target_model(tm.path)
    again = model.represent_pixels(ds.pixels01(), source.mean, source.std)
    assert torch.allclose(again, ds.targets, atol=1e-4)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_control_starts_from_krrsts_initial_images(tiny_data, seed):
    """``random`` with ``recipe=representation_mse`` is KRR-ST's control: for the same seed and
    budget it holds exactly the real images KRR-ST initialises from (KRR-ST at steps=0 returns
    its initialisation), in the same order, not a class-balanced draw."""
    control, source = distill("random", tiny_data, seed, recipe="representation_mse")
    init, _ = distill("krrst", tiny_data, seed, steps=0)
    assert control.num_images == init.num_images == 8
    assert init.pixel_space == control.pixel_space == "normalized"
    assert torch.equal(control.images, init.images)
    assert control.provenance.details["indices"] == matches_source(init.pixels01(), source)
    assert torch.allclose(control.targets, init.targets, atol=1e-4)  # same target model, same images
    assert control.provenance.selection.startswith("KRR-ST's initial draw")
    assert control.provenance.details["initial_draw"]["same_as"] == "krrst"
    other, _ = distill("random", tiny_data, 1 - seed, recipe="representation_mse")
    assert control.provenance.details["indices"] != other.provenance.details["indices"]
    # the hard-label recipe stays class-balanced
    hard, _ = distill("random", tiny_data, seed)
    assert torch.bincount(hard.targets, minlength=4).tolist() == [2, 2, 2, 2]
    assert hard.provenance.selection == "uniformly at random within each class, redrawn per seed"


def test_subset_options_reject_nonsense(tiny_data):
    method = plugins.get_method("random")
    with pytest.raises(OptionError, match="recipe"):
        method.options("smoke", {"recipe": "learned_mse_adamw"})


# ----------------------------------------------------------------------------- kmeans


def test_kmeans_picks_real_images_deterministically(tiny_data):
    a, source = distill("kmeans", tiny_data, seed=0, ipc=2)
    b, _ = distill("kmeans", tiny_data, seed=0, ipc=2)
    assert a.label_kind == "hard" and torch.bincount(a.targets, minlength=4).tolist() == [2, 2, 2, 2]
    idx = matches_source(a.pixels01(), source)
    assert len(set(idx)) == len(idx)
    assert torch.equal(source.y_train[idx], a.targets)
    assert torch.equal(a.images, b.images)
    assert a.provenance.details["feature_space"]["model_sha256"] == a.provenance.depends_on["target_model"].sha256


def test_kmeans_one_per_class_is_the_image_nearest_the_class_mean(tiny_data):
    from ddbench_plugins.targets import load_target_model

    ds, source = distill("kmeans", tiny_data, ipc=1)
    model = load_target_model(ds.provenance.depends_on["target_model"].path)
    feats = model.represent_pixels(source.x_train, source.mean, source.std)
    for c, i in enumerate(ds.provenance.details["indices"]):
        members = (source.y_train == c).nonzero()[:, 0]
        f = feats[members].double()
        nearest = members[(f - f.mean(0)).square().sum(1).argmin()]
        assert int(nearest) == i


def test_kmeans_finds_separated_blobs():
    from ddbench_plugins.methods.kmeans.cluster import kmeans, nearest_distinct

    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.3 * torch.randn(20, 2, generator=g) for c in centres])
    found, assign, _ = kmeans(x, 3, torch.Generator().manual_seed(1))
    for c in centres:
        assert (found.float() - c).norm(dim=1).min() < 0.5
    assert sorted(torch.bincount(assign).tolist()) == [20, 20, 20]
    picked = nearest_distinct(x, found)
    assert len(set(picked.tolist())) == 3
    again, _, _ = kmeans(x, 3, torch.Generator().manual_seed(1))
    assert torch.equal(found, again)


# ----------------------------------------------------------------------------- budgets and presets


@pytest.mark.parametrize("name", ["random", "kmeans", "dsa", "dm"])
@pytest.mark.parametrize("preset,source", [("smoke", None), ("quick", "tinyimagenet200_32_subset"),
                                           ("paper", "cifar100"), ("paper", "tinyimagenet"),
                                           ("paper", "imagenet64")])
def test_budgets_match_krrst(name, preset, source):
    """A baseline gets exactly KRR-ST's image budget (and resolution) for the same preset and source."""
    krrst, ours = plugins.get_method("krrst"), plugins.get_method(name)
    assert ours.preset(preset, source).budget == krrst.preset(preset, source).budget
    assert ours.options(preset, {}, source=source).resolution == krrst.options(preset, {}, source=source).resolution
    assert ours.default_source(preset) == krrst.default_source(preset)
    none = plugins.get_method("none").options(preset, {}, source=source)
    assert none.resolution == krrst.options(preset, {}, source=source).resolution


def test_plugin_modules_do_not_import_torch():
    code = ("import sys\n"
            "import ddbench_plugins.methods.none, ddbench_plugins.methods.random, ddbench_plugins.methods.kmeans\n"
            "import ddbench_plugins.methods.dsa, ddbench_plugins.methods.dm\n"
            "import ddbench_plugins.tasks.transfer, ddbench_plugins.tasks.scratch\n"
            "assert 'torch' not in sys.modules, 'a plugin __init__ imported torch'\n")
    subprocess.run([sys.executable, "-c", code], check=True)
