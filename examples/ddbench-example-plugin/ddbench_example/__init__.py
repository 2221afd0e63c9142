"""A third-party ddbench method: each class's synthetic image is the mean of k random real
images of that class (a deliberately simple baseline, to show the plugin shape)."""

from __future__ import annotations

import dataclasses

from ddbench import hookimpl
from ddbench.interfaces import Method
from ddbench.options import Options, option


@dataclasses.dataclass
class ClassMeanOptions(Options):
    ipc: int = option(1, "synthetic images per class")
    k: int = option(8, "real images averaged into each synthetic image")

    def validate(self) -> None:
        from ddbench.errors import OptionError

        if self.ipc < 1 or self.k < 1:
            raise OptionError("ipc and k must be at least 1")


class ClassMean(Method):
    name = "class_mean"
    description = "mean of k random real images per synthetic image (example plugin)"
    label_kind = "hard"
    Options = ClassMeanOptions
    presets = {"smoke": {"ipc": 1, "k": 2}, "quick": {"ipc": 1, "k": 8}, "paper": {"ipc": 10, "k": 16}}
    default_sources = {"quick": "tinyimagenet200_32_subset", "paper": "cifar100"}

    def distill(self, ctx, source, options):
        import torch

        from ddbench.distilled import DistilledSet

        g = ctx.generator()
        images, labels = [], []
        for c in range(source.num_classes):
            pool = (source.y_train == c).nonzero()[:, 0]
            for _ in range(options.ipc):
                pick = pool[torch.randint(len(pool), (options.k,), generator=g)]
                images.append(source.x_train[pick].mean(0))
                labels.append(c)
        return DistilledSet.from_source(source, torch.stack(images), torch.tensor(labels), label_kind="hard",
                                        recipe="hard_ce_dsa", method=self.name, options=options)


@hookimpl
def ddbench_register_methods(register):
    register(ClassMean())
