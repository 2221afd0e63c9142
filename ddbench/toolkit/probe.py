"""The linear probe: how linearly separable a model's frozen features are."""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

#: weight decays the probe chooses from, on the validation split
WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


def linear_probe(
    features_train: torch.Tensor,
    y_train: torch.Tensor,
    features_eval_list: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int | None = None,
    steps: int = 100,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    select_on: int | None = 0,
) -> dict[str, Any]:
    """Top-1 % of a multinomial logistic regression on frozen features.

    Features are standardised with the training features' mean/std; the classifier
    (zero-initialised, so deterministic) is fit with full-batch L-BFGS (``steps``
    iterations, strong-Wolfe line search) on mean cross-entropy + ``wd/2 * ||W||^2``.
    ``features_eval_list`` holds ``(features, labels)`` pairs. With several
    ``weight_decays`` the one with the best accuracy on ``features_eval_list[select_on]``
    (a validation split, never test) is kept. Returns ``{"top1": [% per eval pair],
    "weight_decay": chosen, "by_weight_decay": {wd: [% per eval pair]}}``.
    """
    xtr = features_train.detach().to("cpu", torch.float32)
    ytr = y_train.detach().to("cpu", torch.long)
    k = int(num_classes) if num_classes else int(ytr.max()) + 1
    mu = xtr.mean(0, keepdim=True)
    sd = xtr.std(0, keepdim=True).clamp_min(1e-6)
    xtr = (xtr - mu) / sd
    evals = [(((f.detach().to("cpu", torch.float32) - mu) / sd), y.detach().to("cpu", torch.long))
             for f, y in features_eval_list]

    def accuracy(w, b, x, y) -> float:
        if len(y) == 0:
            return float("nan")
        return float(((x @ w + b).argmax(1) == y).float().mean()) * 100.0

    results: dict[float, list[float]] = {}
    for wd in weight_decays:
        w = torch.zeros(xtr.shape[1], k, requires_grad=True)
        b = torch.zeros(k, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max(1, int(steps)), history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(xtr @ w + b, ytr) + 0.5 * float(wd) * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            results[float(wd)] = [accuracy(w, b, x, y) for x, y in evals]

    chosen = float(weight_decays[0])
    if select_on is not None and len(weight_decays) > 1 and evals and len(evals[select_on][1]):
        chosen = max(results, key=lambda d: (results[d][select_on], -d))
    return {"top1": results[chosen], "weight_decay": chosen, "by_weight_decay": results}
