"""DM's math for one iteration, on inputs the caller draws: every class's real and
synthetic batch augmented with that class's shared DSA parameters, embedded by a fresh
random network **in one forward pass each** (the reference loops over classes for
instance-norm networks; its batch-norm branch batches them as here), and one SGD step on
the sum over classes of the squared distance between mean embeddings. The golden-figure
test (tests/test_golden_dsa_dm.py) replays the official code's draws through this function."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ddbench.toolkit.augment import DSA, DSAParams
from ddbench.toolkit.matching import descend, mean_embedding_distance


def match_embeddings(net: nn.Module, syn: Tensor, ipc: int, real: Sequence[Tensor], params: Sequence[DSAParams],
                     dsa: DSA, optimizer: torch.optim.Optimizer, *, batched: bool = True) -> tuple[Tensor, Tensor]:
    """One image update of ``syn`` (rows ``c*ipc .. (c+1)*ipc-1`` are class ``c``) against the
    real batches ``real[c]``; returns (loss, per-class terms), detached. ``batched=False``
    embeds class by class, as the reference does for instance-norm networks (equal to float
    rounding for networks without batch statistics)."""
    num_classes = len(real)
    embed = net.embed if hasattr(net, "embed") else net
    xr = [dsa.apply(real[c], params[c]) for c in range(num_classes)]
    # split (one backward op for all classes) rather than slicing per class, whose backward
    # would write a full-size zero gradient per class
    xs = [dsa.apply(part, params[c]) for c, part in enumerate(syn.split(ipc))]
    if batched:
        with torch.no_grad():
            er = embed(torch.cat(xr))
        es = embed(torch.cat(xs))
        _, per_class = mean_embedding_distance(er, es, [len(x) for x in xr], [ipc] * num_classes)
    else:
        terms = []
        for c in range(num_classes):
            with torch.no_grad():
                er = embed(xr[c])
            terms.append(((er.mean(dim=0) - embed(xs[c]).mean(dim=0)) ** 2).sum())
        per_class = torch.stack(terms)
    return descend(optimizer, per_class)
