"""A tiny, real plugin for tests: an in-memory dataset, a method and a task."""

from __future__ import annotations

import dataclasses

from ddbench import hookimpl
from ddbench.interfaces import Budget, Dataset, Method, MetricSpec, MetricValue, Preset, RawSplits, Task
from ddbench.options import Options, option


class TinyColours(Dataset):
    name = "tiny_colours"
    description = "in-memory 16x16 images whose mean colour depends on the class (3 classes)"
    resolution = 16

    def locate(self):
        return "<in memory>"

    def load(self):
        import numpy as np

        rng = np.random.default_rng(0)

        def make(n):
            y = np.arange(n) % 3
            base = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200]])[y]
            x = base[:, None, None, :] + rng.integers(-30, 30, size=(n, 16, 16, 3))
            return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

        xtr, ytr = make(60)
        xte, yte = make(30)
        return RawSplits(xtr, ytr, xte, yte, ["red", "green", "blue"])


@dataclasses.dataclass
class PickOptions(Options):
    fail: bool = option(False, "raise inside distill (tests the failure record)")


class PickMethod(Method):
    name = "pick"
    description = "random real images, ctx.budget.ipc per class (test plugin)"
    label_kind = "hard"
    recipes = ("hard_ce_dsa",)
    Options = PickOptions
    presets = (Preset("smoke", {}, budget=Budget(ipc=1), any_budget=True),
               Preset("quick", {}, source="tiny_colours", budget=Budget(ipc=2)),
               Preset("paper", {}, source="tiny_colours", budget=Budget(ipc=10)))
    default_sources = {"smoke": "tiny_colours", "quick": "tiny_colours"}

    def distill(self, ctx, source, options):
        import torch

        from ddbench.distilled import DistilledSet

        if options.fail:
            raise RuntimeError("asked to fail")
        g = ctx.generator()
        idx = []
        for c in range(source.num_classes):
            cls = (source.y_train == c).nonzero()[:, 0]
            idx.append(cls[torch.randperm(len(cls), generator=g)[: ctx.budget.ipc]])
        idx = torch.cat(idx)
        ctx.extras["picked"] = idx.tolist()
        return DistilledSet.from_source(source, source.x_train[idx], source.y_train[idx], label_kind="hard",
                                        recipe="hard_ce_dsa", method=self.name, options=options)


@dataclasses.dataclass
class MeanOptions(Options):
    scale: float = option(1.0, "multiplies the metric")


class MeanPixelTask(Task):
    name = "meanpix"
    description = "nearest-class-mean accuracy of the distilled images on the test split (test plugin)"
    Options = MeanOptions
    presets = {"smoke": {}, "quick": {}, "paper": {}}

    def metrics(self, options):
        return [MetricSpec("acc", unit="%", description="nearest-class-mean accuracy on test"),
                MetricSpec("images", higher_is_better=False, unit="images", description="images in the set",
                           diagnostic=True)]

    def evaluate(self, ctx, distilled, source, options):
        import torch

        from ddbench.data import normalize

        if distilled.num_images == 0:
            return {"acc": MetricValue(100.0 / source.num_classes, predictor="chance", n_examples=len(source.y_test))}
        x = normalize(source.x_test, distilled.mean, distilled.std).flatten(1)
        means = torch.stack([distilled.images[distilled.targets == c].flatten(1).mean(0) for c in range(source.num_classes)])
        pred = torch.cdist(x, means).argmin(1)
        acc = (pred == source.y_test).float().mean().item() * 100 * options.scale
        return {"acc": MetricValue(acc, predictor="nearest class mean on test", n_examples=len(source.y_test)),
                "images": MetricValue(float(distilled.num_images))}


@hookimpl
def ddbench_register_datasets(register):
    register(TinyColours())


@hookimpl
def ddbench_register_methods(register):
    register(PickMethod())


@hookimpl
def ddbench_register_tasks(register):
    register(MeanPixelTask())
