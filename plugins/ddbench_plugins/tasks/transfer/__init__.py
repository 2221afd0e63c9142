"""The ``transfer`` task: pre-train on a distilled set, fine-tune on target datasets,
report top-1 accuracy (protocol.md §1.4; Lee et al., ICLR 2024, Tables 1-2). See README.md.

This module must not import torch (``ddbench ls`` imports it to list plugins). Its parts:
:mod:`.options` (options), :mod:`.presets` (tiers per source), :mod:`.backbone` (which
network), :mod:`.imitation` (the imitation error), :mod:`.helpers`; the training code
(recipes, fine-tuning) is the shared toolkit's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.interfaces import MetricSpec, MetricValue, Preset, Task
from ddbench_plugins.paper import QUICK_SOURCE

from .backbone import default_backbone, resolve_backbone, set_backbone  # noqa: F401 (public)
from .helpers import check_set, is_fine_grained, target_offset  # noqa: F401 (public)
from .imitation import imitation
from .options import EVAL_SPLITS, FINE_GRAINED, TransferOptions  # noqa: F401 (public)
from .presets import PRESETS, SCALING

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

PREDICTOR = "finetuned-network top-1 on {split}"
#: the diagnostic metric of representation sets
IMITATION = "imitation_mse"


class Transfer(Task):
    """Pre-train on the distilled set (its declared recipe), fine-tune on each target, report
    top-1 % on the target's test split (protocol.md §1.4)."""

    name = "transfer"
    description = "pre-train on the distilled set, fine-tune on target datasets, top-1 % on their test splits"
    Options = TransferOptions
    version = "1"
    measurement_options = ("eval_split",)
    #: ``paper`` has one entry per source (CIFAR-100, TinyImageNet, ImageNet-64 rows of protocol §1.2/§1.4)
    presets: ClassVar[tuple[Preset, ...]] = PRESETS
    default_sources: ClassVar[Mapping[str, str]] = {"smoke": QUICK_SOURCE, "quick": QUICK_SOURCE,
                                                    "paper": "cifar100"}

    def metrics(self, options: TransferOptions) -> list[MetricSpec]:
        """Top-1 % per target on the reported split, and the imitation error of representation sets."""
        split = options.eval_split
        out = [MetricSpec(name if split == "test" else f"val/{name}", higher_is_better=True, unit="top-1 %",
                          description=f"top-1 accuracy on {name}'s {split} split after pre-training on the set "
                                      f"and fine-tuning", split=split)
               for name in options.targets]
        out.append(MetricSpec(IMITATION, higher_is_better=False, unit="MSE", diagnostic=True, split="val",
                              description="MSE between the pre-trained network's head and the set's target model "
                                          "on the source's validation images (representation sets only); "
                                          "compares only rows that share a target model"))
        return out

    def dependencies(self, options: TransferOptions) -> dict[str, Any]:
        """Each target dataset's identity on disk (path, size, mtime) and loader version, so
        a changed target file is never answered from a cached evaluation. Raises
        UnknownNameError for a target the registry lacks, before any work starts."""
        from ddbench.toolkit.transfer import dataset_dependencies

        return dataset_dependencies(options.targets)

    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: TransferOptions) -> dict[str, MetricValue]:
        import time

        from ddbench.toolkit import transfer as tr

        tr.check_set(distilled, source)
        backbone = resolve_backbone(distilled, options)
        scaling = SCALING.get(ctx.preset or "", "custom options")
        split = options.eval_split
        targets = tr.prepare_targets(ctx, options, int(distilled.resolution))

        # ---- pre-training (once per seed) ----
        pre_log: dict[str, Any] = {}
        t0 = time.time()
        net = tr.pretrained(ctx, distilled, backbone, options, pre_log)
        metrics: dict[str, MetricValue] = {}

        # ---- imitation error of representation sets, on held-out source images ----
        if distilled.label_kind == "representation":
            value = imitation(ctx, distilled, source, net, options, pre_log)
            if value is not None:
                metrics[IMITATION] = value
        pre_log["seconds_total"] = round(time.time() - t0, 3)
        ctx.extras["pretrain"] = pre_log

        facts = tr.arch_facts(net, backbone)
        common = {
            "arch": facts["arch"], "arch_origin": facts["arch_origin"], "trunk_params": facts["trunk_params"],
            "norm": facts["norm"], "recipe": distilled.recipe,
            "label_kind": distilled.label_kind, "budget": distilled.budget(), "pixel_space": distilled.pixel_space,
            "pretrain_steps": int(pre_log.get("steps", 0)), "pretrain_epochs": int(pre_log.get("epochs", 0)),
            "scaling": scaling, "accuracy_unit": "percent (0-100)",
        }
        per_target: dict[str, Any] = {}

        # ---- fine-tuning, one target at a time ----
        for t_name, target in targets.items():
            out = tr.finetune_on(ctx, net, t_name, target, options)
            key = t_name if split == "test" else f"val/{t_name}"
            metrics[key] = MetricValue(
                value=out["value"], predictor=PREDICTOR.format(split=split), n_examples=out["n_examples"],
                extra={**common, "split": split, "val_accuracy": out["val_accuracy"],
                       "finetune_steps": out["steps"], "finetune": out["finetune"], "target": out["target"],
                       "seconds": out["seconds"]})
            per_target[t_name] = {"val_accuracy": out["val_accuracy"], "steps": out["steps"],
                                  "loss_last": out["finetune"]["loss_last"], "seconds": out["seconds"]}
        ctx.extras["transfer"] = {"scaling": scaling, "eval_split": split, "targets": per_target,
                                  "arch": facts["arch"], "trunk_params": facts["trunk_params"]}
        return metrics


@hookimpl
def ddbench_register_tasks(register):
    register(Transfer())
