"""A third-party ddbench method: each class's synthetic image is the mean of k random real
images of that class (a deliberately simple baseline, to show the plugin shape)."""

from __future__ import annotations

import dataclasses

from ddbench import hookimpl
from ddbench.interfaces import Budget, Method, Preset
from ddbench.options import Options, option


@dataclasses.dataclass
class ClassMeanOptions(Options):
    k: int = option(8, "real images averaged into each synthetic image")

    def validate(self) -> None:
        from ddbench.errors import OptionError

        if self.k < 1:
            raise OptionError("k must be at least 1")


class ClassMean(Method):
    name = "class_mean"
    description = "mean of k random real images per synthetic image (example plugin)"
    label_kind = "hard"
    recipes = ("hard_ce_dsa",)
    Options = ClassMeanOptions
    presets = (
        Preset("smoke", {"k": 2}, budget=Budget(ipc=1), any_budget=True, scaling="smoke test; not a result"),
        Preset("quick", {"k": 8}, source="tinyimagenet200_32_subset", budget=Budget(images=200, ipc=1)),
        Preset("paper", {"k": 16}, source="cifar100", budget=Budget(images=1000, ipc=10)),
    )
    default_sources = {"smoke": "tinyimagenet200_32_subset"}

    def distill(self, ctx, source, options):
        import torch

        from ddbench.distilled import DistilledSet
        from ddbench.errors import OptionError

        if ctx.budget.ipc is None:
            raise OptionError(f"class_mean makes a whole number of images per class: give --ipc K, not "
                              f"--images {ctx.budget.images}")
        g = ctx.generator()
        images, labels = [], []
        for c in range(source.num_classes):
            pool = (source.y_train == c).nonzero()[:, 0]
            for _ in range(ctx.budget.ipc):
                pick = pool[torch.randint(len(pool), (options.k,), generator=g)]
                images.append(source.x_train[pick].mean(0))
                labels.append(c)
        return DistilledSet.from_source(source, torch.stack(images), torch.tensor(labels), label_kind="hard",
                                        recipe="hard_ce_dsa", method=self.name, options=options)


@hookimpl
def ddbench_register_methods(register):
    register(ClassMean())
