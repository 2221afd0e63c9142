"""What the matching-based distillers share: per-class real batches, the synthetic set's
real-image initialisation, DSA's layer-wise gradient distance, per-class network gradients, and DM's mean-embedding
distance with every class in one forward pass.

References: Zhao & Bilen, "Dataset Condensation with Differentiable Siamese Augmentation"
(ICML 2021) and "Dataset Condensation with Distribution Matching" (WACV 2023); reference
code github.com/VICO-UoE/DatasetCondensation (``utils.py``: ``distance_wb``,
``match_loss``; ``main.py``; ``main_DM.py``). Golden figures from that code are checked in
``tests/test_golden_dsa_dm.py``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddbench.errors import DataError

__all__ = ["ClassBatches", "real_init", "layerwise_distance", "gradient_match_distance", "class_gradients",
           "mean_embedding_distance", "descend", "LearnedImages", "run_learned", "loop_fingerprint", "finish_hard_label_set",
           "hard_label_set", "initial_images", "fresh_network", "freeze_batchnorm", "class_budget", "network_builder",
           "normalized_train", "DISTANCES"]

#: the reference's ``dis_metric`` values
DISTANCES = ("ours", "mse", "cos")


class ClassBatches:
    """Random real batches of one class at a time, drawn without replacement within a batch
    (the reference's ``get_images``: a permutation of the class's indices, first ``n``).

    ``labels`` are the training labels (N,); draws come from ``generator`` (CPU)."""

    def __init__(self, labels: Tensor, num_classes: int, generator: torch.Generator) -> None:
        labels = labels.cpu()
        self.indices = [(labels == c).nonzero()[:, 0] for c in range(int(num_classes))]
        self.generator = generator
        empty = [c for c, idx in enumerate(self.indices) if len(idx) == 0]
        if empty:
            raise DataError(f"class {empty[0]} has no training images ({len(empty)} empty class(es)); "
                            "a matching distiller needs real images of every class")

    @property
    def smallest(self) -> int:
        return min(len(idx) for idx in self.indices)

    def draw(self, c: int, n: int) -> Tensor:
        """``min(n, class size)`` distinct training indices of class ``c``."""
        idx = self.indices[c]
        return idx[torch.randperm(len(idx), generator=self.generator)[: int(n)]]

    def draw_all(self, n: int) -> Tensor:
        """(C, n) indices: ``n`` distinct images of every class (``n`` <= the smallest class)."""
        if n > self.smallest:
            raise DataError(f"a real batch of {n} per class is larger than the smallest class ({self.smallest} "
                            "images); lower the real batch")
        return torch.stack([self.draw(c, n) for c in range(len(self.indices))])

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def real_init(labels: Tensor, num_classes: int, ipc: int, generator: torch.Generator) -> Tensor:
    """(C * ipc,) training indices to initialise a synthetic set from, class by class
    (class ``c`` occupies rows ``c*ipc .. (c+1)*ipc - 1``, as the reference's
    ``init='real'``). A class with fewer than ``ipc`` images is an error."""
    batches = ClassBatches(labels, num_classes, generator)
    short = [c for c, idx in enumerate(batches.indices) if len(idx) < ipc]
    if short:
        c = short[0]
        raise DataError(f"{ipc} images per class asked for, but class {c} has only {len(batches.indices[c])} "
                        f"training images ({len(short)} class(es) are short); lower --ipc")
    return torch.cat([batches.draw(c, ipc) for c in range(int(num_classes))])


def layerwise_distance(g_syn: Tensor, g_real: Tensor) -> Tensor:
    """The reference's ``distance_wb`` for one parameter's gradients: the sum over output
    units of ``1 - cos`` between the rows (a conv weight is flattened to (out, in*kh*kw));
    1-D parameters (biases, norm scales) count 0."""
    if g_real.dim() == 1:
        return g_real.new_zeros(())
    if g_real.dim() > 2:
        g_real = g_real.reshape(g_real.shape[0], -1)
        g_syn = g_syn.reshape(g_syn.shape[0], -1)
    dot = (g_real * g_syn).sum(-1)
    return (1 - dot / (g_real.norm(dim=-1) * g_syn.norm(dim=-1) + 1e-6)).sum()


def gradient_match_distance(g_syn: Sequence[Tensor], g_real: Sequence[Tensor], metric: str = "ours") -> Tensor:
    """The reference's ``match_loss``: ``ours`` = the sum of :func:`layerwise_distance` over
    parameters; ``mse`` = squared distance of the flattened gradients; ``cos`` = 1 - cosine of
    the flattened gradients."""
    if metric == "ours":
        out = g_real[0].new_zeros(())
        for gs, gr in zip(g_syn, g_real):
            out = out + layerwise_distance(gs, gr)
        return out
    vs = torch.cat([g.reshape(-1) for g in g_syn])
    vr = torch.cat([g.reshape(-1) for g in g_real])
    if metric == "mse":
        return ((vs - vr) ** 2).sum()
    if metric == "cos":
        return 1 - (vr * vs).sum() / (vr.norm() * vs.norm() + 1e-6)
    raise ValueError(f"unknown gradient distance {metric!r}; choose one of {', '.join(DISTANCES)}")


def class_gradients(net: nn.Module, x: Tensor, y: Tensor, *, create_graph: bool) -> list[Tensor]:
    """Gradients of the mean cross-entropy of ``net`` on (x, y) w.r.t. its parameters."""
    params = [p for p in net.parameters()]
    loss = F.cross_entropy(net(x), y)
    return list(torch.autograd.grad(loss, params, create_graph=create_graph))


def mean_embedding_distance(emb_real: Tensor, emb_syn: Tensor, real_counts: Sequence[int],
                            syn_counts: Sequence[int]) -> tuple[Tensor, Tensor]:
    """DM's loss from embeddings of all classes at once: rows are grouped by class in order,
    ``real_counts[c]`` / ``syn_counts[c]`` rows each. Returns (sum over classes, per-class
    terms) of ``||mean real embedding - mean synthetic embedding||^2``."""
    def means(e: Tensor, counts: Sequence[int]) -> Tensor:
        counts = [int(n) for n in counts]
        if len(set(counts)) == 1:
            return e.reshape(len(counts), counts[0], -1).mean(dim=1)
        return torch.stack([part.mean(dim=0) for part in torch.split(e, counts)])

    per_class = ((means(emb_real, real_counts) - means(emb_syn, syn_counts)) ** 2).sum(dim=-1)
    return per_class.sum(), per_class


# ---------------------------------------------------------------------------
# what a matching distiller's run needs around its step


def fresh_network(build: Any, generator: torch.Generator, device: torch.device) -> nn.Module:
    """A freshly initialised network from ``build()`` whose initialisation is drawn from
    ``generator`` (the global RNG is left as it was), on ``device``, in train mode."""
    seed = int(torch.randint(2**62, (1,), generator=generator).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build()
    return net.to(device).train()


def freeze_batchnorm(net: nn.Module, real: Tensor) -> bool:
    """The reference's treatment of BatchNorm in gradient matching: estimate the running
    statistics from one real batch in train mode, then put every BatchNorm layer in eval mode.
    Returns False (and does nothing) when the network has no BatchNorm."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return False
    net.train()
    with torch.no_grad():
        net(real)
    for m in bns:
        m.eval()
    return True


def initial_images(x_train: Tensor, y_train: Tensor, num_classes: int, ipc: int, init: str,
                   generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
    """(images, labels, indices): the synthetic set's start, class by class (``ipc`` rows per
    class in label order). ``init='real'``: random real training images of each class
    (``indices`` says which); ``'noise'``: standard normal draws in ``x_train``'s space."""
    labels = torch.arange(int(num_classes)).repeat_interleave(int(ipc))
    if init == "real":
        idx = real_init(y_train, num_classes, ipc, generator)
        return x_train[idx].clone().float(), labels, idx
    if init == "noise":
        shape = (len(labels), *x_train.shape[1:])
        return torch.randn(shape, generator=generator), labels, None
    raise ValueError(f"unknown init {init!r}; choose real or noise")


def descend(optimizer: torch.optim.Optimizer, per_class: Tensor) -> tuple[Tensor, Tensor]:
    """One step of ``optimizer`` on the sum of the per-class losses; returns (loss, per-class
    losses), detached."""
    loss = per_class.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach(), per_class.detach()


class LearnedImages:
    """A class-balanced synthetic set being learned: the images (a leaf tensor on ``device``),
    their SGD optimiser, the real-batch sampler and the run's random streams -- everything a
    checkpoint must hold for a resumed run to continue exactly as an uninterrupted one."""

    def __init__(self, images: Tensor, *, lr: float, momentum: float, device: torch.device,
                 sampler: ClassBatches, generators: dict[str, torch.Generator]) -> None:
        self.syn = images.to(device).requires_grad_(True)
        self.opt = torch.optim.SGD([self.syn], lr=lr, momentum=momentum)
        self.sampler = sampler
        self.generators = generators

    def state_dict(self) -> dict[str, Any]:
        return {"syn": self.syn.detach().cpu(), "opt": self.opt.state_dict(), "real": self.sampler.state_dict(),
                "generators": {k: g.get_state() for k, g in self.generators.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.syn.copy_(state["syn"].to(self.syn.device))
        self.opt.load_state_dict(state["opt"])
        self.sampler.load_state_dict(state["real"])
        for k, g in self.generators.items():
            g.set_state(state["generators"][k])


def run_learned(ctx: Any, state: LearnedImages, step: Any, *, method: str, options: Any, ipc: int, source: Any):
    """:func:`~ddbench.toolkit.imageloop.run_loop` over ``options.iterations`` steps with
    ``state`` as the checkpoint and the fingerprint of :func:`loop_fingerprint`."""
    from .imageloop import run_loop

    return run_loop(ctx, name=method, total=int(options.iterations), step=step, state_dict=state.state_dict,
                    load_state_dict=state.load_state_dict,
                    fingerprint=loop_fingerprint(method, options, ipc, ctx, source, state.syn.device),
                    checkpoint_every=int(options.checkpoint_every), log_every=int(options.log_every),
                    divergence_hint=f"lower lr_img (now {options.lr_img:g})")


def loop_fingerprint(method: str, options: Any, ipc: int, ctx: Any, source: Any, device: torch.device,
                     version: int = 1) -> dict[str, Any]:
    """What a checkpoint of a learned set must match to be resumed (``log_every`` changes
    nothing but the display and stays out)."""
    return {"method": method, "options": {k: v for k, v in options.to_dict().items() if k != "log_every"},
            "ipc": int(ipc), "seed": int(ctx.seed), "source": getattr(source, "content_hash", ""),
            "device": device.type, "version": int(version)}


def finish_hard_label_set(ctx: Any, source: Any, state: LearnedImages, labels: Tensor, *, method: str,
                          options: Any, result: Any, details: dict[str, Any], init_idx: Tensor | None,
                          learned_by: str, scaling: str | None, seconds: float, title: str, ylabel: str):
    """The learned set with its provenance (options, the loop's cost and loss summary,
    ``details``, the initial indices) and, when ``ctx.output_dir`` is set, its grid and loss
    curve."""
    from pathlib import Path

    from ddbench.types import Provenance

    from .imageloop import loss_summary, peak_memory_mib
    from .plots import write_set_outputs

    device = state.syn.device
    iterations = len(result.losses)
    details = {**details, "loss": loss_summary(result.losses), "iterations": iterations,
               "distill_seconds": round(result.seconds, 3),
               "s_per_iteration": round(result.seconds / max(1, iterations), 4),
               "resumed_from_step": result.resumed_from, "device": str(device), **peak_memory_mib(device)}
    if init_idx is not None:
        details["init_indices"] = init_idx.tolist()
    start = "random real images of each class" if options.init == "real" else "Gaussian noise"
    provenance = Provenance(options=options.to_dict(), arch=None, selection=f"initialised from {start}, then "
                            f"learned by {learned_by}", scaling=scaling or "", seconds=round(seconds, 3),
                            details=details)
    out = hard_label_set(source, state.syn, labels, method=method, provenance=provenance)
    if getattr(ctx, "output_dir", None):
        write_set_outputs(Path(ctx.output_dir), out, result.losses, title=title, xlabel="iteration", ylabel=ylabel)
    return out


def hard_label_set(source: Any, images: Tensor, labels: Tensor, *, method: str, provenance: Any):
    """The learned images with their hard labels as a :class:`~ddbench.distilled.DistilledSet`
    in the source's normalised space, pre-trained with the ``hard_ce_dsa`` recipe. Learned
    pixels may leave [0, 1]: the set declares no value range."""
    from ddbench.distilled import DistilledSet

    return DistilledSet(images=images.detach().cpu().float().contiguous(), targets=labels.cpu().long(),
                        label_kind="hard", recipe="hard_ce_dsa", pixel_space="normalized",
                        mean=tuple(source.mean), std=tuple(source.std), num_classes=source.num_classes,
                        source=source.name, resolution=int(source.resolution), method=method,
                        provenance=provenance, value_range=None)


def class_budget(budget: Any, num_classes: int, method: str) -> int:
    """Images per class of a class-balanced learned set, with a clear error when the run's
    budget cannot be split evenly."""
    ipc = getattr(budget, "ipc", None)
    if not ipc:
        raise DataError(f"{method} learns the same number of images for every class, but the budget "
                        f"({budget.images} images) is not a multiple of the source's {num_classes} classes; "
                        "give --ipc K instead")
    return int(ipc)


def network_builder(arch_name: str, kwargs: dict[str, Any], in_shape: tuple[int, ...], num_outputs: int):
    """(spec, build): the registered architecture ``arch_name`` with ``kwargs`` as an
    :class:`~ddbench.types.ArchSpec` (its parameter count filled in), and a function that
    builds a fresh one with a ``num_outputs``-way head."""
    import dataclasses

    from ddbench.plugins import registry
    from ddbench.types import ArchSpec

    arch = registry("architecture").get(arch_name)

    def build() -> nn.Module:
        return arch.build(tuple(in_shape), int(num_outputs), width=1.0, **kwargs)

    net = build()
    spec = ArchSpec(name=arch_name, kwargs=dict(kwargs), width=1.0, feature_dim=int(getattr(net, "feature_dim", 0)),
                    param_count=sum(p.numel() for p in net.parameters()),
                    description=f"all params incl. the {num_outputs}-way head")
    return dataclasses.replace(spec), build


def normalized_train(source: Any, device: torch.device) -> tuple[Tensor, Tensor]:
    """The source's training images mean/std-normalised (the space a learned set lives in),
    on ``device``, and their labels (CPU)."""
    mean = torch.tensor(source.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(source.std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((source.x_train.float() - mean) / std).to(device), source.y_train.long().cpu()
