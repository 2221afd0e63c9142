"""Batched data augmentation on tensors: the crop+flip used for training on real data,
Differentiable Siamese Augmentation (DSA), and the Barlow Twins view pair.

Everything works on whatever device the batch lives on and is reproducible when a
``torch.Generator`` is passed. Only tiny parameter tensors ever cross devices.

DSA follows Zhao & Bilen, "Dataset Condensation with Differentiable Siamese
Augmentation" (ICML 2021); reference code: github.com/VICO-UoE/DatasetCondensation
(``utils.py``: ``ParamDiffAug``, ``DiffAugment``, ``rand_*``). Differences from the
reference are listed in the :class:`DSA` docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from ddbench.data import normalize

__all__ = ["train_augment", "DSA", "DSAParams", "barlow_twins_views", "normalize"]


# ---------------------------------------------------------------------------
# random draws


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device | str | None) -> Tensor:
    """U[0, 1) float32 draws from ``generator`` (on its own device), placed on ``device``."""
    draw_device = generator.device if generator is not None else device
    u = torch.rand(shape, generator=generator, device=draw_device)
    return u if device is None else u.to(device)


def _as_device(device: torch.device | str | None) -> torch.device | None:
    return None if device is None else torch.device(device)


# ---------------------------------------------------------------------------
# crop + flip by index arithmetic


def _gather_crops(x: Tensor, pad: int, top: Tensor, left: Tensor, flip: Tensor) -> Tensor:
    """Per image ``i``: zero-pad by ``pad``, take the HxW window at (top[i], left[i]),
    mirror it horizontally where flip[i]. One gather over the padded batch, so it is
    cheap and differentiable. ``top``/``left`` are int64 (N,), ``flip`` bool (N,)."""
    n, c, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad)) if pad else x
    hp, wp = h + 2 * pad, w + 2 * pad
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    cols = left[:, None] + torch.where(flip[:, None], (w - 1) - ar_w, ar_w)  # (N, W)
    rows = top[:, None] + ar_h  # (N, H)
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return xp.reshape(n, c, hp * wp).gather(2, index).view(n, c, h, w)


def train_augment(x: Tensor, generator: torch.Generator | None = None, *, pad: int = 4) -> Tensor:
    """Random crop with ``pad`` px zero padding and random horizontal flip (p = 0.5),
    independently per image of a (N, C, H, W) batch in any value space.

    Equivalent to torchvision's ``RandomCrop(size, padding=pad)`` + ``RandomHorizontalFlip()``
    applied image by image, but done as one gather on ``x``'s device."""
    if x.dim() != 4:
        raise ValueError(f"train_augment expects a (N, C, H, W) batch, got shape {tuple(x.shape)}")
    n = x.shape[0]
    u = _uniform((3, n), generator, x.device)
    offsets = (u[:2] * (2 * pad + 1)).long().clamp_(max=2 * pad)
    return _gather_crops(x, pad, offsets[0], offsets[1], u[2] < 0.5)


# ---------------------------------------------------------------------------
# DSA


@dataclasses.dataclass(frozen=True)
class DSAParams:
    """One draw of DSA parameters: the chosen family and its per-image values.

    ``values`` holds float tensors of shape (batch_size,) -- or (1,) when ``batch_size``
    is None, i.e. a *shared* draw that broadcasts to a batch of any size. Crop and cutout
    positions are stored as U[0, 1) fractions and turned into pixels by :meth:`DSA.apply`
    from the image size, so one draw fits real and synthetic batches alike."""

    family: str
    values: dict[str, Tensor]
    batch_size: int | None
    #: ``family == "M"`` (all families, the reference's ``aug_mode='M'``): one draw per family,
    #: applied in strategy order
    chain: tuple["DSAParams", ...] = ()

    @property
    def shared(self) -> bool:
        return self.batch_size is None

    def to(self, device: torch.device | str) -> "DSAParams":
        return dataclasses.replace(self, values={k: v.to(device) for k, v in self.values.items()},
                                   chain=tuple(p.to(device) for p in self.chain))


def _bcast(v: Tensor, x: Tensor) -> Tensor:
    """(m,) -> (m, 1, 1, 1) in ``x``'s dtype, m in {1, N}."""
    return v.to(dtype=x.dtype).view(-1, 1, 1, 1)


def _sample_color(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    return {"brightness": (draw() - 0.5) * dsa.brightness,   # additive shift
            "saturation": draw() * dsa.saturation,           # factor around the per-pixel channel mean
            "contrast": draw() + dsa.contrast}               # factor around the per-image mean


def _apply_color(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    x = x + _bcast(v["brightness"], x)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * _bcast(v["saturation"], x) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _bcast(v["contrast"], x) + mean


def _sample_crop(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    return {"y": draw(), "x": draw()}


def _apply_crop(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    # translation by t in [-s, s] pixels per axis with zero fill, s = round(ratio * size)
    n, _, h, w = x.shape
    sh, sw = int(h * dsa.crop + 0.5), int(w * dsa.crop + 0.5)
    pad = max(sh, sw)
    top = (v["y"] * (2 * sh + 1)).long().clamp_(max=2 * sh) + (pad - sh)
    left = (v["x"] * (2 * sw + 1)).long().clamp_(max=2 * sw) + (pad - sw)
    no_flip = torch.zeros((), dtype=torch.bool, device=x.device)
    return _gather_crops(x, pad, top.expand(n), left.expand(n), no_flip.expand(n))


def _sample_cutout(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    return {"y": draw(), "x": draw()}


def _apply_cutout(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    _, _, h, w = x.shape
    ch, cw = int(h * dsa.cutout + 0.5), int(w * dsa.cutout + 0.5)

    def inside(u: Tensor, size: int, cut: int) -> Tensor:
        # the reference's centre range: [0, size] for an even cut, [0, size) for an odd one
        n_centres = size + 1 - cut % 2
        lo = (u * n_centres).long().clamp_(max=n_centres - 1) - cut // 2
        pos = torch.arange(size, device=x.device)
        return (pos >= lo[:, None]) & (pos < lo[:, None] + cut)  # (m, size)

    hole = inside(v["y"], h, ch)[:, :, None] & inside(v["x"], w, cw)[:, None, :]
    return x * (~hole).unsqueeze(1).to(x.dtype)


def _sample_flip(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    return {"flip": (draw() < dsa.flip).float()}


def _apply_flip(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    return torch.where(v["flip"].view(-1, 1, 1, 1) > 0.5, x.flip(3), x)


def _sample_scale(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    lo, hi = 1.0 / dsa.scale, dsa.scale
    return {"sx": draw() * (hi - lo) + lo, "sy": draw() * (hi - lo) + lo}


def _apply_scale(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    sx, sy = v["sx"].to(x.dtype), v["sy"].to(x.dtype)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, zero], -1), torch.stack([zero, sy, zero], -1)], 1)
    return _warp(x, theta)


def _sample_rotate(dsa: "DSA", draw: Callable[[], Tensor]) -> dict[str, Tensor]:
    return {"angle": (draw() - 0.5) * (2 * math.radians(dsa.rotate))}


def _apply_rotate(dsa: "DSA", x: Tensor, v: dict[str, Tensor]) -> Tensor:
    a = v["angle"].to(x.dtype)
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    theta = torch.stack([torch.stack([cos, -sin, zero], -1), torch.stack([sin, cos, zero], -1)], 1)
    return _warp(x, theta)


def _warp(x: Tensor, theta: Tensor) -> Tensor:
    """Bilinear affine warp with zero fill; ``theta`` is (1 or N, 2, 3) in output->input
    normalised coordinates, as ``F.affine_grid`` (align_corners=False, as the reference)."""
    n, c, h, w = x.shape
    grid = F.affine_grid(theta, [theta.shape[0], c, h, w], align_corners=False)
    if grid.shape[0] != n:
        grid = grid.expand(n, -1, -1, -1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


_FAMILIES: dict[str, tuple[Callable, Callable]] = {
    "color": (_sample_color, _apply_color),
    "crop": (_sample_crop, _apply_crop),
    "cutout": (_sample_cutout, _apply_cutout),
    "flip": (_sample_flip, _apply_flip),
    "scale": (_sample_scale, _apply_scale),
    "rotate": (_sample_rotate, _apply_rotate),
}


class DSA:
    """Differentiable Siamese Augmentation.

    In mode ``"S"`` (default) each :meth:`sample` picks **one** family of the strategy
    uniformly at random (the reference's single mode, ``aug_mode='S'``, used by DSA and DM)
    and draws its parameters per image; in mode ``"M"`` it draws every family of the strategy
    and :meth:`apply` runs them in strategy order (the reference's ``aug_mode='M'``).
    :meth:`apply` is differentiable with respect to the images, so
    the same :class:`DSAParams` can be applied to a real and a synthetic batch::

        dsa = DSA()
        params = dsa.sample(len(x_real), generator=g, device=x_real.device)
        loss = match(net(dsa.apply(x_real, params)), net(dsa.apply(x_syn, params)))

    When the two batches differ in size (DSA's gradient matching: real batch 256 vs
    ``ipc`` synthetic images), sample with ``shared=True``: one set of parameters that
    broadcasts to any batch size, as the reference does when it is given a seed.

    Families and their parameters (reference defaults): ``color`` = brightness shift
    U(-0.5, 0.5)*brightness, then saturation factor U(0, saturation) around the per-pixel
    channel mean, then contrast factor U(contrast, contrast + 1) around the image mean;
    ``crop`` = translation by an integer U{-s..s} per axis, s = round(crop * size), zero
    fill; ``cutout`` = zero a round(cutout * size) square at a random centre (clipped at the
    border); ``flip`` = horizontal flip with probability ``flip``; ``scale`` = independent
    x/y factors U(1/scale, scale) of the sampling grid (bilinear, zero fill); ``rotate`` =
    angle U(-rotate, rotate) degrees (bilinear, zero fill).

    Differences from the reference code (same distributions otherwise):

    * parameters come from the ``torch.Generator`` passed in, not from re-seeding the
      global RNG before every draw (the reference's ``set_seed_DiffAug``);
    * crop/cutout positions are drawn as fractions and turned into pixels at apply time,
      so parameters do not depend on the image size they were drawn for;
    * the reference's ``seed != -1`` "batch mode" copies image 0's values to the whole
      batch; here that is ``sample(..., shared=True)``;
    * scale/rotate grids are built on the batch's device and in its dtype.

    Why not kornia: its augmentations replay parameters, but their semantics differ from
    the reference's here: ``ColorJitter``'s saturation works in HSV and its brightness is
    multiplicative (the reference shifts additively and scales saturation around the
    per-pixel channel mean); ``RandomAffine`` draws one transform for translation, scale
    and rotation together with its own grid convention and would need per-family
    re-parameterisation; ``RandomErasing`` draws area/aspect ratios, not a fixed square
    with the reference's clipped centre range. Plain torch reproduces the reference to
    float rounding (``tests/test_golden_dsa_dm.py``), so kornia is not used for DSA.
    """

    families_available = tuple(_FAMILIES)

    def __init__(self, strategy: str = "color_crop_cutout_flip_scale_rotate", *, flip: float = 0.5,
                 scale: float = 1.2, rotate: float = 15.0, crop: float = 0.125, cutout: float = 0.5,
                 brightness: float = 1.0, saturation: float = 2.0, contrast: float = 0.5,
                 mode: str = "S") -> None:
        if mode not in ("S", "M"):
            raise ValueError(f"DSA mode must be 'S' (one family per draw) or 'M' (all families), got {mode!r}")
        self.mode = mode
        if strategy.lower() in ("", "none"):
            families: tuple[str, ...] = ()
        else:
            families = tuple(strategy.split("_"))
            unknown = [f for f in families if f not in _FAMILIES]
            if unknown:
                raise ValueError(f"unknown DSA augmentation famil{'y' if len(unknown) == 1 else 'ies'} "
                                 f"{', '.join(map(repr, unknown))} in strategy {strategy!r}; "
                                 f"choose from {', '.join(_FAMILIES)} joined by '_', or 'none'")
        if scale < 1.0:
            raise ValueError(f"DSA scale must be >= 1 (factors are drawn from [1/scale, scale]), got {scale}")
        self.strategy = strategy
        self.families = families
        self.flip, self.scale, self.rotate = flip, scale, rotate
        self.crop, self.cutout = crop, cutout
        self.brightness, self.saturation, self.contrast = brightness, saturation, contrast

    def __repr__(self) -> str:
        return (f"DSA({self.strategy!r}, flip={self.flip}, scale={self.scale}, rotate={self.rotate}, "
                f"crop={self.crop}, cutout={self.cutout}, brightness={self.brightness}, "
                f"saturation={self.saturation}, contrast={self.contrast}, mode={self.mode!r})")

    def sample(self, n: int, generator: torch.Generator | None = None, device: torch.device | str | None = None,
               *, shared: bool = False, family: str | None = None) -> DSAParams:
        """Pick one family (or use ``family``) and draw its parameters for ``n`` images,
        or one broadcastable set when ``shared``. Draws come from ``generator`` (the global
        RNG when None) and are placed on ``device`` (default: where they were drawn)."""
        device = _as_device(device)
        if family is None and self.mode == "M" and self.families:
            chain = tuple(self.sample(n, generator, device, shared=shared, family=f) for f in self.families)
            return DSAParams("M", {}, None if shared else n, chain)
        if family is None:
            if not self.families:
                return DSAParams("none", {}, None if shared else n)
            pick = torch.randint(len(self.families), (1,), generator=generator,
                                 device=generator.device if generator is not None else device)
            family = self.families[int(pick.item())]
        elif family not in _FAMILIES:
            raise ValueError(f"unknown DSA family {family!r}; choose from {', '.join(_FAMILIES)}")
        m = 1 if shared else n
        sampler = _FAMILIES[family][0]
        values = sampler(self, lambda: _uniform((m,), generator, device))
        return DSAParams(family, values, None if shared else n)

    def apply(self, x: Tensor, params: DSAParams) -> Tensor:
        """Augment the (N, C, H, W) batch ``x`` with ``params``; differentiable wrt ``x``."""
        if x.dim() != 4:
            raise ValueError(f"DSA expects a (N, C, H, W) batch, got shape {tuple(x.shape)}")
        if params.batch_size is not None and params.batch_size != x.shape[0]:
            raise ValueError(f"DSA parameters were drawn for {params.batch_size} images but the batch has "
                             f"{x.shape[0]}; draw them with sample(..., shared=True) to apply one set "
                             "to batches of different sizes")
        if params.family == "none":
            return x
        if params.family == "M":
            for step in params.chain:
                x = self.apply(x, step)
            return x
        values = {k: v.to(x.device) for k, v in params.values.items()}
        return _FAMILIES[params.family][1](self, x, values)

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.apply(x, self.sample(x.shape[0], generator, device=x.device))


# ---------------------------------------------------------------------------
# Barlow Twins views


@contextlib.contextmanager
def _rng_from(generator: torch.Generator | None, device: torch.device) -> Iterator[None]:
    """Run the block on a global RNG seeded from ``generator`` and restore the global
    state afterwards (kornia draws from the global RNG). No-op without a generator."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device).item())
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.default_generator.manual_seed(seed)
        for idx in cuda:
            torch.cuda.default_generators[idx].manual_seed(seed)
        yield


@functools.lru_cache(maxsize=16)
def _bt_pipeline(size: tuple[int, int], crop_scale: tuple[float, float], blur_p: float,
                 blur_sigma: tuple[float, float], solarize_p: float) -> torch.nn.Module:
    import kornia.augmentation as K

    ops: list[torch.nn.Module] = [
        K.RandomResizedCrop(size, scale=crop_scale, ratio=(3 / 4, 4 / 3), cropping_mode="resample"),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, p=0.8),
        K.RandomGrayscale(p=0.2),
    ]
    if blur_p > 0:
        # sigma is in pixels as in the paper's PIL blur; the kernel covers +-3 sigma_max
        k = 2 * math.ceil(3 * blur_sigma[1]) + 1
        k = min(k, (min(size) - 1) | 1)
        ops.append(K.RandomGaussianBlur((k, k), blur_sigma, p=blur_p))
    if solarize_p > 0:
        # thresholds/additions 0: invert pixels >= 0.5 exactly, like PIL's solarize(128)
        ops.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=solarize_p))
    return torch.nn.Sequential(*ops)


def barlow_twins_views(x: Tensor, generator: torch.Generator | None = None, *,
                       crop_scale: tuple[float, float] | None = None,
                       blur_prob: tuple[float, float] | None = None,
                       blur_sigma: tuple[float, float] = (0.1, 2.0),
                       solarize_prob: tuple[float, float] = (0.0, 0.2)) -> tuple[Tensor, Tensor]:
    """Two independently augmented views of a pixel-space [0, 1] batch (N, 3, H, W), with
    the Barlow Twins augmentation (Zbontar et al. 2021): random resized crop, horizontal
    flip (0.5), colour jitter (0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale p 0.2, Gaussian
    blur p 1.0 / 0.1 and solarization p 0.0 / 0.2 for the first / second view.

    Small-image defaults (as common CIFAR recipes): at <= 32 px the crop scale is
    (0.2, 1) instead of (0.08, 1) and blur is off. The views stay in [0, 1]; normalise
    them afterwards. Runs with kornia on ``x``'s device; with ``generator`` the result is
    reproducible and the global RNG state is left untouched."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"barlow_twins_views expects an (N, 3, H, W) batch, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    small = min(h, w) <= 32
    if crop_scale is None:
        crop_scale = (0.2, 1.0) if small else (0.08, 1.0)
    if blur_prob is None:
        blur_prob = (0.0, 0.0) if small else (1.0, 0.1)
    pipes = [_bt_pipeline((h, w), tuple(crop_scale), float(blur_prob[i]), tuple(blur_sigma),
                          float(solarize_prob[i])) for i in (0, 1)]
    with _rng_from(generator, x.device):
        v1, v2 = pipes[0](x), pipes[1](x)
    return v1.clamp(0.0, 1.0), v2.clamp(0.0, 1.0)
