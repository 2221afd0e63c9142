"""Golden figures: ddbench's DSA and DM steps reproduce the official code
(VICO-UoE/DatasetCondensation at 53f63a6) on the same inputs.

The fixtures in ``tests/golden/dsa_dm/`` were made by running the official ``main.py``
(``--method DSA``) and ``main_DM.py`` themselves on CPU at tiny shapes, recording every
random draw they made (fresh networks, real batches, augmentation parameters, inner-loop
batch order) and what they computed: the matching loss of every step and the synthetic
images at the end. ``tests/golden/dsa_dm/make_reference.py`` documents how (commit,
patches, inputs); its README lists the files.

Here ddbench's own step functions (``ddbench_plugins.methods.dsa.step``,
``ddbench_plugins.methods.dm.step``, DSA from ``ddbench.toolkit.augment``) replay those
draws. Tolerance: relative error <= 1e-5 (float32 on both sides) for every loss, for the
final images and -- the sensitive check -- for the total image update
``syn_final - syn_init``, each as ``max|ours - ref| / max|ref|``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).parent / "golden" / "dsa_dm"
RTOL = 1e-5


def _load(name: str):
    d = np.load(HERE / f"{name}_reference.npz", allow_pickle=False)
    meta = json.loads(str(d["meta"]))
    return d, meta


def _rel(ours: torch.Tensor, ref) -> float:
    ref = torch.as_tensor(np.asarray(ref), dtype=torch.float64)
    ours = ours.detach().to(torch.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    return float((ours - ref).abs().max() / ref.abs().max().clamp_min(1e-30))


def _net(d, meta, it: int):
    """ddbench's ConvNet (the registered architecture) with the official network's initial weights."""
    from ddbench import plugins

    arch = plugins.registry("architecture").get("convnet")
    h, w = meta["im_size"]
    net = arch.build((meta["channel"], h, w), meta["num_classes"], width=1.0,
                     widths=(meta["net_width"],) * meta["net_depth"], norm="in")
    prefix = f"net_init_it{it}."
    state = {}
    for key in d.files:
        if key.startswith(prefix):
            name = key[len(prefix):]
            name = name.replace("features.", "trunk.").replace("classifier.", "head.")
            state[name] = torch.from_numpy(np.array(d[key]))
    net.load_state_dict(state, strict=True)
    return net.train()


def _params(rec: dict, meta: dict, dsa):
    """The official draws of one DiffAugment call as ddbench's DSAParams (shared when the
    official call was Siamese)."""
    from ddbench.toolkit.augment import DSAParams

    h, w = meta["im_size"]
    v = rec["values"]
    fam = rec["family"]
    vals = {k: np.asarray(x, dtype=np.float64) for k, x in v.items()}
    if rec["siamese"]:
        assert all(np.all(x == x[0]) for x in vals.values()), rec["where"]
        vals = {k: x[:1] for k, x in vals.items()}

    def t(x):
        return torch.tensor(x, dtype=torch.float32)

    if fam == "color":
        out = {"brightness": t((vals["randb"] - 0.5) * dsa.brightness), "saturation": t(vals["rands"] * dsa.saturation),
               "contrast": t(vals["randc"] + dsa.contrast)}
    elif fam == "crop":
        # official translation_x moves dim 2 (rows) = ddbench's "y"; integer t in [-s, s] -> the
        # fraction whose bucket is t
        sh, sw = int(h * dsa.crop + 0.5), int(w * dsa.crop + 0.5)
        out = {"y": t((vals["translation_x"] + sh + 0.5) / (2 * sh + 1)),
               "x": t((vals["translation_y"] + sw + 0.5) / (2 * sw + 1))}
    elif fam == "cutout":
        ch, cw = int(h * dsa.cutout + 0.5), int(w * dsa.cutout + 0.5)
        nh, nw = h + 1 - ch % 2, w + 1 - cw % 2
        out = {"y": t((vals["offset_x"] + 0.5) / nh), "x": t((vals["offset_y"] + 0.5) / nw)}
    elif fam == "flip":
        out = {"flip": t((vals["randf"] < dsa.flip).astype(np.float64))}
    elif fam == "scale":
        out = {"sx": t(vals["sx"]), "sy": t(vals["sy"])}
    elif fam == "rotate":
        out = {"angle": t(vals["theta"])}
    else:  # pragma: no cover - the fixture names only the six families
        raise AssertionError(fam)
    return DSAParams(fam, out, None if rec["siamese"] else rec["n"])


def _aug(meta: dict, where: str) -> dict:
    recs = [r for r in meta["aug"] if r["where"] == where]
    assert len(recs) == 1, where
    return recs[0]


def _class_params(meta, dsa, tag: str):
    """Per class: the parameters of the real batch, checked equal to the synthetic batch's (Siamese)."""
    out = []
    for c in range(meta["num_classes"]):
        real, syn = _aug(meta, f"{tag}_c{c}_real"), _aug(meta, f"{tag}_c{c}_syn")
        assert real["family"] == syn["family"] and real["seed"] == syn["seed"]
        out.append(_params(real, meta, dsa))
    return out


def replay_dsa(d, meta, *, lr_img: float | None = None, swap_params: bool = False):
    """ddbench's DSA step functions on the fixture's draws: (losses, per-class losses, syn_final)."""
    from ddbench.toolkit.augment import DSA
    from ddbench_plugins.methods.dsa.step import match_images, train_network

    torch.manual_seed(0)
    dsa = DSA(meta["strategy"])
    C, ipc = meta["num_classes"], meta["ipc"]
    net = _net(d, meta, 0)
    syn = torch.from_numpy(np.array(d["syn_init"])).clone().requires_grad_(True)
    labels = torch.arange(C).repeat_interleave(ipc)
    opt_img = torch.optim.SGD([syn], lr=lr_img or meta["lr_img"], momentum=meta["momentum"])
    opt_net = torch.optim.SGD(net.parameters(), lr=meta["lr_net"])
    losses, per_class = [], []
    for ol in range(meta["outer_loop"]):
        real = [torch.from_numpy(np.array(d[f"real_it0_ol{ol}_c{c}"])) for c in range(C)]
        params = _class_params(meta, dsa, f"it0_ol{ol}")
        if swap_params:
            params = params[::-1]
        loss, pc = match_images(net, syn, ipc, real, params, dsa, opt_img, metric=meta["dis_metric"])
        losses.append(loss)
        per_class.append(pc)
        if ol == meta["outer_loop"] - 1:
            break
        data = syn.detach().clone()
        for il in range(meta["inner_loop"]):
            order = torch.from_numpy(np.array(d[f"perm_it0_ol{ol}_il{il}"])).long()
            batch = [_params(_aug(meta, f"it0_ol{ol}_il{il}_train"), meta, dsa)]
            train_network(net, opt_net, data, labels, order, batch, dsa, meta["batch_train"])
    return losses, per_class, syn.detach()


def replay_dm(d, meta, *, batched: bool = True, lr_img: float | None = None):
    from ddbench.toolkit.augment import DSA
    from ddbench_plugins.methods.dm.step import match_embeddings

    dsa = DSA(meta["strategy"])
    C, ipc = meta["num_classes"], meta["ipc"]
    syn = torch.from_numpy(np.array(d["syn_init"])).clone().requires_grad_(True)
    opt_img = torch.optim.SGD([syn], lr=lr_img or meta["lr_img"], momentum=meta["momentum"])
    losses, per_class = [], []
    for it in range(meta["iterations"]):
        net = _net(d, meta, it)
        net.requires_grad_(False)
        real = [torch.from_numpy(np.array(d[f"real_it{it}_ol0_c{c}"])) for c in range(C)]
        params = _class_params(meta, dsa, f"it{it}_ol0")
        loss, pc = match_embeddings(net, syn, ipc, real, params, dsa, opt_img, batched=batched)
        losses.append(loss)
        per_class.append(pc)
    return losses, per_class, syn.detach()


def _check(d, meta, losses, per_class, syn, tag: str) -> dict[str, float]:
    errs = {}
    for k, (loss, pc) in enumerate(zip(losses, per_class)):
        key = f"it0_ol{k}" if meta["method"] == "dsa" else f"it{k}_ol0"
        errs[f"loss_{key}"] = _rel(loss, d[f"loss_{key}"])
        errs[f"class_loss_{key}"] = _rel(pc, d[f"class_loss_{key}"])
    errs["syn_final"] = _rel(syn, d["syn_final"])
    init = torch.from_numpy(np.array(d["syn_init"]))
    errs["update"] = _rel(syn - init, np.array(d["syn_final"]) - np.array(d["syn_init"]))
    return errs


def test_fixtures_cover_every_dsa_family_and_both_loops():
    families = set()
    for name in ("dsa", "dm"):
        d, meta = _load(name)
        assert meta["reference_commit"] == "53f63a672eab9ade02aabe6432706ef56f317d64"
        families |= {r["family"] for r in meta["aug"]}
    assert families == {"color", "crop", "cutout", "flip", "scale", "rotate"}
    d, meta = _load("dsa")
    assert meta["outer_loop"] == 2 and meta["inner_loop"] == 2  # the network's inner update is covered
    assert any(not r["siamese"] for r in meta["aug"])  # per-image parameters in the inner loop


def test_dsa_outer_iteration_matches_the_official_code():
    d, meta = _load("dsa")
    errs = _check(d, meta, *replay_dsa(d, meta), "dsa")
    assert max(errs.values()) <= RTOL, errs


@pytest.mark.parametrize("batched", [True, False], ids=["one-forward-pass", "per-class"])
def test_dm_iterations_match_the_official_code(batched):
    d, meta = _load("dm")
    errs = _check(d, meta, *replay_dm(d, meta, batched=batched), "dm")
    assert max(errs.values()) <= RTOL, errs


def test_the_golden_comparison_can_fail():
    """Small departures from the official step are caught by the same comparison."""
    d, meta = _load("dsa")
    errs = _check(d, meta, *replay_dsa(d, meta, lr_img=meta["lr_img"] * 1.01), "dsa")
    assert errs["update"] > 100 * RTOL, errs
    errs = _check(d, meta, *replay_dsa(d, meta, swap_params=True), "dsa")
    assert errs["loss_it0_ol0"] > 100 * RTOL, errs
    d, meta = _load("dm")
    errs = _check(d, meta, *replay_dm(d, meta, lr_img=meta["lr_img"] * 1.01), "dm")
    assert errs["update"] > 100 * RTOL, errs
