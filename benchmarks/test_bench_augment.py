"""Throughput of the augmentations on a 256x3x32x32 CPU batch, in images/s
(``benchmark.extra_info["images_per_s"]``, from the mean time per call).

Run with: python -m pytest benchmarks/test_bench_augment.py --benchmark-only -q
"""

import pytest
import torch

from ddbench.toolkit.augment import DSA, barlow_twins_views, train_augment

N = 256
FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.rand(N, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def record(benchmark, images: int = N) -> None:
    benchmark.extra_info["images_per_s"] = round(images / benchmark.stats.stats.mean)
    benchmark.extra_info["batch"] = [N, 3, 32, 32]
    benchmark.extra_info["torch_threads"] = torch.get_num_threads()


def test_bench_train_augment(benchmark, batch):
    g = torch.Generator().manual_seed(0)
    benchmark(train_augment, batch, g)
    record(benchmark)


@pytest.mark.parametrize("family", FAMILIES)
def test_bench_dsa(benchmark, batch, family):
    """sample + apply, forward only (evaluation-time augmentation)."""
    dsa, g = DSA(), torch.Generator().manual_seed(0)
    benchmark(lambda: dsa.apply(batch, dsa.sample(N, g, family=family)))
    record(benchmark)


@pytest.mark.parametrize("family", FAMILIES)
def test_bench_dsa_backward(benchmark, batch, family):
    """sample + apply + backward to the images (distillation-time augmentation)."""
    dsa, g = DSA(), torch.Generator().manual_seed(0)
    x = batch.clone().requires_grad_(True)

    def step():
        x.grad = None
        dsa.apply(x, dsa.sample(N, g, family=family)).sum().backward()

    benchmark(step)
    record(benchmark)


def test_bench_barlow_twins_views(benchmark, batch):
    """Both views of every image; images/s counts input images (one pair each)."""
    g = torch.Generator().manual_seed(0)
    benchmark(barlow_twins_views, batch, g)
    record(benchmark)
