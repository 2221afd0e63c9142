"""ddbench.data.prepare: resize, validation split, statistics, hash, disk cache and memo."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench import data, plugins
from ddbench.cache import ArtifactCache
from ddbench.data import PreparedData, clear_memo, prepare, split_indices
from ddbench.errors import DataError, DDBenchError, UnknownNameError
from ddbench.interfaces import Dataset, RawSplits

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _data_path(tmp_path, monkeypatch):
    """conftest isolates DDBENCH_HOME (tmp_path / "home"); the data path is tmp_path / "data"."""
    monkeypatch.setenv("DDBENCH_DATA", str(tmp_path / "data"))


def fabricate(counts=(10, 7, 2, 1), n_test=3, size=8, seed=0, test_value=None):
    """Images whose first pixel holds a unique id (so splits can be traced), labels by class."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c, np.int64) for c, n in enumerate(counts)])
    x = rng.integers(0, 256, (len(y), size, size, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(len(y)) % 256
    x[:, 0, 0, 1] = np.arange(len(y)) // 256
    k = len(counts)
    y_test = np.repeat(np.arange(k, dtype=np.int64), n_test)
    x_test = rng.integers(0, 256, (len(y_test), size, size, 3), dtype=np.uint8)
    if test_value is not None:
        x_test[:] = test_value
    return {"x_train": x, "y_train": y, "x_test": x_test, "y_test": y_test,
            "class_names": np.array([f"c{i}" for i in range(k)])}


def write(tmp_path, name="tiny", **kw) -> Path:
    folder = tmp_path / "data"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.npz"
    np.savez_compressed(path, **fabricate(**kw))
    plugins.reset()
    return path


def ids(x: torch.Tensor) -> list[int]:
    """The fabricated ids back from float pixels."""
    px = (x[:, :2, 0, 0] * 255).round().long()
    return (px[:, 0] + 256 * px[:, 1]).tolist()


class InMemory(Dataset):
    """A registered test dataset whose images are given directly."""

    def __init__(self, name, raw, location="<in memory>"):
        self.name = name
        self.raw = raw
        self.location = location
        self.loads = 0

    def locate(self):
        return self.location

    def load(self):
        self.loads += 1
        return self.raw


@pytest.fixture
def register():
    added = []

    class Plugin:
        def __init__(self, datasets):
            self.datasets = datasets

        from ddbench import hookimpl

        @hookimpl
        def ddbench_register_datasets(self, register):
            for d in self.datasets:
                register(d)

    def add(*datasets):
        p = Plugin(datasets)
        plugins.register_plugin(p, name=f"test-{len(added)}")
        added.append(p)

    yield add
    for p in added:
        plugins.unregister_plugin(p)


# -- basic shape of the result ---------------------------------------------------------------

def test_prepare_npz_native(tmp_path):
    write(tmp_path)
    p = prepare("tiny")
    assert isinstance(p, PreparedData)
    assert p.name == "tiny" and p.resolution == 8 and p.num_classes == 4
    assert p.class_names == ["c0", "c1", "c2", "c3"]
    for x in (p.x_train, p.x_val, p.x_test):
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 8, 8)
        assert float(x.min()) >= 0 and float(x.max()) <= 1
    for y in (p.y_train, p.y_val, p.y_test):
        assert y.dtype == torch.int64
    assert len(p.y_train) + len(p.y_val) == 20 and len(p.y_test) == 12
    raw = fabricate()
    expect = torch.from_numpy(raw["x_test"]).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(p.x_test, expect)  # exactly uint8 / 255 at native resolution
    assert p.info["resized"] is False and p.info["location"] == str(tmp_path / "data" / "tiny.npz")
    assert isinstance(p.mean[0], float) and isinstance(p.std[0], float)
    assert p.summary()["n_val"] == len(p.y_val)


# -- validation split --------------------------------------------------------------------------

def test_validation_split_is_class_balanced_and_disjoint(tmp_path):
    write(tmp_path, counts=(10, 7, 2, 1, 25))
    p = prepare("tiny", val_fraction=0.1)
    per_class = torch.bincount(p.y_val, minlength=5).tolist()
    # round(0.1 * n), at least 1 for classes with >= 2 images, none for a single image
    assert per_class == [1, 1, 1, 0, 2]
    train_ids, val_ids = ids(p.x_train), ids(p.x_val)
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == list(range(45))
    y = fabricate(counts=(10, 7, 2, 1, 25))["y_train"]
    assert [int(y[i]) for i in val_ids] == p.y_val.tolist()  # labels travel with their images


def test_validation_split_is_seeded(tmp_path):
    write(tmp_path, counts=(30, 30, 30))
    a = prepare("tiny", val_seed=0, cache=False)
    clear_memo()
    b = prepare("tiny", val_seed=0, cache=False)
    c = prepare("tiny", val_seed=1, cache=False)
    assert ids(a.x_val) == ids(b.x_val) and a.content_hash == b.content_hash
    assert ids(a.x_val) != ids(c.x_val) and a.content_hash != c.content_hash
    assert torch.bincount(c.y_val).tolist() == [3, 3, 3]


def test_split_indices_edge_cases():
    y = np.array([0] * 5 + [1] * 2 + [2])
    tr, va = split_indices(y, 3, 0.0, 0)
    assert len(va) == 0 and tr.tolist() == list(range(8))
    tr, va = split_indices(y, 3, 0.9, 0)  # never the whole class
    assert np.bincount(y[va], minlength=3).tolist() == [4, 1, 0]
    tr2, va2 = split_indices(y, 3, 0.9, 0)
    assert va.tolist() == va2.tolist()
    assert sorted(tr.tolist() + va.tolist()) == list(range(8))


def test_val_fraction_zero_gives_empty_validation(tmp_path):
    write(tmp_path)
    p = prepare("tiny", val_fraction=0.0)
    assert p.x_val.shape == (0, 3, 8, 8) and len(p.y_val) == 0
    clear_memo()
    assert prepare("tiny", val_fraction=0.0).info["from_cache"]


# -- statistics and hash -----------------------------------------------------------------------

def test_stats_come_from_the_remaining_training_images(tmp_path):
    write(tmp_path, counts=(20, 20), test_value=255)  # a white test set would move the mean
    p = prepare("tiny")
    x = p.x_train.double()
    mean = x.mean(dim=(0, 2, 3))
    std = x.permute(1, 0, 2, 3).reshape(3, -1).std(dim=1, correction=0)
    assert p.mean == pytest.approx(mean.tolist(), abs=1e-9)
    assert p.std == pytest.approx(std.tolist(), abs=1e-9)
    with_val = torch.cat([p.x_train, p.x_val]).double().mean(dim=(0, 2, 3))
    assert p.mean != pytest.approx(with_val.tolist(), abs=1e-6)
    assert all(m < 0.9 for m in p.mean)


def test_content_hash_covers_all_prepared_tensors(tmp_path):
    write(tmp_path)
    p = prepare("tiny")
    h = hashlib.sha256()
    for t in (p.x_train, p.y_train, p.x_val, p.y_val, p.x_test, p.y_test):
        h.update(t.contiguous().numpy().tobytes())
    assert p.content_hash == h.hexdigest()


# -- resizing ---------------------------------------------------------------------------------

def test_resize_to_64(tmp_path):
    write(tmp_path, size=32)
    native = prepare("tiny")
    p = prepare("tiny", 64)
    assert p.resolution == 64 and p.x_train.shape[1:] == (3, 64, 64) and p.x_test.shape[1:] == (3, 64, 64)
    assert float(p.x_train.min()) >= 0 and float(p.x_train.max()) <= 1
    assert p.info["resized"] is True and "bicubic" in p.info["resize_method"]
    assert p.content_hash != native.content_hash
    assert ids(p.x_val) != [] and torch.equal(p.y_val, native.y_val)  # same split at any resolution
    assert p.mean == pytest.approx(native.mean, abs=0.02)


def test_resize_keeps_a_constant_image_constant(register):
    x = np.full((4, 10, 10, 3), 200, np.uint8)
    y = np.array([0, 0, 1, 1], np.int64)
    register(InMemory("flat", RawSplits(x, y, x[:2], y[:2], ["a", "b"])))
    p = prepare("flat", 16, cache=False)
    assert torch.allclose(p.x_train, torch.full_like(p.x_train, 200 / 255), atol=1e-5)
    assert p.std == pytest.approx((0.0, 0.0, 0.0), abs=1e-6)


def test_non_square_images_need_a_resolution(register):
    x = np.zeros((4, 10, 12, 3), np.uint8)
    y = np.array([0, 0, 1, 1], np.int64)
    register(InMemory("wide", RawSplits(x, y, x[:2], y[:2], ["a", "b"])))
    with pytest.raises(DataError, match="pass a resolution"):
        prepare("wide", cache=False)
    assert prepare("wide", 8, cache=False).x_train.shape[1:] == (3, 8, 8)


# -- caching ---------------------------------------------------------------------------------

def test_second_call_loads_from_cache(tmp_path, monkeypatch):
    write(tmp_path)
    first = prepare("tiny")
    assert first.info["from_cache"] is False
    folder = Path(first.info["cache_dir"])
    assert folder.parent == tmp_path / "home" / "cache" / "data"
    assert {"tensors.safetensors", "meta.json", "config.json"} <= {p.name for p in folder.iterdir()}
    clear_memo()
    plugins.reset()

    def no_load(self):
        raise AssertionError("loaded the raw data although the prepared data was cached")

    monkeypatch.setattr(type(plugins.get_dataset("tiny")), "load", no_load)
    second = prepare("tiny")
    assert second.info["from_cache"] is True and second.content_hash == first.content_hash
    for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(first, k), getattr(second, k))
    assert (second.mean, second.std, second.class_names) == (first.mean, first.std, first.class_names)


def test_cached_resized_data_round_trips(tmp_path):
    write(tmp_path)
    first = prepare("tiny", 12)
    clear_memo()
    second = prepare("tiny", 12)
    assert second.info["from_cache"] and torch.equal(first.x_train, second.x_train)
    assert second.content_hash == first.content_hash


def test_memo_returns_the_same_object(tmp_path):
    write(tmp_path)
    assert prepare("tiny") is prepare("tiny")
    assert prepare("tiny") is not prepare("tiny", val_seed=3)


def test_explicit_cache_and_no_cache(tmp_path):
    write(tmp_path)
    cache = ArtifactCache(tmp_path / "elsewhere")
    p = prepare("tiny", cache=cache)
    assert Path(p.info["cache_dir"]).parent == tmp_path / "elsewhere" / "data"
    q = prepare("tiny", cache=False)
    assert q.info["cache_dir"] is None and q.content_hash == p.content_hash
    assert not (tmp_path / "home" / "cache").exists()


def test_changed_file_is_not_served_from_cache(tmp_path):
    path = write(tmp_path)
    first = prepare("tiny")
    clear_memo()
    np.savez_compressed(path, **fabricate(seed=5))
    os.utime(path, ns=(1, 1))
    second = prepare("tiny")
    assert second.info["from_cache"] is False and second.content_hash != first.content_hash


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    write(tmp_path)
    first = prepare("tiny")
    (Path(first.info["cache_dir"]) / "tensors.safetensors").write_bytes(b"junk")
    clear_memo()
    again = prepare("tiny")
    assert again.info["from_cache"] is False and again.content_hash == first.content_hash
    clear_memo()
    assert prepare("tiny").info["from_cache"] is True


def test_config_records_file_identity_and_version(tmp_path):
    path = write(tmp_path)
    cfg = prepare("tiny", 16, val_fraction=0.2, val_seed=4).info["config"]
    st = path.stat()
    assert cfg["source"]["path"] == str(path.resolve())
    assert cfg["source"]["stat"] == [st.st_size, st.st_mtime_ns]
    assert (cfg["resolution"], cfg["val_fraction"], cfg["val_seed"]) == (16, 0.2, 4)
    assert cfg["prep_version"] == data.PREP_VERSION


# -- errors ------------------------------------------------------------------------------------

def test_errors_reach_the_caller(tmp_path):
    write(tmp_path)
    with pytest.raises(UnknownNameError, match="did you mean tiny"):
        prepare("tinny")
    for bad in (0, -3, 2.5, "32", True):
        with pytest.raises(DDBenchError, match="resolution"):
            prepare("tiny", bad)
    for bad in (-0.1, 1.0):
        with pytest.raises(DDBenchError, match="val_fraction"):
            prepare("tiny", val_fraction=bad)


def test_missing_dataset_lists_folders(tmp_path):
    with pytest.raises(DataError) as e:
        prepare("cifar100")
    assert str(tmp_path / "data") in str(e.value) and str(tmp_path / "home" / "data") in str(e.value)
    assert not (tmp_path / "home" / "cache" / "data").exists() or not any((tmp_path / "home" / "cache" / "data").iterdir())


def test_invalid_raw_from_a_plugin_is_a_data_error(register):
    x = np.zeros((4, 8, 8, 3), np.uint8)
    register(InMemory("badlabels", RawSplits(x, np.array([0, 1, 2, 5]), x[:1], np.array([0]), ["a", "b", "c"])),
             InMemory("badlen", RawSplits(x, np.array([0, 1, 2]), x[:1], np.array([0]), ["a", "b", "c"])))
    with pytest.raises(DataError, match=r"outside \[0, 3\)"):
        prepare("badlabels", cache=False)
    with pytest.raises(DataError, match="4 images but y_train has 3 labels"):
        prepare("badlen", cache=False)


def test_in_memory_dataset_is_cached_per_home(register, tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    y = np.array([0, 0, 0, 1, 1, 1], np.int64)
    ds = InMemory("mem", RawSplits(x, y, x[:2], y[:2], ["a", "b"]))
    register(ds)
    p = prepare("mem")
    clear_memo()
    q = prepare("mem")
    assert ds.loads == 1 and q.info["from_cache"] and q.content_hash == p.content_hash


# -- the sample data ----------------------------------------------------------------------------

@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"sample data not at {SHARED}")
def test_prepare_flowers12_32(monkeypatch):
    monkeypatch.setenv("DDBENCH_DATA", str(SHARED))
    plugins.reset()
    p = prepare("flowers12_32")
    assert p.num_classes == 12 and p.resolution == 32
    assert torch.bincount(p.y_val).tolist() == [6] * 12 and torch.bincount(p.y_train).tolist() == [54] * 12
    assert len(p.y_test) == 240
    clear_memo()
    q = prepare("flowers12_32")
    assert q.info["from_cache"] and q.content_hash == p.content_hash
