"""The ``arch_generalization`` task: pre-train each of several architectures on a distilled
set, fine-tune each on the targets, report the architecture x target matrix (Lee et al.,
ICLR 2024, Fig. 3 and the appendix tables; protocol.md §1.3-1.4). See README.md.

This module must not import torch (``ddbench ls`` imports it to list plugins). The training
code is the shared toolkit's (:mod:`ddbench.toolkit.transfer`): the same pre-training
recipes and fine-tuning as the ``transfer`` task, once per architecture.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.errors import OptionError
from ddbench.interfaces import MetricSpec, MetricValue, Preset, Task
from ddbench_plugins.paper import QUICK_SOURCE

from .options import FIG3_TARGETS, PAPER_ARCHS, SOURCE_NET, ArchGeneralizationOptions  # noqa: F401 (public)
from .presets import PRESETS, SCALING

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

PREDICTOR = "{arch} pre-trained on the set, fine-tuned, top-1 on {split}"


def metric_name(arch: str, split: str, target: str | None = None) -> str:
    """``<arch>`` (mean over the targets) or ``<arch>/<target>``; ``val/`` in front on the validation split."""
    name = arch if target is None else f"{arch}/{target}"
    return name if split == "test" else f"val/{name}"


class ArchGeneralization(Task):
    """Pre-train every architecture of ``archs`` on the distilled set (its declared recipe),
    fine-tune each on every target, report top-1 % per architecture (mean over targets) and
    per (architecture, target)."""

    name = "arch_generalization"
    description = ("pre-train VGG11, AlexNet, MobileNet, ResNet10 and the set's own net on the set, fine-tune on "
                   "targets; top-1 % per architecture (Fig. 3)")
    Options = ArchGeneralizationOptions
    version = "1"
    measurement_options = ("eval_split",)
    presets: ClassVar[tuple[Preset, ...]] = PRESETS
    default_sources: ClassVar[Mapping[str, str]] = {"smoke": QUICK_SOURCE, "quick": QUICK_SOURCE,
                                                    "paper": "tinyimagenet"}

    def metrics(self, options: ArchGeneralizationOptions) -> list[MetricSpec]:
        """Per architecture: the mean top-1 % over the targets (the headline), and one detail
        metric per target (kept in the record and the CSV)."""
        split = options.eval_split
        out = []
        for arch in options.archs:
            what = "the set's own backbone" if arch == SOURCE_NET else arch
            out.append(MetricSpec(metric_name(arch, split), higher_is_better=True, unit="top-1 %", split=split,
                                  description=f"{what} pre-trained on the set and fine-tuned: mean top-1 accuracy "
                                              f"over the targets' {split} splits ({', '.join(options.targets)})"))
        for arch in options.archs:
            for target in options.targets:
                out.append(MetricSpec(metric_name(arch, split, target), higher_is_better=True, unit="top-1 %",
                                      split=split, detail=True,
                                      description=f"{arch} pre-trained on the set, fine-tuned on {target}: top-1 "
                                                  f"accuracy on its {split} split"))
        return out

    def dependencies(self, options: ArchGeneralizationOptions) -> dict[str, Any]:
        """Each target dataset's identity on disk and loader version (a changed target file is
        never answered from a cached evaluation)."""
        from ddbench.toolkit.transfer import dataset_dependencies

        return dataset_dependencies(options.targets)

    def backbones(self, distilled: "DistilledSet", options: ArchGeneralizationOptions) -> dict[str, dict[str, Any]]:
        """Each entry of ``archs`` as (name, kwargs, width, origin): the set's own backbone for
        ``source_net``, the registry's architecture at ``arch_width`` (its own default norm:
        nothing is swapped) for every other."""
        from ddbench.toolkit.transfer import resolve_backbone

        out = {}
        for arch in options.archs:
            if arch == SOURCE_NET:
                out[arch] = resolve_backbone(distilled, options)
            else:
                out[arch] = {"name": arch, "kwargs": {}, "width": float(options.arch_width),
                             "origin": "task option archs (arch_width)"}
        return out

    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: ArchGeneralizationOptions) -> dict[str, MetricValue]:
        from ddbench import plugins
        from ddbench.toolkit import transfer as tr

        tr.check_set(distilled, source)
        split = options.eval_split
        resolution = int(distilled.resolution)
        backbones = self.backbones(distilled, options)
        for arch, b in backbones.items():  # a wrong name or argument fails before any training
            try:
                plugins.registry("architecture").get(b["name"]).build((3, resolution, resolution), 2,
                                                                      width=b["width"], **b["kwargs"])
            except OptionError as e:
                raise OptionError(f"task {self.name}, archs entry {arch!r}: {e}") from None
        targets = tr.prepare_targets(ctx, options, resolution)  # one data preparation for every architecture
        scaling = SCALING.get(ctx.preset or "", "custom options")
        metrics: dict[str, MetricValue] = {}
        log: dict[str, Any] = {}
        for arch, backbone in backbones.items():
            t0 = time.time()
            pre_log: dict[str, Any] = {}
            net = tr.pretrained(ctx, distilled, backbone, options, pre_log, description=arch)
            facts = tr.arch_facts(net, backbone)
            common = {**facts, "recipe": distilled.recipe, "label_kind": distilled.label_kind,
                      "budget": distilled.budget(), "pixel_space": distilled.pixel_space,
                      "pretrain_steps": int(pre_log.get("steps", 0)), "pretrain_epochs": int(pre_log.get("epochs", 0)),
                      "scaling": scaling, "accuracy_unit": "percent (0-100)"}
            values, per_target = [], {}
            for t_name, target in targets.items():
                out = tr.finetune_on(ctx, net, t_name, target, options, description=f"{arch}: fine-tune on {t_name}")
                values.append(out["value"])
                metrics[metric_name(arch, split, t_name)] = MetricValue(
                    value=out["value"], predictor=PREDICTOR.format(arch=backbone["name"], split=split),
                    n_examples=out["n_examples"],
                    extra={**common, "split": split, "val_accuracy": out["val_accuracy"],
                           "finetune_steps": out["steps"], "finetune": out["finetune"], "target": out["target"],
                           "seconds": out["seconds"]})
                per_target[t_name] = {"value": out["value"], "val_accuracy": out["val_accuracy"],
                                      "seconds": out["seconds"]}
            metrics[metric_name(arch, split)] = MetricValue(
                value=sum(values) / len(values),
                predictor=f"mean over {len(values)} targets of: " + PREDICTOR.format(arch=backbone["name"], split=split),
                extra={**common, "split": split, "targets": per_target})
            log[arch] = {"arch": facts["arch"], "params": facts["params"], "trunk_params": facts["trunk_params"],
                         "norm": facts["norm"], "origin": facts["arch_origin"], "pretrain": pre_log,
                         "targets": per_target, "seconds": round(time.time() - t0, 3)}
            del net
        tr.report_params(ctx, {arch: entry["trunk_params"] for arch, entry in log.items()})
        ctx.extras["arch_generalization"] = {"scaling": scaling, "eval_split": split, "archs": log}
        return metrics


@hookimpl
def ddbench_register_tasks(register):
    register(ArchGeneralization())


@hookimpl
def ddbench_before_run(config):
    """An architecture or target name the registry lacks fails before any distillation."""
    if config.task != ArchGeneralization.name:
        return
    from ddbench import plugins

    for arch in config.task_options.get("archs", []):
        if arch != SOURCE_NET:
            plugins.registry("architecture").get(arch)
    for target in config.task_options.get("targets", []):
        plugins.registry("dataset").get(target)
