import pytest
import torch

from ddbench.distilled import DistilledSet
from ddbench.errors import DataError


def make(kind="representation", value_range=None):
    g = torch.Generator().manual_seed(0)
    # learned pixels (randn) leave [0, 1], as KRR-ST's do: hence value_range=None
    return DistilledSet(images=torch.randn(5, 3, 8, 8, generator=g), targets=torch.randn(5, 16, generator=g),
                        label_kind=kind, recipe="representation_mse", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3),
                        num_classes=10, source="src", resolution=8, method="m", provenance={"a": [1, 2], "b": {"c": "d"}},
                        value_range=value_range)


def test_round_trip_identical(tmp_path):
    d = make()
    hashes = d.save(tmp_path / "set")
    e = DistilledSet.load(tmp_path / "set")
    assert torch.equal(d.images, e.images) and torch.equal(d.targets, e.targets)
    for f in ("label_kind", "recipe", "pixel_space", "mean", "std", "num_classes", "source", "resolution", "method", "provenance",
              "value_range"):
        assert getattr(d, f) == getattr(e, f), f
    assert len(hashes["images"]) == 64
    assert not list((tmp_path / "set").glob("*.pkl")) and not list((tmp_path / "set").glob("*.pt"))


def test_budget_counts_targets():
    d = make()
    b = d.budget()
    assert b["images"] == 5 and b["bytes"] == 5 * 3 * 8 * 8 + 5 * 16 * 4
    h = DistilledSet(images=torch.zeros(4, 3, 8, 8), targets=torch.arange(4), label_kind="hard", recipe="hard_ce_dsa", num_classes=4,
                     resolution=8)
    assert h.budget()["bytes"] == 4 * 3 * 8 * 8 + 4


def test_bad_fields_and_corrupt(tmp_path):
    with pytest.raises(DataError):
        DistilledSet(images=torch.zeros(2, 3, 4, 4), targets=torch.zeros(3, dtype=torch.long), label_kind="hard",
                     recipe="hard_ce_dsa", resolution=4)
    with pytest.raises(DataError):
        DistilledSet(images=torch.zeros(2, 3, 4, 4), targets=torch.zeros(2), label_kind="weird", recipe="hard_ce_dsa",
                     resolution=4)
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
                     label_kind="hard", recipe="hard_ce_dsa", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), resolution=4)
    assert torch.allclose(d.pixels01(), x, atol=1e-6)
    assert torch.allclose(d.inputs(x), d.images, atol=1e-6)  # pixels into the set's space: the inverse
    raw = DistilledSet(images=x, targets=torch.zeros(2, dtype=torch.long), label_kind="hard", recipe="hard_ce_dsa",
                       pixel_space="raw01", mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3), resolution=4)
    assert torch.equal(raw.inputs(x), x)


# ---- the contract a method's set must meet (one clear DataError naming the method) ----

def _source(res=8, classes=4):
    from types import SimpleNamespace

    return SimpleNamespace(name="src8", resolution=res, num_classes=classes, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3))


def _from_source(images, targets=None, kind="hard", **kw):
    t = torch.arange(len(images)) % 4 if targets is None else targets
    return DistilledSet.from_source(_source(), images, t, label_kind=kind, recipe="hard_ce_dsa", method="mymethod", **kw)


def _nan_pixels():
    x = torch.rand(4, 3, 8, 8)
    x[1, 2, 3, 4] = float("nan")
    return x


def _inf_pixels():
    x = torch.rand(4, 3, 8, 8)
    x[0, 0, 0, 0] = float("inf")
    return x


BAD_SETS = [
    ("0-255 floats", lambda: _from_source(torch.rand(4, 3, 8, 8) * 255), "looks like 0-255 pixels: divide by 255"),
    ("uint8", lambda: _from_source((torch.rand(4, 3, 8, 8) * 255).to(torch.uint8)), "convert with .float()/255"),
    ("uint8 channels-last", lambda: _from_source((torch.rand(4, 8, 8, 3) * 255).to(torch.uint8)),
     "channels-last: permute to (N, C, H, W)"),
    ("channels-last", lambda: _from_source(torch.rand(4, 8, 8, 3)), "channels-last: permute to (N, C, H, W)"),
    ("float64", lambda: _from_source(torch.rand(4, 3, 8, 8).double()), "expected float32: convert with .float()"),
    ("3-d images", lambda: _from_source(torch.rand(4, 8, 8)), "expected (N, C, H, W)"),
    ("grey", lambda: _from_source(torch.rand(4, 1, 8, 8)), "1 channels but source 'src8' has 3"),
    ("wrong resolution", lambda: _from_source(torch.rand(4, 3, 16, 16)), "16x16 but source 'src8' is 8x8"),
    ("non-square", lambda: _from_source(torch.rand(4, 3, 8, 6)), "8x6 but source 'src8' is 8x8"),
    ("NaN pixels", lambda: _from_source(_nan_pixels()), "1 of the distilled set's 768 pixel values are NaN or infinite"),
    ("inf pixels", lambda: _from_source(_inf_pixels()), "NaN or infinite"),
    ("out of [0, 1]", lambda: _from_source(torch.rand(4, 3, 8, 8) * 1.5 - 0.2), "outside its value_range (0, 1)"),
    ("numpy images", lambda: _from_source(torch.rand(4, 3, 8, 8).numpy()), "not a torch.Tensor"),
    ("list targets", lambda: _from_source(torch.rand(4, 3, 8, 8), [0, 1, 2, 3]), "not a torch.Tensor"),
    ("labels too large", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 4])), "outside [0, 4)"),
    ("negative labels", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.tensor([0, -1, 2, 3])), "outside [0, 4)"),
    ("int32 labels", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.arange(4).int()), "convert with .long()"),
    ("one-hot hard labels", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.eye(4)), "use targets.argmax(1)"),
    ("too few targets", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.arange(3)), "4 images but 3 targets"),
    ("soft int targets", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.arange(4), kind="soft"),
     "soft targets must be float32 of shape (N, d)"),
    ("float64 representations", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.rand(4, 5).double(), kind="representation"),
     "convert with .float()"),
    ("NaN targets", lambda: _from_source(torch.rand(4, 3, 8, 8), torch.full((4, 5), float("nan")), kind="representation"),
     "targets are NaN or infinite"),
    ("bad value_range", lambda: _from_source(torch.rand(4, 3, 8, 8), value_range=(1, 0)), "value_range must be (low, high)"),
]


@pytest.mark.parametrize("build, needle", [b[1:] for b in BAD_SETS], ids=[b[0] for b in BAD_SETS])
def test_bad_set_is_one_clear_error_naming_the_method(build, needle):
    with pytest.raises(DataError) as err:
        build()
    msg = str(err.value)
    assert needle in msg
    assert msg.startswith("method 'mymethod': ") and "\n" not in msg


def test_good_sets_pass_and_round_off_does_not_trip_the_range():
    # exact 0 and 1 pixels, normalised and mapped back in float32, stay within the tolerance
    x = torch.rand(6, 3, 8, 8)
    x[0], x[1] = 0.0, 1.0
    d = _from_source(x, torch.tensor([0, 1, 2, 3, 0, 1]))
    assert torch.allclose(d.pixels01(), x, atol=1e-6)
    _from_source(torch.rand(4, 3, 8, 8) * 3 - 1, value_range=None)  # learned pixels, declared unbounded
    _from_source(torch.rand(4, 3, 8, 8), torch.rand(4, 5), kind="representation")
    assert DistilledSet.empty(_source()).num_images == 0


def test_value_range_in_manifest_and_defaults_when_absent(tmp_path):
    import json

    d = make(value_range=None)
    d.save(tmp_path / "a")
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["value_range"] is None
    assert DistilledSet.load(tmp_path / "a").value_range is None
    e = _from_source(torch.rand(4, 3, 8, 8))
    e.save(tmp_path / "b")
    man = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert man["value_range"] == [0.0, 1.0]
    del man["value_range"]  # a set saved before the field existed
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(man))
    assert DistilledSet.load(tmp_path / "b").value_range == (0.0, 1.0)


def test_save_rechecks_a_set_changed_after_it_was_built(tmp_path):
    d = _from_source(torch.rand(4, 3, 8, 8))
    d.images = d.images * 255  # what a method might do after from_source
    with pytest.raises(DataError, match="outside its value_range"):
        d.save(tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_load_of_an_invalid_set_names_the_folder(tmp_path):
    import json

    d = make(value_range=None)
    d.save(tmp_path / "s")
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    man["value_range"] = [0.0, 1.0]  # its randn pixels leave [0, 1]
    (tmp_path / "s" / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match=r"the distilled set at .* is invalid .*delete it and rerun"):
        DistilledSet.load(tmp_path / "s")


def test_provenance_is_typed_and_round_trips(tmp_path):
    import torch

    from ddbench.distilled import DistilledSet
    from ddbench.errors import DataError
    from ddbench.types import ArchSpec, ArtifactRef, Provenance

    prov = {"options": {"lr": 0.1}, "arch": {"name": "convnet", "kwargs": {"widths": [8]}, "width": 1.0},
            "depends_on": {"teacher": {"path": "/x", "sha256": "ab", "quality": 90}}, "selection": "first images",
            "losses": [1.0, 0.5]}
    d = DistilledSet(images=torch.zeros(2, 3, 8, 8), targets=torch.zeros(2, dtype=torch.long), label_kind="hard",
                     recipe="r", num_classes=2, resolution=8, provenance=prov)
    assert isinstance(d.provenance, Provenance) and d.provenance.arch == ArchSpec("convnet", {"widths": [8]})
    assert d.provenance.depends_on["teacher"] == ArtifactRef("/x", "ab", {"quality": 90})
    assert d.provenance.details == {"losses": [1.0, 0.5]}  # what no plugin reads stays for people
    d.save(tmp_path)
    back = DistilledSet.load(tmp_path)
    assert back.provenance == d.provenance
    # build arguments live under kwargs: a loose key is an error, not a guess
    with pytest.raises(DataError, match="unknown keys \\['widths'\\]"):
        ArchSpec.parse({"name": "convnet", "widths": [8]})
