"""A small seeded k-means (k-means++ or random init, Lloyd iterations) and the Kmeans
baseline's selection: per class, the real image nearest each centroid."""

from __future__ import annotations

from typing import Any

import torch

from ddbench.toolkit.subsets import SELECT_OFFSET, class_indices, per_class_quota, subset_set

#: seed offset of the k-means initialisations (separate from Random's draws)
OFFSET_KMEANS = 12


def _sq_dists(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (n, k), in float64 so ties and rounding do not depend on order."""
    x, c = x.double(), c.double()
    return ((x * x).sum(1, keepdim=True) - 2.0 * x @ c.T + (c * c).sum(1)[None, :]).clamp_min_(0.0)


def kmeans(x: torch.Tensor, k: int, generator: torch.Generator, iters: int = 100,
           init: str = "k-means++") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Cluster the rows of ``x`` (n, d) into ``k`` groups. Returns (centroids (k, d) float64,
    assignments (n,), Lloyd iterations run). Deterministic given ``generator``. An empty
    cluster is re-seeded with the point farthest from its centroid."""
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n, got k={k}, n={n}")
    xd = x.double()
    if init == "random":
        centers = xd[torch.randperm(n, generator=generator)[:k]].clone()
    else:
        first = int(torch.randint(n, (1,), generator=generator))
        chosen = [first]
        d2 = _sq_dists(xd, xd[first:first + 1])[:, 0]
        for _ in range(1, k):
            total = float(d2.sum())
            if total <= 0:  # all remaining points coincide with a centre: take unchosen ones in order
                rest = [i for i in range(n) if i not in set(chosen)]
                nxt = rest[0]
            else:
                nxt = int(torch.multinomial((d2 / total).float(), 1, generator=generator))
            chosen.append(nxt)
            d2 = torch.minimum(d2, _sq_dists(xd, xd[nxt:nxt + 1])[:, 0])
        centers = xd[chosen].clone()
    assign = torch.full((n,), -1, dtype=torch.long)
    it = 0
    for it in range(1, iters + 1):
        d = _sq_dists(xd, centers)
        new = d.argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
        counts = torch.bincount(assign, minlength=k)
        sums = torch.zeros_like(centers).index_add_(0, assign, xd)
        nonempty = counts > 0
        centers[nonempty] = sums[nonempty] / counts[nonempty, None].double()
        empty = (~nonempty).nonzero()[:, 0].tolist()
        if empty:
            far = d.gather(1, assign[:, None])[:, 0].argsort(descending=True, stable=True)
            for j, i in zip(empty, far.tolist()):
                centers[j] = xd[i]
    return centers, assign, it


def nearest_distinct(x: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """For each centroid in order, the index of the nearest row of ``x`` not taken yet."""
    d = _sq_dists(x, centers)
    taken: set[int] = set()
    out = []
    for j in range(centers.shape[0]):
        for i in d[:, j].argsort(stable=True).tolist():
            if i not in taken:
                taken.add(i)
                out.append(i)
                break
    return torch.tensor(out, dtype=torch.long)


def kmeans_indices(ctx: Any, source: Any, options: Any, *, images: int, ipc: int, method: str):
    """The Kmeans baseline's distilled set for ``ctx.seed``: ``images`` in total, or ``ipc`` per
    class (0: spread ``images`` over the classes, with ``random``'s quota for the seed)."""
    from ddbench_plugins.subsets import SCALING
    from ddbench_plugins.targets import get_target_model

    model = get_target_model(ctx, source, options)
    feats = model.represent_pixels(source.x_train, source.mean, source.std).cpu()
    classes = class_indices(source)
    quota = per_class_quota([len(c) for c in classes], images, ipc, ctx.generator(SELECT_OFFSET))
    g = ctx.generator(OFFSET_KMEANS)
    picks, iters = [], []
    with ctx.progress(len(classes), "k-means per class") as bar:
        for idx, q in zip(classes, quota):
            if q == 0:
                bar.advance(1)
                continue
            f = feats[idx]
            centers, _, n_it = kmeans(f, q, g, options.kmeans_iters, options.kmeans_init)
            picks.append(idx[nearest_distinct(f, centers)])
            iters.append(n_it)
            bar.advance(1)
    chosen = torch.cat(picks)
    ctx.extras["kmeans"] = {"lloyd_iterations_max": max(iters), "lloyd_iterations_mean": sum(iters) / len(iters),
                            "feature_dim": model.feature_dim, "target_sha256": model.sha256}
    return subset_set(source, chosen, recipe=options.recipe, method=method, per_class=quota, options=options,
                      target_model=model, scaling=SCALING.get(ctx.preset or "", "custom options"),
                      selection=f"per class, the real image nearest each of k={'ipc' if ipc else 'quota'} "
                                f"k-means centroids ({options.kmeans_init} init, <= {options.kmeans_iters} Lloyd "
                                f"iterations) in the target model's feature space",
                      feature_space={"model_sha256": model.sha256, "feature_dim": model.feature_dim,
                                     "input": "source-normalised images, eval mode"})
