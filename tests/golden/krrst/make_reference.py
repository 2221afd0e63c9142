"""Regenerate ``reference.npz``: two KRR-ST outer (meta) steps computed by the official code.

Run by hand, never by the test suite::

    git clone https://github.com/db-Lee/selfsup_dd /tmp/selfsup_dd
    git -C /tmp/selfsup_dd checkout 4beb4b19c23872394d8f6418938b0e2bb3ce0466
    python tests/golden/krrst/make_reference.py /tmp/selfsup_dd

The fixture is read by ``tests/test_golden_krrst.py``, which runs ddbench's own
``Distiller.step`` on the same inputs and compares. Nothing of the reference is copied into
this repository: its modules are imported from the path given on the command line.

Reference
---------
db-Lee/selfsup_dd (Apache-2.0), commit ``4beb4b19c23872394d8f6418938b0e2bb3ce0466``
(2024-04-10, "Merge pull request #2"; the script refuses another commit unless
``--any-commit``). Its files used here are byte-identical in logic to d9a422c, the commit
``plugins/ddbench_plugins/architectures/nets.py`` cites (only import order and blank lines differ).

What runs, and from where
-------------------------
* The outer step is the reference's own function ``algorithms/distill.py::run(args, device,
  target_model, model_pool, outer_opt, iter_tr, aug, x_syn, y_syn)``, called unmodified. It
  does: ``outer_opt.zero_grad()``; ``idx = np.random.randint(args.num_models)``; model
  ``.eval()``; a real batch from ``next(iter_tr)``; ``y_real = target_model(aug(x_real))``
  under ``no_grad``; ``f_syn = [embed(x_syn), 1]``, ``f_real = [embed(x_real), 1]`` (no grad);
  ``K_real_syn = f_real f_syn^T``, ``K_syn_syn = f_syn f_syn^T``; ``lambda = 1e-6 *
  trace(K_syn_syn.detach())``; ``loss = mse(K_real_syn @ linalg.solve(K_syn_syn + lambda I,
  y_syn), y_real)``; ``autograd.grad`` into ``[x_syn, y_syn]``; (no clipping:
  ``outer_grad_norm = 0``); ``outer_opt.step()``; ``model_pool.update(idx, x_syn, y_syn)``.
* The pool is the reference's ``model_pool.py::ModelPool`` (``num_models = 1``, so the pick
  ``np.random.randint(1)`` is always 0), built and pre-trained by its own ``__init__`` and
  ``init`` (t ~ ``np.random.randint(1, online_iteration)`` full-batch SGD steps on
  ``(X_s, Y_s)``, lr 0.1, momentum 0.9, wd 1e-3). Its ConvNet is the reference's
  ``models/wrapper.py::get_model("convnet_4_8_16_bn", (3, 8, 8), 8)``, i.e.
  ``models/convnet.py::ConvNet`` with widths 4-8-16 and ``nn.BatchNorm2d(affine=True)``.
* The outer optimiser and schedule are built exactly as ``train.py::main`` builds them
  (``AdamW([x_syn, y_syn], lr=outer_lr, weight_decay=outer_wd)``, ``LinearLR(start_factor=1,
  end_factor=1e-3, total_iters=outer_iteration)``), and the loop body is ``train.py``'s:
  ``distill.run(...)`` then ``outer_sch.step()`` (the meta-test every ``eval_every`` steps
  and the logger are left out; they do not touch x_syn / y_syn).

What is patched / stubbed to run it on CPU at tiny shapes (nothing in the reference's files)
-----------------------------------------------------------------------------------------
* ``device = torch.device("cpu")`` is passed instead of ``cuda:<gpu_id>``;
  ``torch.cuda.empty_cache()`` inside ``distill.run`` is a no-op without CUDA.
* ``tqdm`` (used only for ``trange`` in ``ModelPool.init``) is replaced by a stub module with
  ``trange = range`` (and a ``__spec__``, which torch._dynamo's import of torchvision
  looks up) when it is not installed. ``models/wrapper.py`` imports torchvision,
  which must be installed (its models are not used).
* ``args`` is an ``argparse.Namespace`` holding only the fields these functions read (below).
* ``target_model`` is a stand-in ``nn.Module`` that returns a fixed (10, 8) tensor ``y_real``
  (the "target representations"; it checks it is given the fixed real batch); the pretrained
  Barlow Twins ResNet18 is not needed for the step's arithmetic.
* ``aug`` is the identity: ``x_real`` is the already augmented, normalised real batch.
* ``iter_tr`` is ``itertools.repeat((x_real, labels))``: both outer steps see the same real
  batch (the fixture stays small; the second step still differs through the updated X_s,
  Y_s, Adam state, learning rate and pool model).
* ``torch.set_default_dtype(torch.float64)`` (see "Why float64" below).
* ``torch.set_num_threads(1)``; seeds: ``random``, ``numpy`` and ``torch`` seeded with 0 as
  ``train.py`` does, before the pool is built; the inputs come from their own generator.

Inputs (float32 values, run in float64; images 3x8x8)
-----------------------------------------------------
* ``x_syn0``: m = 6 "images": a random 2x2 RGB pattern, bilinearly upsampled to 8x8, plus
  ``0.1 * U[0,1)`` noise, then ``(x - 0.5) / 0.25``. (I.i.d. pixel noise would average out in
  the ConvNet's pooling: all features nearly equal, the ones column dominating K_ss and a
  badly conditioned solve.)
* ``y_syn0``: (6, 8) ``N(0, 1)``,
* ``x_real``: b = 10 images drawn like ``x_syn0``; ``y_real``: (10, 8) ``N(0, 1)``,
  all in float32 from ``torch.Generator().manual_seed(20240410)`` in that order, then cast to
  float64 (exactly; stored as float32),
* the pool model after ``ModelPool.init``: its state dict under the reference's names
  (``pool_init/<name>``, BatchNorm running stats and ``num_batches_tracked`` included), its
  SGD momentum buffers (``pool_momentum/<name>``) and its step counter (in "meta"). After
  ``init`` the floating-point state and the momentum buffers are rounded to float32 values
  in place (so they are stored exactly as float32); the outer steps start from those values.

Why float64: the comparison's tolerance is 1e-5 relative, and float32 cannot carry it here.
The reference's own ``distill.run`` run in float32 on exactly these inputs differs from its
float64 run by 3.6e-5 in loss_1, 3.2e-4 in the X_s gradient and 9e-3 in the second AdamW update
of X_s (max-norm relative): ``K_ss + lambda I`` has a condition number of ~1e4 at this size,
and AdamW divides every gradient element by its own magnitude, so near-zero elements turn
rounding noise into O(lr) differences. So ``torch.set_default_dtype(torch.float64)`` is set
before anything is built: the reference's ConvNet, its ``torch.ones``/``torch.eye`` in
``distill.run`` and the inputs are all float64 (no file of the reference is changed). The
test runs ddbench's step under the same default dtype.

Outputs
-------
per outer step k = 1, 2: ``loss_k`` (0-d), ``x_grad_k`` / ``y_grad_k`` (the gradients the
reference left in ``x_syn.grad`` / ``y_syn.grad``), ``x_syn_k`` / ``y_syn_k`` (after the AdamW
step); after both steps ``pool_final/<name>`` (the pool model after its two online SGD
steps). All outputs are float64. ``meta`` is a JSON string (0-d unicode array): commit,
torch/numpy versions, the reference ``args``, the equivalent ddbench KRR-ST options, seeds,
shapes, the pool's step counter and parameter order.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import itertools
import json
import os
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

REF_COMMIT = "4beb4b19c23872394d8f6418938b0e2bb3ce0466"
REF_REPO = "https://github.com/db-Lee/selfsup_dd"
OUT = Path(__file__).resolve().parent / "reference.npz"

M, B, D, RES = 6, 10, 8, 8
WIDTHS = (4, 8, 16)
STEPS = 2
INPUT_SEED = 20240410

# the fields of ``args`` that ModelPool and distill.run read (train.py's names)
ARGS = dict(
    num_models=1,                      # l = 1: the pool pick is always model 0
    online_iteration=10,               # T
    online_opt="sgd", online_lr=0.1, online_wd=1e-3,   # train.py defaults (momentum 0.9 is fixed in model_pool.py)
    train_model="convnet_" + "_".join(map(str, WIDTHS)) + "_bn",
    img_shape=(3, RES, RES),
    num_pretrain_classes=D,
    outer_grad_norm=0.0,               # train.py default: no clipping
    outer_lr=0.05,                     # large, so an update is not lost in X_s's rounding
    outer_wd=0.01,                     # non-zero, so AdamW's decoupled decay is exercised
    outer_iteration=4,                 # LinearLR total_iters: the lr of step 2 is 0.75025 * outer_lr
)
LR_END = 1e-3  # train.py: LinearLR(end_factor=1e-3)

# the same settings in ddbench's KRR-ST option names (what the test passes to ``Method.options``)
DDBENCH_OPTIONS = dict(
    steps=ARGS["outer_iteration"], batch_size=B, outer_lr=ARGS["outer_lr"], outer_wd=ARGS["outer_wd"],
    outer_lr_end=LR_END, grad_clip=ARGS["outer_grad_norm"], ridge=1e-6,
    pool_size=ARGS["num_models"], pool_steps=ARGS["online_iteration"], pool_lr=ARGS["online_lr"],
    pool_momentum=0.9, pool_wd=ARGS["online_wd"], arch_widths=list(WIDTHS), arch_norm="bn", arch_width=1.0,
    learn="both",
)


def images(n: int, g: torch.Generator) -> torch.Tensor:
    """float32 "images": a random 2x2 RGB pattern upsampled to RES x RES plus a little noise, normalised."""
    coarse = torch.rand(n, 3, 2, 2, generator=g, dtype=torch.float32)
    x = F.interpolate(coarse, size=(RES, RES), mode="bilinear", align_corners=False)
    x = x + 0.1 * torch.rand(n, 3, RES, RES, generator=g, dtype=torch.float32)
    return (x - 0.5) / 0.25


class FixedTarget(nn.Module):
    """Stands in for the Barlow Twins ResNet18: returns the fixed ``y_real`` for the fixed batch."""

    def __init__(self, x_real: torch.Tensor, y_real: torch.Tensor):
        super().__init__()
        self.x_real, self.y_real = x_real.clone(), y_real.clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert torch.equal(x, self.x_real), "the reference fed the target model another batch"
        return self.y_real.clone()


def ref_commit(path: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def import_reference(path: Path):
    sys.path.insert(0, str(path))
    try:
        import tqdm  # noqa: F401
    except ImportError:  # only ModelPool.init's progress bar uses it
        stub = types.ModuleType("tqdm")
        stub.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)  # torch._dynamo calls find_spec("tqdm")
        stub.trange = lambda *a, **k: range(*a)
        sys.modules["tqdm"] = stub
    from algorithms import distill
    from model_pool import ModelPool

    return distill, ModelPool


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reference", type=Path, help="a checkout of db-Lee/selfsup_dd")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--any-commit", action="store_true", help=f"allow a checkout other than {REF_COMMIT}")
    cli = ap.parse_args()
    ref = cli.reference.resolve()
    commit = ref_commit(ref)
    if commit != REF_COMMIT and not cli.any_commit:
        sys.exit(f"{ref} is at {commit}, not {REF_COMMIT} (pass --any-commit to use it anyway)")
    distill, ModelPool = import_reference(ref)

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    device = torch.device("cpu")
    args = argparse.Namespace(**ARGS)

    # inputs, from their own generator, in float32, then exactly cast to float64
    g = torch.Generator().manual_seed(INPUT_SEED)
    x_syn0 = images(M, g)
    y_syn0 = torch.randn(M, D, generator=g, dtype=torch.float32)
    x_real = images(B, g)
    y_real = torch.randn(B, D, generator=g, dtype=torch.float32)
    x_syn0, y_syn0, x_real, y_real = (t.double() for t in (x_syn0, y_syn0, x_real, y_real))

    # train.py's seeding, then its pool (its own __init__ and init)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    pool = ModelPool(args, device)
    pool.init(x_syn0.clone(), y_syn0.clone())
    counter0 = int(pool.iterations[0])
    if counter0 + STEPS >= args.online_iteration:
        sys.exit(f"the pool counter {counter0} would reach T={args.online_iteration} (a random re-init): "
                 "change the seed or T")
    model, opt = pool.models[0], pool.opts[0]
    names = [n for n, _ in model.named_parameters()]
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():  # round the pool's state to float32 values (the stored inputs), in place
        momenta = (opt.state[p]["momentum_buffer"] for p in model.parameters())
        for v in itertools.chain(model.state_dict().values(), momenta):
            if v.is_floating_point():
                v.copy_(v.float().double())
    for k, v in model.state_dict().items():
        arr = v.detach().cpu().numpy()
        out[f"pool_init/{k}"] = arr.astype(np.float32) if arr.dtype == np.float64 else arr.copy()
    for n, p in zip(names, model.parameters()):
        out[f"pool_momentum/{n}"] = opt.state[p]["momentum_buffer"].detach().cpu().numpy().astype(np.float32)

    # train.py: x_syn / y_syn leaves, AdamW, LinearLR
    x_syn = x_syn0.clone().to(device).requires_grad_(True)
    y_syn = y_syn0.clone().to(device).requires_grad_(True)
    outer_opt = torch.optim.AdamW([x_syn, y_syn], lr=args.outer_lr, weight_decay=args.outer_wd)
    outer_sch = torch.optim.lr_scheduler.LinearLR(outer_opt, start_factor=1.0, end_factor=LR_END,
                                                  total_iters=args.outer_iteration)
    target_model = FixedTarget(x_real, y_real)
    iter_tr = itertools.repeat((x_real, torch.zeros(B, dtype=torch.long)))
    aug = lambda x: x  # noqa: E731  (the batch is already augmented)

    lrs = []
    for k in range(1, STEPS + 1):  # train.py's loop body
        lrs.append(outer_opt.param_groups[0]["lr"])
        loss = distill.run(args, device, target_model, pool, outer_opt, iter_tr, aug, x_syn, y_syn)
        out[f"loss_{k}"] = np.asarray(loss.item(), dtype=np.float64)
        out[f"x_grad_{k}"] = x_syn.grad.detach().numpy().copy()
        out[f"y_grad_{k}"] = y_syn.grad.detach().numpy().copy()
        out[f"x_syn_{k}"] = x_syn.detach().numpy().copy()
        out[f"y_syn_{k}"] = y_syn.detach().numpy().copy()
        outer_sch.step()
    assert pool.models[0] is model and pool.iterations[0] == counter0 + STEPS, "the pool model was re-initialised"
    for k, v in model.state_dict().items():
        out[f"pool_final/{k}"] = v.detach().cpu().numpy().copy()

    for key, t in (("x_syn_0", x_syn0), ("y_syn_0", y_syn0), ("x_real", x_real), ("y_real", y_real)):
        out[key] = t.numpy().astype(np.float32)  # exact: float32 values
    meta = {
        "reference": REF_REPO, "commit": commit, "torch": torch.__version__, "numpy": np.__version__,
        "python": sys.version.split()[0], "generated_by": "tests/golden/krrst/make_reference.py",
        "steps": STEPS, "dtype": "float64", "m": M, "b": B, "d": D, "resolution": RES,
        "input_seed": INPUT_SEED, "global_seed": 0,
        "args": {k: list(v) if isinstance(v, tuple) else v for k, v in ARGS.items()},
        "lr_end_factor": LR_END, "lrs": lrs, "pool_counter_init": counter0, "pool_param_order": names,
        "ddbench_options": DDBENCH_OPTIONS,
        "losses": [float(out[f"loss_{k}"]) for k in range(1, STEPS + 1)],
    }
    out["meta"] = np.asarray(json.dumps(meta, sort_keys=True))
    cli.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(cli.out, **out)
    print(f"wrote {cli.out} ({os.path.getsize(cli.out)} bytes); pool counter {counter0}; "
          f"losses {meta['losses']}; lrs {lrs}")


if __name__ == "__main__":
    main()
