"""DSA's math for one outer iteration, on inputs the caller draws: the image update by
per-class gradient matching under a shared augmentation, and the network's inner update on
the synthetic set. The driver (:mod:`.driver`) draws the real batches, the augmentation
parameters and the batch order; the golden-figure test (tests/test_golden_dsa_dm.py)
replays the official code's draws through exactly these functions."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddbench.toolkit.augment import DSA, DSAParams
from ddbench.toolkit.matching import class_gradients, descend, gradient_match_distance


def match_images(net: nn.Module, syn: Tensor, ipc: int, real: Sequence[Tensor], params: Sequence[DSAParams],
                 dsa: DSA, optimizer: torch.optim.Optimizer, *, metric: str = "ours") -> tuple[Tensor, Tensor]:
    """One image update: for each class ``c``, the gradients of the cross-entropy of ``net``
    on the augmented real batch ``real[c]`` and on the augmented synthetic images of class
    ``c`` (rows ``c*ipc .. (c+1)*ipc-1`` of ``syn``), both augmented with ``params[c]``; the
    loss is the sum over classes of their layer-wise distance, and ``optimizer`` (over
    ``syn``) takes one step on it. Returns (loss, per-class distances), detached.

    Classes are processed one at a time, as in the reference: a ``torch.func.vmap`` over
    classes was measured 8x *slower* on CPU (200 classes, ConvNet 32-64-128: 30 s vs 3.7 s
    per image update; the double backward through vmap falls back to per-sample loops)."""
    num_classes = len(real)
    dev = syn.device
    # split (one backward op for all classes) rather than slicing per class, whose backward
    # would write a full-size zero gradient per class
    xs = [dsa.apply(part, params[c]) for c, part in enumerate(syn.split(ipc))]
    xr = [dsa.apply(real[c], params[c]) for c in range(num_classes)]
    terms = []
    for c in range(num_classes):
        y_r = torch.full((xr[c].shape[0],), c, device=dev, dtype=torch.long)
        g_real = [g.detach() for g in class_gradients(net, xr[c], y_r, create_graph=False)]
        y_s = torch.full((ipc,), c, device=dev, dtype=torch.long)
        g_syn = class_gradients(net, xs[c], y_s, create_graph=True)
        terms.append(gradient_match_distance(g_syn, g_real, metric))
    return descend(optimizer, torch.stack(terms))


def train_network(net: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, labels: Tensor,
                  order: Tensor, params: Sequence[DSAParams], dsa: DSA, batch_size: int) -> None:
    """One epoch of the network's inner update on the (detached) synthetic set: batches of
    ``batch_size`` in ``order``, batch ``b`` augmented with ``params[b]`` (per-image
    parameters), mean cross-entropy, one ``optimizer`` step each (the reference's
    ``epoch('train', ...)`` with DSA)."""
    net.train()
    for b, start in enumerate(range(0, len(order), batch_size)):
        idx = order[start:start + batch_size]
        x = dsa.apply(images[idx], params[b])
        loss = F.cross_entropy(net(x), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
