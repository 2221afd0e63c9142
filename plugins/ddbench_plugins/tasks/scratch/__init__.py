"""The ``scratch`` task: train a fresh network on a distilled set with the set's own recipe
and report its top-1 accuracy on the source's test split -- the evaluation of the DC/DSA/DM
papers (Zhao & Bilen; VICO-UoE/DatasetCondensation, ``utils.py`` ``evaluate_synset``) and of
MTT. See README.md.

This module must not import torch (``ddbench ls`` imports it to list plugins). Its parts:
:mod:`.options`, :mod:`.presets`, :mod:`.checks` (what the task accepts); the training code
is the shared toolkit's (``ddbench.toolkit.recipes.pretrain``, ``ddbench.toolkit.finetune``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.errors import DataError
from ddbench.interfaces import MetricSpec, MetricValue, Preset, Task

from .checks import ACCEPTED_LABEL_KINDS, check_network, check_set, refusal  # noqa: F401 (public)
from .options import EVAL_SPLITS, ScratchOptions  # noqa: F401 (public)
from .presets import PRESETS, SCALING

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

PREDICTOR = "network trained from scratch on the set, top-1 on {split}"
REFERENCE = "VICO-UoE/DatasetCondensation utils.py evaluate_synset (DC/DSA/DM evaluation)"


def metric_name(split: str) -> str:
    return "accuracy" if split == "test" else f"{split}/accuracy"


class Scratch(Task):
    """Train a network from scratch on the distilled set (its declared recipe), report top-1 %
    on the source's test split (or its validation split with ``eval_split=val``)."""

    name = "scratch"
    description = ("train a network from scratch on the distilled set (its recipe; DC/DSA evaluation), top-1 % on "
                   "the source's test split")
    Options = ScratchOptions
    version = "1"
    measurement_options = ("eval_split",)
    label_kinds = ACCEPTED_LABEL_KINDS
    presets: ClassVar[tuple[Preset, ...]] = PRESETS
    default_sources: ClassVar[Mapping[str, str]] = {"smoke": "cifar10_32", "quick": "cifar10_32",
                                                    "paper": "cifar10"}

    def refusal(self, label_kind: str, who: str) -> str | None:
        """Why a representation, empty or noise set cannot be trained on, and what to run instead."""
        return refusal(label_kind, who)

    def metrics(self, options: ScratchOptions) -> list[MetricSpec]:
        """One metric: top-1 % of the trained network on the reported split of the source."""
        split = options.eval_split
        return [MetricSpec(metric_name(split), higher_is_better=True, unit="top-1 %", split=split,
                           description=f"top-1 accuracy on the source's {split} split of a network trained from "
                                       f"scratch on the set with its recipe")]

    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: ScratchOptions) -> dict[str, MetricValue]:
        from ddbench.toolkit import finetune as ft
        from ddbench.toolkit import recipes

        t0 = time.time()
        distilled = check_set(distilled, source)
        recipe = recipes.get_recipe(distilled.recipe)
        split = options.eval_split
        if split == "val" and len(source.y_val) == 0:
            raise DataError(f"eval_split=val, but the source {source.name} was prepared without a validation split")
        check_network(options, int(distilled.resolution), source.num_classes)

        log: dict[str, Any] = {}
        net = recipes.pretrain(ctx, distilled, options.arch, options.arch_kwargs(), options.width,
                               options.recipe_lengths(), log=log)
        if split == "test":
            x01, y = source.x_test, source.y_test
        else:
            x01, y = source.x_val, source.y_val
        value = ft.accuracy(net, distilled.inputs(x01), y, options.eval_batch)
        if split == "val":
            val_acc: float | None = value
        else:  # selecting on it is allowed: it is carved from training data
            val_acc = (ft.accuracy(net, distilled.inputs(source.x_val), source.y_val, options.eval_batch)
                       if len(source.y_val) else None)
        labels = distilled.targets if distilled.targets.dim() == 1 else distilled.targets.argmax(dim=1)
        train_acc = ft.accuracy(net, distilled.images, labels, options.eval_batch)

        spec = dict(net.spec)
        params = int(sum(p.numel() for p in net.parameters()))
        arch = {"name": options.arch, "kwargs": options.arch_kwargs(), "width": float(options.width),
                "spec": spec, "params": params, "trunk_params": int(net.trunk_parameters()),
                "head": [int(net.feature_dim), int(getattr(net.head, "out_features", 0))]}
        scaling = SCALING.get(ctx.preset or "", "custom options (no preset)")
        seconds = round(time.time() - t0, 3)
        extra = {
            "split": split, "accuracy_unit": "percent (0-100)", "arch": spec, "norm": spec.get("norm"),
            "params": params, "trunk_params": arch["trunk_params"], "recipe": distilled.recipe,
            "recipe_details": recipe.describe(), "label_kind": distilled.label_kind, "budget": distilled.budget(),
            "pixel_space": distilled.pixel_space, "num_classes": source.num_classes,
            "epochs": int(log.get("epochs", 0)), "steps": int(log.get("steps", 0)),
            "train_loss_first": log.get("loss_first"), "train_loss_last": log.get("loss_last"),
            "train_accuracy": train_acc, "val_accuracy": val_acc, "n_val": int(len(source.y_val)),
            "scaling": scaling, "reference": REFERENCE, "seconds": seconds,
        }
        if split == "test":
            extra["n_test"] = int(len(source.y_test))
        ctx.extras["scratch"] = {"train": log, "arch": arch, "eval_split": split, "scaling": scaling,
                                 "val_accuracy": val_acc, "train_accuracy": train_acc, "seconds": seconds}
        return {metric_name(split): MetricValue(value=float(value), predictor=PREDICTOR.format(split=split),
                                                n_examples=int(len(y)), extra=extra)}


@hookimpl
def ddbench_register_tasks(register):
    register(Scratch())
