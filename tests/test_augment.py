import itertools

import pytest
import torch
import torch.nn.functional as F

import ddbench.data
from ddbench.toolkit.augment import DSA, DSAParams, barlow_twins_views, normalize, train_augment

FAMILIES = ("color", "crop", "cutout", "flip", "scale", "rotate")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def batch() -> torch.Tensor:
    return torch.rand(8, 3, 32, 32, generator=gen(123))


def padded_crops(img: torch.Tensor, pad: int) -> list[torch.Tensor]:
    """Every HxW window of the zero-padded image, plain and mirrored."""
    _, h, w = img.shape
    p = F.pad(img, (pad, pad, pad, pad))
    crops = [p[:, i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)]
    return crops + [c.flip(-1) for c in crops]


# ---------------------------------------------------------------------------
# train_augment


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.uint8])
def test_train_augment_keeps_shape_and_dtype(dtype):
    x = (torch.rand(5, 3, 16, 12, generator=gen(0)) * 200).to(dtype)
    y = train_augment(x, gen(1))
    assert y.shape == x.shape and y.dtype == dtype


def test_train_augment_outputs_are_padded_crops(batch):
    y = train_augment(batch, gen(0))
    for img, out in zip(batch, y):
        assert any(torch.equal(out, c) for c in padded_crops(img, 4))


def test_train_augment_uses_every_offset_and_flip():
    # a single marked pixel near the centre reveals each image's shift and flip
    n, size = 3000, 16
    x = torch.zeros(n, 1, size, size)
    x[:, :, 6, 5] = 1.0
    y = train_augment(x, gen(0))
    _, _, rows, cols = torch.nonzero(y, as_tuple=True)
    assert len(rows) == n  # the marker is never cropped away by a shift of at most 4
    seen = set(zip(rows.tolist(), cols.tolist()))
    plain = {(6 + dy, 5 + dx) for dy, dx in itertools.product(range(-4, 5), repeat=2)}
    mirrored = {(r, size - 1 - c) for r, c in plain}
    assert seen == plain | mirrored


def test_train_augment_reproducible_and_seed_dependent(batch):
    assert torch.equal(train_augment(batch, gen(7)), train_augment(batch, gen(7)))
    assert not torch.equal(train_augment(batch, gen(7)), train_augment(batch, gen(8)))


def test_train_augment_leaves_global_rng_alone(batch):
    state = torch.get_rng_state()
    train_augment(batch, gen(0))
    assert torch.equal(state, torch.get_rng_state())


# ---------------------------------------------------------------------------
# DSA


def test_dsa_rejects_unknown_family():
    with pytest.raises(ValueError, match="colour"):
        DSA("colour_crop")


def test_dsa_sample_picks_one_family_of_the_strategy():
    dsa = DSA("crop_flip_rotate")
    g = gen(0)
    picked = {dsa.sample(4, g).family for _ in range(60)}
    assert picked == {"crop", "flip", "rotate"}


@pytest.mark.parametrize("family", FAMILIES)
def test_dsa_family_changes_images_and_keeps_shape(family, batch):
    params = DSA().sample(len(batch), gen(1), family=family)
    y = DSA().apply(batch, params)
    assert y.shape == batch.shape and y.dtype == batch.dtype
    changed = (y - batch).flatten(1).abs().amax(1) > 1e-4
    # flip leaves the unflipped half of the batch alone; every other family touches all images
    assert changed.any() if family == "flip" else changed.all()


@pytest.mark.parametrize("family", FAMILIES)
def test_dsa_siamese_and_differentiable(family, batch):
    dsa = DSA()
    params = dsa.sample(len(batch), gen(2), family=family)
    real = dsa.apply(batch.clone(), params)
    syn = batch.clone().requires_grad_(True)
    out = dsa.apply(syn, params)
    assert torch.equal(out.detach(), real)
    # a position-dependent loss so that flips and shifts do not cancel out
    weight = torch.linspace(-1, 1, out[0].numel()).view_as(out[0])
    (out * weight).sum().backward()
    assert syn.grad is not None and syn.grad.abs().sum() > 0


def test_dsa_reproducible_and_seed_dependent(batch):
    dsa = DSA()
    assert torch.equal(dsa(batch, gen(5)), dsa(batch, gen(5)))
    outs = [dsa(batch, gen(s)) for s in range(4)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_dsa_batch_size_mismatch_raises_and_shared_broadcasts(batch):
    dsa = DSA()
    with pytest.raises(ValueError, match="shared=True"):
        dsa.apply(batch[:3], dsa.sample(len(batch), gen(0)))
    for family in FAMILIES:
        params = dsa.sample(len(batch), gen(0), family=family, shared=True)
        assert params.shared
        big = dsa.apply(batch, params)
        small = dsa.apply(batch[:3], params)
        torch.testing.assert_close(small, big[:3])
        if family != "color":  # a shared geometric draw moves every image the same way
            same = dsa.apply(batch[:1].expand(4, -1, -1, -1), params)
            assert torch.equal(same[0], same[3])


def test_dsa_crop_is_an_integer_translation_with_zero_fill(batch):
    y = DSA().apply(batch, DSA().sample(len(batch), gen(3), family="crop"))
    for img, out in zip(batch, y):
        assert any(torch.equal(out, c) for c in padded_crops(img, 4)[:81])


def test_dsa_cutout_zeroes_one_clipped_square(batch):
    y = DSA().apply(batch + 1.0, DSA().sample(len(batch), gen(4), family="cutout"))
    for out in y:
        holes = torch.nonzero(out[0] == 0)
        rows, cols = holes[:, 0], holes[:, 1]
        h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
        assert len(holes) == h * w and 8 <= h <= 16 and 8 <= w <= 16
        assert (out[:, out[0] == 0] == 0).all()


def test_dsa_flip_only_mirrors(batch):
    y = DSA().apply(batch, DSA().sample(len(batch), gen(5), family="flip"))
    for img, out in zip(batch, y):
        assert torch.equal(out, img) or torch.equal(out, img.flip(-1))


def test_dsa_identity_parameters_reproduce_the_input(batch):
    n = len(batch)
    one, zero = torch.ones(n), torch.zeros(n)
    dsa = DSA()
    torch.testing.assert_close(dsa.apply(batch, DSAParams("scale", {"sx": one, "sy": one}, n)), batch)
    torch.testing.assert_close(dsa.apply(batch, DSAParams("rotate", {"angle": zero}, n)), batch)
    color = {"brightness": zero, "saturation": one, "contrast": one}
    torch.testing.assert_close(dsa.apply(batch, DSAParams("color", color, n)), batch)


def test_dsa_parameter_ranges():
    dsa = DSA()
    g = gen(6)
    v = dsa.sample(4000, g, family="scale").values
    for s in (v["sx"], v["sy"]):
        assert 1 / 1.2 <= s.min() < 0.85 and 1.15 < s.max() <= 1.2
    angle = dsa.sample(4000, g, family="rotate").values["angle"].rad2deg()
    assert -15 <= angle.min() < -14 and 14 < angle.max() <= 15
    flip = dsa.sample(4000, g, family="flip").values["flip"]
    assert 0.45 < flip.mean() < 0.55


def test_dsa_none_strategy_is_identity(batch):
    assert torch.equal(DSA("none")(batch, gen(0)), batch)


def test_dsa_float64(batch):
    x = batch.double()
    for family in FAMILIES:
        dsa = DSA()
        assert dsa.apply(x, dsa.sample(len(x), gen(0), family=family)).dtype == torch.float64


# ---------------------------------------------------------------------------
# Barlow Twins views


def test_barlow_twins_views_are_different_pixel_images(batch):
    v1, v2 = barlow_twins_views(batch, gen(0))
    assert v1.shape == v2.shape == batch.shape
    assert v1.min() >= 0 and v1.max() <= 1 and v2.min() >= 0 and v2.max() <= 1
    assert not torch.allclose(v1, v2)
    assert not torch.allclose(v1, batch)


def test_barlow_twins_views_reproducible_without_touching_global_rng(batch):
    state = torch.get_rng_state()
    a = barlow_twins_views(batch, gen(3))
    assert torch.equal(state, torch.get_rng_state())
    b = barlow_twins_views(batch, gen(3))
    c = barlow_twins_views(batch, gen(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_barlow_twins_views_64px_with_blur_and_solarize():
    x = torch.rand(4, 3, 64, 64, generator=gen(0))
    v1, v2 = barlow_twins_views(x, gen(1), solarize_prob=(0.0, 1.0))
    assert v1.shape == v2.shape == x.shape
    assert 0 <= v2.min() and v2.max() <= 1


def test_barlow_twins_views_needs_rgb():
    with pytest.raises(ValueError):
        barlow_twins_views(torch.rand(2, 1, 32, 32))


# ---------------------------------------------------------------------------


def test_normalize_is_reexported():
    assert normalize is ddbench.data.normalize


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_device_and_is_reproducible():
    x = torch.rand(16, 3, 32, 32, device="cuda")
    g = lambda s: torch.Generator(device="cuda").manual_seed(s)  # noqa: E731
    assert train_augment(x, g(0)).device == x.device
    assert torch.equal(train_augment(x, g(0)), train_augment(x, g(0)))
    # a CPU generator works too: only the tiny parameter tensors move
    assert torch.equal(train_augment(x, gen(0)).cpu(), train_augment(x.cpu(), gen(0)))
    dsa = DSA()
    for family in FAMILIES:
        params = dsa.sample(16, gen(0), family=family)
        torch.testing.assert_close(dsa.apply(x, params).cpu(), dsa.apply(x.cpu(), params))
    v1, v2 = barlow_twins_views(x, g(1))
    w1, w2 = barlow_twins_views(x, g(1))
    assert v1.device == x.device and torch.equal(v1, w1) and torch.equal(v2, w2)
