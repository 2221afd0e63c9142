"""Regenerate ``dsa_reference.npz`` and ``dm_reference.npz``: DSA and DM run by the official code.

Run by hand, never by the test suite::

    git clone https://github.com/VICO-UoE/DatasetCondensation /tmp/dc
    git -C /tmp/dc checkout 53f63a672eab9ade02aabe6432706ef56f317d64
    python tests/golden/dsa_dm/make_reference.py /tmp/dc

Nothing of the reference is copied into this repository: its modules (``utils.py``,
``networks.py``, ``main.py``, ``main_DM.py``) are imported from the path given on the command
line, and the official ``main()`` functions themselves are executed.

Reference
---------
VICO-UoE/DatasetCondensation (MIT), commit ``53f63a672eab9ade02aabe6432706ef56f317d64``.
``main.py`` is DC/DSA (Zhao & Bilen, ICML 2021, gradient matching with differentiable siamese
augmentation, run with ``--method DSA``); ``main_DM.py`` is DM (Zhao & Bilen, WACV 2023,
distribution matching). The script refuses another commit, or local modifications of the four
files, unless ``--any-commit`` is given; the sha256 of the four files goes into ``meta``.

What runs
---------
``main.main()`` and ``main_DM.main()`` of the reference, unmodified, with ``sys.argv`` set to::

    DSA: --method DSA --dataset TinySynthetic --model ConvNet --ipc 2 --eval_mode S --num_exp 1
         --num_eval 0 --Iteration 0 --lr_img 0.1 --lr_net 0.01 --batch_real 4 --batch_train 256
         --init real --dsa_strategy color_crop_cutout_flip_scale_rotate --dis_metric ours
         --data_path <tmp> --save_path <tmp>
    DM:  --dataset TinySynthetic --model ConvNet --ipc 2 --eval_mode SS --num_exp 1 --num_eval 0
         --Iteration 1 --lr_img 1.0 --lr_net 0.01 --batch_real 4 --batch_train 256 --init real
         --dsa_strategy color_crop_cutout_flip_scale_rotate --dis_metric ours
         --data_path <tmp> --save_path <tmp>

so DSA runs its loop body once (``it = 0``: a fresh net, outer loop ``ol = 0`` (image step),
inner loop (2 network epochs on the synthetic set with unseeded DiffAugment), ``ol = 1``
(image step), break) and DM runs it twice (``it = 0, 1``, each with a fresh net, so the
momentum buffer of the image optimizer is used at ``it = 1``). ``--num_eval 0`` makes the
evaluation block at ``it = 0`` evaluate nothing (it still draws no random number: it only
saves a png of the synthetic set into the temporary ``--save_path``). Both runs use the
official ``ConvNet`` (instancenorm = ``nn.GroupNorm(C, C, affine=True)``), ``match_loss``
(``dis_metric 'ours'``: ``distance_wb`` is 0 for 1-D parameters), ``DiffAugment`` and
``ParamDiffAug`` (``aug_mode 'S'``: one family per call), ``epoch`` and ``TensorDataset``.

Patches / monkeypatches (all reverted after each run; nothing in the reference's files)
------------------------------------------------------------------------------------------
* ``main.get_dataset`` -> tiny synthetic dataset (see Inputs) returned in the official
  format ``(channel=3, im_size=(16, 16), num_classes=2, class_names, mean=[0]*3, std=[1]*3,
  dst_train, dst_test, testloader)``; ``dst_train`` is the official ``utils.TensorDataset``.
* ``main.get_loops`` -> DSA: ``(outer_loop, inner_loop) = (2, 2)`` (the official table only has
  ipc 1/10/20/..., ipc 2 would ``exit``); DM: ``(1, 0)`` (``main_DM`` only stores them in
  ``args``; the official call would ``exit`` for ipc 2).
* ``utils.get_default_convnet_setting`` -> ``(8, 3, 'relu', 'instancenorm', 'avgpooling')``
  (official: width 128). ``get_network`` itself is the official one (it seeds torch's global
  RNG with ``int(time.time() * 1000) % 100000`` and builds ``networks.ConvNet``); it is
  *wrapped* to record the fresh network's state dict (and, for DM, ``net.embed`` is wrapped
  on the instance to record its outputs).
* ``time`` in the namespaces of ``main``, ``main_DM`` and ``utils`` -> a proxy whose ``time()``
  returns scripted values ``(seed + 0.5) / 1000`` so that ``int(time.time() * 1000) % 100000``
  is a known seed (``DSA_CLOCK`` / ``DM_CLOCK`` below, consumed in call order: one per
  ``get_network``, one per class and outer loop for ``DiffAugment``); every other attribute is
  the real ``time`` module. The run fails if the code reads the clock more often than scripted.
* ``main.evaluate_synset`` -> raises (it must never run; with ``--num_eval 0`` it does not).
* ``torch.save`` -> intercepted (the final ``{'data': [[image_syn, label_syn]], ...}`` is
  recorded and not written).
* ``torch.optim.SGD`` -> subclass that records the synthetic images when the image optimizer
  is built (= after the ``init real`` copy) and after each of its ``step()`` calls.
* ``torch.Tensor.backward`` -> wrapper that records the value of every tensor backpropagated
  (outer-loop image losses and the inner-loop cross-entropy losses).
* ``main.match_loss`` (DSA) -> wrapper that records each class's term.
* ``main.epoch`` (DSA) -> wrapper that records the context (which ``ol``, ``il``) and the
  network's state dict after each inner-loop epoch.
* ``main.TensorDataset`` (DSA) -> subclass of the official class whose ``__getitem__`` records
  the indices the ``DataLoader(shuffle=True)`` asks for (the permutation of the one batch).
* ``DiffAugment`` (in ``main``/``main_DM`` and ``utils``, where ``epoch`` looks it up) -> a
  recorder that calls the official ``DiffAugment``; during that call only, ``torch.rand``,
  ``torch.randint``, ``torch.random.manual_seed``, ``torch.nn.functional.affine_grid`` and the
  functions in ``utils.AUGMENT_FNS`` are wrapped to record every draw (the tensors are kept, so
  the values read afterwards are those after the official in-place Siamese copy
  ``t[:] = t[0]``), the seeds set before each draw, the affine matrices, and which family ran.
* The device is CPU (``torch.cuda.is_available()`` is False on the CPU build; the script
  checks it), ``torch.set_num_threads(1)``, float32 everywhere (the official default).

Inputs and seeds
----------------
* Dataset: ``x = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(DATA_SEED))``
  rounded to multiples of 1/32 (exactly representable; keeps the npz small when compressed),
  labels ``[0, 1, 0, 1, ...]`` (6 images per class, interleaved). Not normalised.
* ``np.random.seed(np_seed)`` (DSA 0, DM 1) before ``main()`` (``get_images`` uses ``np.random.permutation``);
  ``torch.manual_seed(TORCH_SEED)`` before ``main()`` (only feeds the ``torch.randn`` placeholder
  of ``image_syn``, which ``--init real`` overwrites; every later torch draw follows a
  ``manual_seed`` from the scripted clock).
* ``DSA_CLOCK`` / ``DM_CLOCK``: chosen (by trying seeds) so that the two fixtures together
  exercise all six DSA families; the inner-loop (unseeded) families of DSA follow from the
  global RNG state the seeded calls leave behind.

Output (schema in README.md)
----------------------------
``dsa_reference.npz`` / ``dm_reference.npz`` (``np.savez_compressed``, numeric arrays plus a
0-d unicode ``meta`` JSON). Besides the agreed keys they hold small extras: ``init_idx`` and
``real_idx_it{it}_ol{ol}_c{c}`` (dataset indices of the rows drawn by ``get_images``) and, for
DSA, ``train_loss_it{it}_ol{ol}_il{il}`` (inner-loop cross-entropy). ``--debug-extras`` also
saves ``syn_it{it}_ol{ol}`` (image_syn after each image step but the last) and, for DSA,
``net_it{it}_ol{ol}_il{il}.<name>`` (the net after each inner-loop epoch); off by default to keep
the files small.

Every augmentation record in ``meta["aug"]`` is checked three ways before saving: (1) calling
the official ``DiffAugment`` again (same seed, or the saved global RNG state for unseeded
calls) reproduces the output bitwise; (2) calling it with ``torch.rand``/``torch.randint``
forced to return the recorded raw draws reproduces it bitwise; (3) an independent
re-implementation of the six families driven only by ``family`` and ``values`` reproduces it
(max abs difference asserted <= 1e-6, recorded in meta). The real and synthetic calls of one
class must carry identical values (Siamese). The whole run is done twice and must be bitwise
identical. Finally each saved file is replayed from its contents alone (official ``ConvNet`` and
``match_loss``, the independent augmentation above, the recorded permutations, no RNG): the
per-class and total losses, the inner-loop losses and ``syn_final`` must agree within 1e-5
(with torch 2.14.1 on CPU they agree bitwise).
"""

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time as _time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

REFERENCE_COMMIT = "53f63a672eab9ade02aabe6432706ef56f317d64"
OFFICIAL_FILES = ("main.py", "main_DM.py", "utils.py", "networks.py")
HERE = os.path.dirname(os.path.abspath(__file__))

NUM_CLASSES = 2
CHANNEL = 3
IM_SIZE = (16, 16)
N_PER_CLASS = 6
NET_WIDTH, NET_DEPTH, NET_ACT, NET_NORM, NET_POOLING = 8, 3, "relu", "instancenorm", "avgpooling"
IPC = 2
BATCH_REAL = 4
BATCH_TRAIN = 256
STRATEGY = "color_crop_cutout_flip_scale_rotate"
DATA_SEED = 0
QUANT = 32.0
TORCH_SEED = 0

# np_seed: np.random.seed(...) before main() (get_images draws np.random.permutation)
DSA = dict(lr_img=0.1, lr_net=0.01, outer_loop=2, inner_loop=2, iteration=0, np_seed=0)
DM = dict(lr_img=1.0, lr_net=0.01, outer_loop=1, inner_loop=0, iteration=1, np_seed=1)
# Clock seeds (int(time.time() * 1000) % 100000), in the order the official code reads the
# clock. Chosen so that the seeded families are (DSA) color, crop | cutout, rotate and (DM)
# scale, rotate | color, crop, with the DSA inner-loop (unseeded) batches drawing scale, flip;
# the seeds are >= 10 apart because DiffAugment uses seed, seed+1, ... as sub-seeds.
# DSA: get_network(it0), ol0 c0, ol0 c1, ol1 c0, ol1 c1
DSA_CLOCK = [40213, 10014, 10056, 30003, 20001]
# DM: get_network(it0), c0, c1, get_network(it1), c0, c1
DM_CLOCK = [52817, 80000, 70000, 63029, 20000, 30001]

FAMILY_FNS = {
    "color": ["rand_brightness", "rand_saturation", "rand_contrast"],
    "crop": ["rand_crop"],
    "cutout": ["rand_cutout"],
    "flip": ["rand_flip"],
    "scale": ["rand_scale"],
    "rotate": ["rand_rotate"],
}


# --------------------------------------------------------------------------- loading
def load_official(dc_path, any_commit=False):
    dc_path = os.path.abspath(dc_path)
    info = {"path": dc_path}
    try:
        head = subprocess.run(["git", "-C", dc_path, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", dc_path, "status", "--porcelain", "--", *OFFICIAL_FILES],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head, dirty = None, None
    if not any_commit:
        if head != REFERENCE_COMMIT:
            sys.exit(f"{dc_path} is at {head}, not {REFERENCE_COMMIT} (use --any-commit to override)")
        if dirty:
            sys.exit(f"official files are modified in {dc_path}:\n{dirty}")
    info["commit"] = head
    info["sha256"] = {f: hashlib.sha256(open(os.path.join(dc_path, f), "rb").read()).hexdigest()
                      for f in OFFICIAL_FILES}
    if dc_path not in sys.path:
        sys.path.insert(0, dc_path)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for name in ("utils", "networks"):
            if name in sys.modules and not os.path.abspath(sys.modules[name].__file__).startswith(dc_path):
                sys.exit(f"a module named {name!r} not from {dc_path} is already imported")
        import networks  # noqa: F401
        import utils
        mods = {}
        for key, fname in (("dsa", "main.py"), ("dm", "main_DM.py")):
            spec = importlib.util.spec_from_file_location(f"_dc_official_{key}", os.path.join(dc_path, fname))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            mods[key] = mod
    info["import_warnings"] = sorted({f"{x.category.__name__}: {str(x.message).splitlines()[0]}" for x in w})
    assert os.path.abspath(utils.__file__).startswith(dc_path)
    return utils, mods, info


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def patch_attr(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield old
    finally:
        setattr(obj, name, old)


class FakeTime:
    """Stands in for the ``time`` module in the official namespaces; ``time()`` is scripted."""

    def __init__(self, seeds):
        self.seeds = list(seeds)
        self.used = []

    def time(self):
        if not self.seeds:
            raise RuntimeError("the official code read the clock more often than scripted")
        s = self.seeds.pop(0)
        t = (s + 0.5) / 1000.0
        assert int(t * 1000) % 100000 == s
        self.used.append(s)
        return t

    def __getattr__(self, name):
        return getattr(_time, name)


def make_dataset():
    g = torch.Generator().manual_seed(DATA_SEED)
    n = NUM_CLASSES * N_PER_CLASS
    x = torch.randn(n, CHANNEL, *IM_SIZE, generator=g)
    x = torch.round(x * QUANT) / QUANT
    y = torch.arange(n) % NUM_CLASSES
    return x, y


def sd_clone(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def flat(t):
    return t.detach().reshape(-1).tolist()


# --------------------------------------------------------------------------- recording run
class Run:
    def __init__(self, utils, main_mod, method, clock):
        self.U = utils
        self.M = main_mod
        self.method = method
        self.cfg = DSA if method == "dsa" else DM
        self.clock = FakeTime(clock)
        self.it = -1
        self.k = 0  # seeded DiffAugment calls in the current iteration
        self.in_epoch = False
        self.epoch_ctx = None
        self.il_count = {}
        self.getitem_log = []
        self.arrays = {}
        self.aug = []  # records (with tensors, for verification)
        self.class_terms = {}  # (it, ol) -> list of 0-d tensors
        self.embed_out = []  # DM: outputs of net.embed in the current iteration
        self.saved = []
        self.net_seeds = []
        self.syn_snapshots = []
        self.img_opt_built = 0
        self.dataset = None

    # ---- official-format dataset
    def get_dataset(self, dataset, data_path):
        assert dataset == "TinySynthetic", dataset
        x, y = make_dataset()
        self.dataset = (x, y)
        dst_train = self.U.TensorDataset(x, y)
        dst_test = self.U.TensorDataset(x.clone(), y.clone())
        testloader = torch.utils.data.DataLoader(dst_test, batch_size=256, shuffle=False, num_workers=0)
        return (CHANNEL, IM_SIZE, NUM_CLASSES, [f"c{c}" for c in range(NUM_CLASSES)],
                [0.0] * CHANNEL, [1.0] * CHANNEL, dst_train, dst_test, testloader)

    def get_loops(self, ipc):
        assert ipc == IPC
        return self.cfg["outer_loop"], self.cfg["inner_loop"]

    @staticmethod
    def convnet_setting():
        return NET_WIDTH, NET_DEPTH, NET_ACT, NET_NORM, NET_POOLING

    def evaluate_synset(self, *a, **k):
        raise AssertionError("evaluate_synset must not run")

    def get_network(self, model, channel, num_classes, im_size=(32, 32)):
        n_before = len(self.clock.used)
        net = self.U.get_network(model, channel, num_classes, im_size)
        assert len(self.clock.used) == n_before + 1
        assert isinstance(net, self.U.ConvNet)  # networks.ConvNet, imported by utils
        self.it += 1
        self.k = 0
        self.embed_out = []
        self.net_seeds.append(self.clock.used[-1])
        for name, v in sd_clone(net).items():
            self.arrays[f"net_init_it{self.it}.{name}"] = v
        if self.method == "dm":
            orig_embed = net.embed

            def embed(x):
                out = orig_embed(x)
                self.embed_out.append(out.detach().clone())
                return out

            net.embed = embed
        return net

    def match_loss(self, gw_syn, gw_real, args):
        v = self.U.match_loss(gw_syn, gw_real, args)
        ol, c = self._class_ctx()
        lst = self.class_terms.setdefault((self.it, ol), [])
        assert len(lst) == c
        lst.append(v.detach().clone())
        return v

    def _class_ctx(self):
        # called after the syn DiffAugment of class c
        per_ol = 2 * NUM_CLASSES
        assert self.k % 2 == 0 and self.k > 0
        return (self.k - 1) // per_ol, ((self.k - 1) % per_ol) // 2

    def epoch(self, mode, dataloader, net, optimizer, criterion, args, aug):
        assert mode == "train" and aug is True
        per_ol = 2 * NUM_CLASSES
        assert self.k % per_ol == 0
        ol = self.k // per_ol - 1
        il = self.il_count.get((self.it, ol), 0)
        self.il_count[(self.it, ol)] = il + 1
        self.in_epoch, self.epoch_ctx, self.getitem_log = True, (self.it, ol, il), []
        try:
            res = self.U.epoch(mode, dataloader, net, optimizer, criterion, args, aug)
        finally:
            self.in_epoch = False
        perm = torch.tensor(self.getitem_log, dtype=torch.int64)
        assert sorted(perm.tolist()) == list(range(NUM_CLASSES * IPC)), perm
        self.arrays[f"perm_it{self.it}_ol{ol}_il{il}"] = perm
        for name, v in sd_clone(net).items():
            self.arrays[f"net_it{self.it}_ol{ol}_il{il}.{name}"] = v
        # the augmented batch's input must be image_syn_train[perm]
        rec = [r for r in self.aug if r["where"] == f"it{self.it}_ol{ol}_il{il}_train"]
        assert len(rec) == 1
        assert torch.equal(rec[0]["x_in"], self.last_ds.images[perm]), "batch != images[perm]"
        return res

    def tensor_dataset_cls(self):
        run = self

        class RecordingTensorDataset(self.U.TensorDataset):
            def __init__(self, images, labels):
                super().__init__(images, labels)
                run.last_ds = self

            def __getitem__(self, index):
                run.getitem_log.append(int(index))
                return super().__getitem__(index)

        return RecordingTensorDataset

    def sgd_cls(self):
        run = self
        base = torch.optim.SGD

        class RecordingSGD(base):
            def __init__(self, params, *a, **k):
                params = list(params)
                super().__init__(params, *a, **k)
                p = params[0] if len(params) == 1 else None
                self._ddb_img = (isinstance(p, torch.Tensor) and not isinstance(p, torch.nn.Parameter)
                                 and tuple(p.shape) == (NUM_CLASSES * IPC, CHANNEL, *IM_SIZE))
                if self._ddb_img:
                    g = self.param_groups[0]
                    assert g["lr"] == run.cfg["lr_img"] and g["momentum"] == 0.5, g
                    run.img_opt_built += 1
                    run.arrays["syn_init"] = p.detach().clone()
                    self._ddb_p = p
                else:
                    assert run.method == "dsa"
                    g = self.param_groups[0]
                    assert g["lr"] == run.cfg["lr_net"] and g["momentum"] == 0, g

            def step(self, *a, **k):
                out = super().step(*a, **k)
                if self._ddb_img:
                    per_ol = 2 * NUM_CLASSES
                    assert self.k_ok()
                    run.syn_snapshots.append(((run.it, run.k // per_ol - 1), self._ddb_p.detach().clone()))
                return out

            def k_ok(self):
                return run.k % (2 * NUM_CLASSES) == 0 and run.k > 0

        return RecordingSGD

    def backward(self, orig):
        run = self

        def backward(tensor, *a, **k):
            v = tensor.detach().clone()
            if run.in_epoch:
                it, ol, il = run.epoch_ctx
                run.arrays[f"train_loss_it{it}_ol{ol}_il{il}"] = v
            else:
                per_ol = 2 * NUM_CLASSES
                assert run.k % per_ol == 0 and run.k > 0
                ol = run.k // per_ol - 1
                run.arrays[f"loss_it{run.it}_ol{ol}"] = v
                if run.method == "dm":
                    assert len(run.embed_out) == 2 * NUM_CLASSES
                    terms = []
                    for c in range(NUM_CLASSES):
                        o_r, o_s = run.embed_out[2 * c], run.embed_out[2 * c + 1]
                        assert o_r.shape[0] == BATCH_REAL and o_s.shape[0] == IPC
                        terms.append(torch.sum((torch.mean(o_r, dim=0) - torch.mean(o_s, dim=0)) ** 2))
                    run.class_terms[(run.it, ol)] = terms
                    run.embed_out = []
                terms = run.class_terms[(run.it, ol)]
                assert len(terms) == NUM_CLASSES
                total = torch.tensor(0.0)
                for t in terms:
                    total += t
                assert torch.equal(total, v), (total, v)
                run.arrays[f"class_loss_it{run.it}_ol{ol}"] = torch.stack(terms)
            return orig(tensor, *a, **k)

        return backward

    def torch_save(self, obj, f, *a, **k):
        self.saved.append((obj, str(f)))

    # ---- DiffAugment recorder
    def diffaugment(self, x, strategy="", seed=-1, param=None):
        U = self.U
        per_ol = 2 * NUM_CLASSES
        if seed != -1:
            assert not self.in_epoch
            ol, c, role = self.k // per_ol, (self.k % per_ol) // 2, ("real", "syn")[self.k % 2]
            real_key = f"real_it{self.it}_ol{ol}_c{c}" if role == "real" else None
            where = f"it{self.it}_ol{ol}_c{c}_{role}"
            assert seed == self.clock.used[-1], "seed is not the clock value read just before"
            self.k += 1
        else:
            assert self.in_epoch
            it, ol, il = self.epoch_ctx
            where = f"it{it}_ol{ol}_il{il}_train"
            real_key = None
        rng_before = torch.get_rng_state()
        draws, fn_calls, thetas = [], [], []
        pending = [None]
        real_rand, real_randint, real_ms = torch.rand, torch.randint, torch.random.manual_seed
        real_affine = F.affine_grid

        def ms(s):
            pending[0] = int(s)
            return real_ms(s)

        def mk(fn, real):
            def draw(*a, **k):
                t = real(*a, **k)
                draws.append({"fn": fn, "seed": pending[0], "tensor": t, "raw": t.detach().clone()})
                pending[0] = None
                return t
            return draw

        def affine_grid(theta, size, *a, **k):
            thetas.append(theta.detach().clone())
            return real_affine(theta, size, *a, **k)

        def wrap_fn(f):
            def g(x_, p_):
                fn_calls.append(f.__name__)
                return f(x_, p_)
            return g

        wrapped = {key: [wrap_fn(f) for f in fns] for key, fns in U.AUGMENT_FNS.items()}
        with contextlib.ExitStack() as st:
            st.enter_context(patch_attr(torch, "rand", mk("rand", real_rand)))
            st.enter_context(patch_attr(torch, "randint", mk("randint", real_randint)))
            st.enter_context(patch_attr(torch.random, "manual_seed", ms))
            st.enter_context(patch_attr(F, "affine_grid", affine_grid))
            st.enter_context(patch_attr(U, "AUGMENT_FNS", wrapped))
            out = self._orig_diffaug(x, strategy, seed=seed, param=param)
        assert strategy == STRATEGY and param.aug_mode == "S"
        rec = self._build_record(where, seed, param, x, out, draws, fn_calls, thetas, rng_before)
        self.aug.append(rec)
        if real_key is not None:
            self.arrays[real_key] = x.detach().clone()
        return out

    def _build_record(self, where, seed, param, x, out, draws, fn_calls, thetas, rng_before):
        pbties = STRATEGY.split("_")
        n = x.shape[0]
        siamese = seed != -1
        assert param.Siamese == siamese
        d0 = draws[0]
        assert d0["fn"] == "randint" and tuple(d0["raw"].shape) == (1,)
        assert d0["seed"] == (seed if siamese else None)
        family = pbties[int(d0["raw"].item())]
        assert fn_calls == FAMILY_FNS[family], (family, fn_calls)
        rest = draws[1:]
        for j, d in enumerate(rest):  # sub-seeds: seed+1, seed+2, ... (None when unseeded)
            assert d["seed"] == (seed + 1 + j if siamese else None)
        vals = {}

        def post(d):
            t = d["tensor"].reshape(-1)
            assert t.numel() == n
            if siamese:
                assert torch.all(t == t[0])
            return t

        if family == "color":
            assert [d["fn"] for d in rest] == ["rand"] * 3
            for key, d in zip(("randb", "rands", "randc"), rest):
                vals[key] = flat(post(d))
        elif family in ("crop", "cutout"):
            assert [d["fn"] for d in rest] == ["randint"] * 2
            keys = ("translation_x", "translation_y") if family == "crop" else ("offset_x", "offset_y")
            for key, d in zip(keys, rest):
                vals[key] = [int(v) for v in flat(post(d))]
        elif family == "flip":
            assert [d["fn"] for d in rest] == ["rand"]
            vals["randf"] = flat(post(rest[0]))
        elif family == "scale":
            assert [d["fn"] for d in rest] == ["rand"] * 2 and len(thetas) == 1
            r = param.ratio_scale
            th = thetas[0]
            for key, d, idx in (("sx", rest[0], 0), ("sy", rest[1], 1)):
                v = d["raw"] * (r - 1.0 / r) + 1.0 / r
                if siamese:
                    v[:] = v[0].clone()
                assert torch.equal(v, th[:, idx, idx]), (key, v, th)
                vals[key] = flat(v)
            assert torch.all(th[:, 0, 1:] == 0) and torch.all(th[:, 1, [0, 2]] == 0)
        elif family == "rotate":
            assert [d["fn"] for d in rest] == ["rand"] and len(thetas) == 1
            r = param.ratio_rotate
            v = (rest[0]["raw"] - 0.5) * 2 * r / 180 * float(np.pi)
            if siamese:
                v[:] = v[0].clone()
            th = thetas[0]
            for i in range(n):
                m = torch.tensor([[torch.cos(v[i]), torch.sin(-v[i]), 0], [torch.sin(v[i]), torch.cos(v[i]), 0]],
                                 dtype=torch.float)
                assert torch.equal(m, th[i]), (m, th[i])
            vals["theta"] = flat(v)
        for key in vals:
            assert len(vals[key]) == n
        return {
            "where": where, "seed": int(seed), "siamese": siamese, "family": family, "n": int(n),
            "values": vals,
            "family_index": int(d0["raw"].item()),
            "draws": [{"fn": d["fn"], "seed": -1 if d["seed"] is None else d["seed"],
                       "shape": list(d["raw"].shape), "raw": flat(d["raw"])} for d in draws],
            # kept in memory only, for verification:
            "x_in": x.detach().clone(), "out": out.detach().clone(), "rng_before": rng_before,
            "raw_tensors": [d["raw"] for d in draws],
        }

    # ---- drive
    def argv(self, tmp):
        c = self.cfg
        common = ["--dataset", "TinySynthetic", "--model", "ConvNet", "--ipc", str(IPC), "--num_exp", "1",
                  "--num_eval", "0", "--Iteration", str(c["iteration"]), "--lr_img", str(c["lr_img"]),
                  "--lr_net", str(c["lr_net"]), "--batch_real", str(BATCH_REAL),
                  "--batch_train", str(BATCH_TRAIN), "--init", "real", "--dsa_strategy", STRATEGY,
                  "--dis_metric", "ours", "--data_path", os.path.join(tmp, "data"),
                  "--save_path", os.path.join(tmp, "result")]
        if self.method == "dsa":
            return ["main.py", "--method", "DSA", "--eval_mode", "S"] + common
        return ["main_DM.py", "--eval_mode", "SS"] + common

    def run(self):
        U, M = self.U, self.M
        self._orig_diffaug = U.DiffAugment
        assert not torch.cuda.is_available(), "run on a CPU-only torch (the official code picks cuda when present)"
        log = io.StringIO()
        with contextlib.ExitStack() as st, tempfile.TemporaryDirectory() as tmp:
            wlog = st.enter_context(warnings.catch_warnings(record=True))
            warnings.simplefilter("always")
            st.enter_context(patch_attr(sys, "argv", self.argv(tmp)))
            st.enter_context(patch_attr(M, "get_dataset", self.get_dataset))
            st.enter_context(patch_attr(M, "get_loops", self.get_loops))
            st.enter_context(patch_attr(U, "get_default_convnet_setting", self.convnet_setting))
            st.enter_context(patch_attr(M, "get_network", self.get_network))
            st.enter_context(patch_attr(M, "evaluate_synset", self.evaluate_synset))
            st.enter_context(patch_attr(M, "time", self.clock))
            st.enter_context(patch_attr(U, "time", self.clock))
            st.enter_context(patch_attr(M, "DiffAugment", self.diffaugment))
            st.enter_context(patch_attr(U, "DiffAugment", self.diffaugment))
            if self.method == "dsa":
                st.enter_context(patch_attr(M, "match_loss", self.match_loss))
                st.enter_context(patch_attr(M, "epoch", self.epoch))
                st.enter_context(patch_attr(M, "TensorDataset", self.tensor_dataset_cls()))
            st.enter_context(patch_attr(torch, "save", self.torch_save))
            st.enter_context(patch_attr(torch.optim, "SGD", self.sgd_cls()))
            st.enter_context(patch_attr(torch.Tensor, "backward", self.backward(torch.Tensor.backward)))
            np.random.seed(self.cfg["np_seed"])
            torch.manual_seed(TORCH_SEED)
            with contextlib.redirect_stdout(log):
                M.main()
        self.log = log.getvalue()
        def where(w):  # the official F.affine_grid call reaches torch through the recorder
            f = os.path.basename(w.filename)
            return "utils.py F.affine_grid, via the recorder" if f == os.path.basename(__file__) else f"{f}:{w.lineno}"

        self.warnings = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]} [{where(w)}]"
                                for w in wlog})
        assert not self.clock.seeds, f"unused clock seeds {self.clock.seeds}"
        n_it = self.cfg["iteration"] + 1
        assert self.it == n_it - 1 and len(self.net_seeds) == n_it
        assert self.img_opt_built == 1
        assert len(self.saved) == 1
        obj, _ = self.saved[0]
        syn_final, lab_final = obj["data"][-1]
        assert torch.equal(lab_final, torch.arange(NUM_CLASSES).repeat_interleave(IPC))
        self.arrays["syn_final"] = syn_final.detach().clone()
        (last_ctx, last_snap) = self.syn_snapshots[-1]
        assert torch.equal(last_snap, syn_final)
        for ctx, snap in self.syn_snapshots[:-1]:
            self.arrays[f"syn_it{ctx[0]}_ol{ctx[1]}"] = snap
        # syn_init rows came from get_images(c, ipc); the first syn batches of it0 ol0 are them
        for r in self.aug:
            if r["where"].startswith("it0_ol0_c") and r["where"].endswith("_syn"):
                c = int(r["where"].split("_c")[1].split("_")[0])
                assert torch.equal(r["x_in"], self.arrays["syn_init"][c * IPC:(c + 1) * IPC])
        # indices into the dataset (extra, for information)
        x, y = self.dataset
        assert len({tuple(flat(im)) for im in x}) == len(x)

        def idx_of(batch, c):
            out = []
            for im in batch:
                hits = [i for i in range(len(x)) if torch.equal(x[i], im)]
                assert len(hits) == 1 and int(y[hits[0]]) == c
                out.append(hits[0])
            return torch.tensor(out, dtype=torch.int64)

        self.arrays["init_idx"] = torch.cat([idx_of(self.arrays["syn_init"][c * IPC:(c + 1) * IPC], c)
                                             for c in range(NUM_CLASSES)])
        for key in [k for k in self.arrays if k.startswith("real_it")]:
            c = int(key.rsplit("_c", 1)[1])
            self.arrays[key.replace("real_it", "real_idx_it")] = idx_of(self.arrays[key], c)
        # Siamese: real and syn of one class carry the same values
        by_where = {r["where"]: r for r in self.aug}
        for w, r in by_where.items():
            if w.endswith("_real"):
                s = by_where[w[:-5] + "_syn"]
                assert r["seed"] == s["seed"] and r["family"] == s["family"]
                for key, v in r["values"].items():
                    assert set(v) == {v[0]} and s["values"][key] == [v[0]] * IPC, (w, key)
        return self


# --------------------------------------------------------------------------- verification
def apply_from_values(x, family, values, param):
    """Independent re-implementation of the official families, driven only by the record."""
    n, _, h, w = x.shape

    def col(key, dtype=torch.float32):
        return torch.tensor(values[key], dtype=dtype).reshape(n, 1, 1, 1)

    if family == "color":
        x = x + (col("randb") - 0.5) * param.brightness
        m = x.mean(dim=1, keepdim=True)
        x = (x - m) * (col("rands") * param.saturation) + m
        m = x.mean(dim=[1, 2, 3], keepdim=True)
        return (x - m) * (col("randc") + param.contrast) + m
    if family == "crop":
        xp = F.pad(x, [1, 1, 1, 1])
        out = torch.empty_like(x)
        for i in range(n):
            rows = torch.clamp(torch.arange(h) + values["translation_x"][i] + 1, 0, h + 1)
            cols = torch.clamp(torch.arange(w) + values["translation_y"][i] + 1, 0, w + 1)
            out[i] = xp[i][:, rows][:, :, cols]
        return out
    if family == "cutout":
        ch, cw = int(h * param.ratio_cutout + 0.5), int(w * param.ratio_cutout + 0.5)
        mask = torch.ones(n, h, w)
        for i in range(n):
            rows = torch.clamp(torch.arange(ch) + values["offset_x"][i] - ch // 2, 0, h - 1)
            cols = torch.clamp(torch.arange(cw) + values["offset_y"][i] - cw // 2, 0, w - 1)
            mask[i][rows[:, None], cols[None, :]] = 0
        return x * mask.unsqueeze(1)
    if family == "flip":
        return torch.where(col("randf") < param.prob_flip, x.flip(3), x)
    if family in ("scale", "rotate"):
        theta = torch.zeros(n, 2, 3)
        for i in range(n):
            if family == "scale":
                theta[i, 0, 0], theta[i, 1, 1] = values["sx"][i], values["sy"][i]
            else:
                t = torch.tensor(values["theta"][i], dtype=torch.float32)
                theta[i] = torch.tensor([[torch.cos(t), -torch.sin(t), 0], [torch.sin(t), torch.cos(t), 0]])
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    raise ValueError(family)


def verify_aug(utils, rec):
    U = utils
    x = rec["x_in"].clone()
    # (1) official DiffAugment again, same seed / same global RNG state
    saved = torch.get_rng_state()
    try:
        if rec["seed"] == -1:
            torch.set_rng_state(rec["rng_before"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out1 = U.DiffAugment(x.clone(), STRATEGY, seed=rec["seed"], param=U.ParamDiffAug())
    finally:
        torch.set_rng_state(saved)
    assert torch.equal(out1, rec["out"]), f"replay (1) differs at {rec['where']}"
    # (2) official DiffAugment with the recorded raw draws forced in
    queue = [t.clone() for t in rec["raw_tensors"]]

    def forced(*a, **k):
        return queue.pop(0)

    with contextlib.ExitStack() as st, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.enter_context(patch_attr(torch, "rand", forced))
        st.enter_context(patch_attr(torch, "randint", forced))
        st.enter_context(patch_attr(torch.random, "manual_seed", lambda s: None))
        out2 = U.DiffAugment(x.clone(), STRATEGY, seed=rec["seed"], param=U.ParamDiffAug())
    assert not queue
    assert torch.equal(out2, rec["out"]), f"replay (2) differs at {rec['where']}"
    # (3) independent implementation from the recorded family and values
    out3 = apply_from_values(x.clone(), rec["family"], rec["values"], U.ParamDiffAug())
    diff = float((out3 - rec["out"]).abs().max())
    assert diff <= 1e-6, f"replay (3) differs at {rec['where']} by {diff}"
    return diff


def replay_fixture(utils, path):
    """Replay a saved fixture from its contents only (official ConvNet / match_loss, the
    independent ``apply_from_values``, no RNG at all) and return max |syn_final - replay|."""
    d = np.load(path, allow_pickle=False)
    meta = json.loads(str(d["meta"]))
    aug = {r["where"]: r for r in meta["aug"]}
    param = utils.ParamDiffAug()
    C, ipc = meta["num_classes"], meta["ipc"]
    t = lambda k: torch.from_numpy(d[k].copy())  # noqa: E731
    syn = t("syn_init").requires_grad_(True)
    labels = torch.arange(C).repeat_interleave(ipc)
    opt = torch.optim.SGD([syn], lr=meta["lr_img"], momentum=meta["momentum"])
    crit = torch.nn.CrossEntropyLoss()
    args = argparse.Namespace(dis_metric="ours", device="cpu")
    worst = 0.0

    def aug_(x, where):
        r = aug[where]
        return apply_from_values(x, r["family"], r["values"], param)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for it in range(meta["iterations"]):
            net = utils.ConvNet(meta["channel"], C, meta["net_width"], meta["net_depth"], meta["net_act"],
                                meta["net_norm"], meta["net_pooling"], tuple(meta["im_size"]))
            net.load_state_dict({k.split(".", 1)[1]: t(k) for k in d.files if k.startswith(f"net_init_it{it}.")})
            params = list(net.parameters())
            if meta["method"] == "dm":
                for p in params:
                    p.requires_grad = False
            opt_net = torch.optim.SGD(net.parameters(), lr=meta["lr_net"])
            for ol in range(meta["outer_loop"]):
                loss, terms = torch.tensor(0.0), []
                for c in range(C):
                    x_r = aug_(t(f"real_it{it}_ol{ol}_c{c}"), f"it{it}_ol{ol}_c{c}_real")
                    x_s = aug_(syn[c * ipc:(c + 1) * ipc], f"it{it}_ol{ol}_c{c}_syn")
                    if meta["method"] == "dsa":
                        lab_r = torch.full((x_r.shape[0],), c, dtype=torch.long)
                        lab_s = torch.full((ipc,), c, dtype=torch.long)
                        gw_r = [g.detach() for g in torch.autograd.grad(crit(net(x_r), lab_r), params)]
                        gw_s = torch.autograd.grad(crit(net(x_s), lab_s), params, create_graph=True)
                        term = utils.match_loss(gw_s, gw_r, args)
                    else:
                        term = torch.sum((net.embed(x_r).detach().mean(0) - net.embed(x_s).mean(0)) ** 2)
                    terms.append(term.detach())
                    loss += term
                worst = max(worst, abs(float(loss) - float(d[f"loss_it{it}_ol{ol}"])))
                worst = max(worst, float((torch.stack(terms) - t(f"class_loss_it{it}_ol{ol}")).abs().max()))
                opt.zero_grad()
                loss.backward()
                opt.step()
                if ol == meta["outer_loop"] - 1:
                    break
                x_train = syn.detach().clone()
                for il in range(meta["inner_loop"]):
                    perm = t(f"perm_it{it}_ol{ol}_il{il}")
                    x = aug_(x_train[perm], f"it{it}_ol{ol}_il{il}_train")
                    l_train = crit(net(x), labels[perm])
                    worst = max(worst, abs(float(l_train) - float(d[f"train_loss_it{it}_ol{ol}_il{il}"])))
                    opt_net.zero_grad()
                    l_train.backward()
                    opt_net.step()
    return max(worst, float((syn.detach() - t("syn_final")).abs().max()))


# --------------------------------------------------------------------------- save
def to_np(v):
    v = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
    if v.dtype == np.float64:
        v = v.astype(np.float32)
    return v


def build_meta(run, info, utils, diffs, debug_extras):
    c = run.cfg
    p = utils.ParamDiffAug()
    dsa_param = {k: v for k, v in vars(p).items()}
    aug = [{k: r[k] for k in ("where", "seed", "siamese", "family", "n", "values", "family_index", "draws")}
           for r in run.aug]
    meta = {
        "reference": "VICO-UoE/DatasetCondensation",
        "reference_commit": info["commit"],
        "reference_sha256": info["sha256"],
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "method": run.method,
        "official_entry": "main.py::main (--method DSA)" if run.method == "dsa" else "main_DM.py::main",
        "num_classes": NUM_CLASSES, "ipc": IPC, "channel": CHANNEL, "im_size": list(IM_SIZE),
        "net_width": NET_WIDTH, "net_depth": NET_DEPTH, "net_act": NET_ACT, "net_norm": NET_NORM,
        "net_pooling": NET_POOLING,
        "lr_img": c["lr_img"], "momentum": 0.5, "lr_net": c["lr_net"],
        "outer_loop": c["outer_loop"], "inner_loop": c["inner_loop"],
        "batch_real": BATCH_REAL, "batch_train": BATCH_TRAIN,
        "iterations": c["iteration"] + 1, "Iteration_arg": c["iteration"],
        "init": "real", "dis_metric": "ours",
        "strategy": STRATEGY, "aug_mode": p.aug_mode,
        "dsa_param": dsa_param, **dsa_param,
        "dataset": {"n_per_class": N_PER_CLASS, "labels": "i % num_classes (interleaved)",
                    "recipe": f"torch.round(torch.randn(12, 3, 16, 16, generator=torch.Generator()"
                              f".manual_seed({DATA_SEED})) * {QUANT:g}) / {QUANT:g}",
                    "normalised": False},
        "np_seed": c["np_seed"], "torch_seed": TORCH_SEED,
        "clock_seeds": list(run.clock.used),
        "net_seeds": list(run.net_seeds),
        "aug": aug,
        "families_exercised": sorted({r["family"] for r in run.aug}),
        "replay_max_abs_diff": max(diffs) if diffs else 0.0,
        "official_warnings": run.warnings,
        "import_warnings": info["import_warnings"],
        "extras": {
            "init_idx": "dataset indices of syn_init rows (get_images(c, ipc) at init)",
            "real_idx_it{it}_ol{ol}_c{c}": "dataset indices of the real batch",
            **({"syn_it{it}_ol{ol}": "image_syn after each image step except the last (= syn_final)",
                "net_it{it}_ol{ol}_il{il}.<name>": "DSA: network state dict after each inner-loop epoch"}
               if debug_extras else {}),
            "train_loss_it{it}_ol{ol}_il{il}": "DSA: cross-entropy of the inner-loop batch (before the step)",
        },
    }
    return meta


DEBUG_PREFIXES = ("syn_it", "net_it")


def save(run, info, utils, diffs, path, debug_extras=False):
    arrays = {k: to_np(v) for k, v in sorted(run.arrays.items())
              if debug_extras or not k.startswith(DEBUG_PREFIXES)}
    for k, v in arrays.items():
        assert v.dtype in (np.float32, np.int64), (k, v.dtype)
    meta = build_meta(run, info, utils, diffs, debug_extras)
    arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **arrays)
    back = np.load(path, allow_pickle=False)
    assert set(back.files) == set(arrays)
    for k in arrays:
        assert np.array_equal(back[k], arrays[k])
    return meta


def run_method(utils, mods, method, clock):
    run = Run(utils, mods[method], method, clock).run()
    diffs = [verify_aug(utils, r) for r in run.aug]
    return run, diffs


def same(a, b):
    assert set(a.arrays) == set(b.arrays)
    for k in a.arrays:
        assert torch.equal(a.arrays[k], b.arrays[k]), k
    strip = lambda r: {k: r[k] for k in ("where", "seed", "family", "values", "draws")}  # noqa: E731
    assert [strip(r) for r in a.aug] == [strip(r) for r in b.aug]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dc_path", help="checkout of VICO-UoE/DatasetCondensation")
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--any-commit", action="store_true")
    ap.add_argument("--debug-extras", action="store_true",
                    help="also save image_syn after every image step and (DSA) the net after every "
                         "inner-loop epoch (about +20 KB per file)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    utils, mods, info = load_official(a.dc_path, a.any_commit)
    metas = {}
    for method, clock in (("dsa", DSA_CLOCK), ("dm", DM_CLOCK)):
        run, diffs = run_method(utils, mods, method, clock)
        again, _ = run_method(utils, mods, method, clock)
        same(run, again)
        path = os.path.join(a.out, f"{method}_reference.npz")
        metas[method] = save(run, info, utils, diffs, path, a.debug_extras)
        print(f"== {method}: {path} ({os.path.getsize(path)} bytes)")
        for line in run.log.splitlines():
            if "iter =" in line:
                print("   official log:", line.strip())
        for k in sorted(run.arrays):
            if k.startswith(("loss_", "class_loss_", "train_loss_")):
                print(f"   {k} = {to_np(run.arrays[k]).tolist()}")
        for r in run.aug:
            print(f"   aug {r['where']:<22} seed={r['seed']:>6} {r['family']:<7} {json.dumps(r['values'])}")
        print(f"   augmentation replay max |diff| (independent re-implementation): {max(diffs):.3g}")
        full = replay_fixture(utils, path)
        print(f"   full replay from the saved fixture alone: max |diff| (losses, syn_final) = {full:.3g}")
        assert full <= 1e-5, full
        print("   official warnings:")
        for w in run.warnings:
            print("     ", w)
    fams = set(metas["dsa"]["families_exercised"]) | set(metas["dm"]["families_exercised"])
    print("families exercised: dsa", metas["dsa"]["families_exercised"], "dm", metas["dm"]["families_exercised"])
    missing = set(FAMILY_FNS) - fams
    assert not missing, f"families not exercised: {missing}"


if __name__ == "__main__":
    main()
