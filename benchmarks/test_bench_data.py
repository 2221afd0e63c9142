"""Benchmarks of ``ddbench.data.prepare`` on a fabricated 2,000-image .npz (32 px, 10 classes).

    python -m pytest benchmarks/test_bench_data.py -o addopts="" --benchmark-only

(the project's ``addopts`` skip benchmarks in the default run). Each timed call also reads
every pixel once (a cached load may map the file lazily, so this counts the page-in).
``extra_info["images_per_s"]`` is total images (train + test) over the mean time of one call.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ddbench import plugins
from ddbench.cache import ArtifactCache
from ddbench.data import clear_memo, prepare

N_TRAIN, N_TEST, CLASSES, SIZE = 2000, 500, 10, 32


@pytest.fixture
def sample(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.savez_compressed(
        folder / "bench2k.npz",
        x_train=rng.integers(0, 256, (N_TRAIN, SIZE, SIZE, 3), dtype=np.uint8),
        y_train=np.arange(N_TRAIN, dtype=np.int64) % CLASSES,
        x_test=rng.integers(0, 256, (N_TEST, SIZE, SIZE, 3), dtype=np.uint8),
        y_test=np.arange(N_TEST, dtype=np.int64) % CLASSES,
        class_names=np.array([f"c{i}" for i in range(CLASSES)]),
    )
    monkeypatch.setenv("DDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DDBENCH_DATA", str(folder))
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "1")
    plugins.reset()
    clear_memo()
    plugins.registry("dataset")  # plugin loading is not what is measured
    yield tmp_path
    plugins.reset()
    clear_memo()


def _prepare_and_touch(resolution, **kw):
    p = prepare("bench2k", resolution, **kw)
    float(p.x_train.sum() + p.x_val.sum() + p.x_test.sum())
    return p


def _record(benchmark, resolution):
    benchmark.extra_info["images"] = N_TRAIN + N_TEST
    benchmark.extra_info["resolution"] = resolution or SIZE
    benchmark.extra_info["images_per_s"] = (N_TRAIN + N_TEST) / benchmark.stats.stats.mean


@pytest.mark.parametrize("resolution", [None, 64])
def test_prepare_cold(benchmark, sample, resolution):
    """First call: read the .npz, split, convert (and resize), hash, write the cache."""
    counter = itertools.count()

    def setup():
        clear_memo()
        return (), {"cache": ArtifactCache(sample / f"cache{next(counter)}")}

    benchmark.pedantic(lambda cache: _prepare_and_touch(resolution, cache=cache), setup=setup,
                       rounds=3, iterations=1)
    _record(benchmark, resolution)


@pytest.mark.parametrize("resolution", [None, 64])
def test_prepare_warm(benchmark, sample, resolution):
    """Later process: the prepared tensors come from the disk cache."""
    prepare("bench2k", resolution)

    def setup():
        clear_memo()

    result = benchmark.pedantic(lambda: _prepare_and_touch(resolution), setup=setup, rounds=10, iterations=1)
    assert result.info["from_cache"]
    _record(benchmark, resolution)
