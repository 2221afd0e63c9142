import pytest
import torch

from ddbench.distilled import DistilledSet
from ddbench.errors import DataError


def make(kind="representation"):
    g = torch.Generator().manual_seed(0)
    return DistilledSet(images=torch.randn(5, 3, 8, 8, generator=g), targets=torch.randn(5, 16, generator=g),
                        label_kind=kind, recipe="representation_mse", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
                        num_classes=10, source="src", resolution=8, method="m", provenance={"a": [1, 2], "b": {"c": "d"}})


def test_round_trip_identical(tmp_path):
    d = make()
    hashes = d.save(tmp_path / "set")
    e = DistilledSet.load(tmp_path / "set")
    assert torch.equal(d.images, e.images) and torch.equal(d.targets, e.targets)
    for f in ("label_kind", "recipe", "pixel_space", "mean", "std", "num_classes", "source", "resolution", "method", "provenance"):
        assert getattr(d, f) == getattr(e, f), f
    assert len(hashes["images"]) == 64
    assert not list((tmp_path / "set").glob("*.pkl")) and not list((tmp_path / "set").glob("*.pt"))


def test_budget_counts_targets():
    d = make()
    b = d.budget()
    assert b["images"] == 5 and b["bytes"] == 5 * 3 * 8 * 8 + 5 * 16 * 4
    h = DistilledSet(images=torch.zeros(4, 3, 8, 8), targets=torch.arange(4), label_kind="hard", recipe="hard_ce_dsa", num_classes=4)
    assert h.budget()["bytes"] == 4 * 3 * 8 * 8 + 4


def test_bad_fields_and_corrupt(tmp_path):
    with pytest.raises(DataError):
        DistilledSet(images=torch.zeros(2, 3, 4, 4), targets=torch.zeros(3), label_kind="hard", recipe="hard_ce_dsa")
    with pytest.raises(DataError):
        DistilledSet(images=torch.zeros(2, 3, 4, 4), targets=torch.zeros(2), label_kind="weird", recipe="hard_ce_dsa")
    d = make()
    d.save(tmp_path / "s")
    (tmp_path / "s" / "images.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match="corrupt"):
        DistilledSet.load(tmp_path / "s")
    with pytest.raises(DataError, match="missing"):
        DistilledSet.load(tmp_path / "nothing")


def test_pixels01_inverts_normalisation():
    x = torch.rand(2, 3, 4, 4)
    from ddbench.data import normalize

    d = DistilledSet(images=normalize(x, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)), targets=torch.zeros(2, dtype=torch.long),
                     label_kind="hard", recipe="hard_ce_dsa", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))
    assert torch.allclose(d.pixels01(), x, atol=1e-6)
