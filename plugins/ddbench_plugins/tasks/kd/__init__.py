"""The ``kd`` task: target-data-free knowledge distillation (protocol §1.4; Lee et al., ICLR
2024, Table 4). A teacher trained on ``teacher_data`` is distilled into students that saw
only the distilled set; top-1 % on the teacher data's test split. See README.md.

This module must not import torch (``ddbench ls`` imports it). Its parts: :mod:`.options`,
:mod:`.presets`, :mod:`.checks` (what it accepts, the no-leakage seal), :mod:`.teacher` (the
cached teacher), :mod:`.distill` (the KD loop and its measurement).
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ddbench import hookimpl
from ddbench.errors import DataError, UnknownNameError
from ddbench.interfaces import MetricSpec, MetricValue, Preset, Task
from ddbench_plugins.paper import QUICK_SOURCE

from .checks import ACCEPTED_LABEL_KINDS, refusal, same_data_message
from .options import EVAL_MODES, EVAL_SPLITS, SOURCE_METRIC, SOURCE_STUDENT, KDOptions, student_metric  # noqa: F401
from .presets import PRESETS, SCALING

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.context import RunContext
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

PREDICTOR = "KD student top-1 on {data} {split} ({mode} mode)"
REFERENCE = "github.com/db-Lee/selfsup_dd @ 4beb4b1, test_kd.py / algorithms/zeroshot_kd.py"
#: seed offsets of the KD phase: one block of 10 per student, independent of its list position
OFFSET_KD_BASE = 20_000


def student_offset(student: str) -> int:
    return OFFSET_KD_BASE + (zlib.crc32(student.encode()) % 1_000_000) * 10


class KD(Task):
    """Pre-train each student on the distilled set (its recipe), give it a fresh head, distil
    the teacher into it over the set's images, report top-1 % on the teacher data's test split."""

    name = "kd"
    description = ("target-data-free knowledge distillation: students pre-trained on the set learn from a "
                   "teacher through the set's images only; top-1 % on the teacher data's test split")
    Options = KDOptions
    version = "1"
    measurement_options = ("eval_split", "eval_mode")
    label_kinds = ACCEPTED_LABEL_KINDS
    presets: ClassVar[tuple[Preset, ...]] = PRESETS
    default_sources: ClassVar[Mapping[str, str]] = {"smoke": QUICK_SOURCE, "quick": QUICK_SOURCE,
                                                    "paper": "tinyimagenet"}

    def refusal(self, label_kind: str, who: str) -> str | None:
        """Why the empty reference cannot be distilled from, and what to run instead."""
        return refusal(label_kind, who)

    def metrics(self, options: KDOptions) -> list[MetricSpec]:
        """One top-1 % per student on the reported split of the teacher data."""
        split, mode = options.eval_split, options.eval_mode
        out = []
        for s in options.students:
            what = "the set's own backbone" if s == SOURCE_STUDENT else s
            note = "" if mode == "eval" else " with BatchNorm in train mode (the reference's batch statistics; " \
                                              "depends on the test batch: a diagnostic)"
            out.append(MetricSpec(student_metric(s, split, mode), higher_is_better=True, unit="top-1 %", split=split,
                                  diagnostic=mode != "eval",
                                  description=f"top-1 accuracy on {options.teacher_data}'s {split} split of {what} "
                                              f"pre-trained on the set and taught by the teacher through the set's "
                                              f"images{note}"))
        return out

    def dependencies(self, options: KDOptions) -> dict[str, Any]:
        """The teacher data's identity on disk and loader version; the teacher checkpoint's
        sha256 when one is given."""
        from pathlib import Path

        from ddbench import plugins
        from ddbench.distilled import sha256_file

        ds = plugins.get_dataset(options.teacher_data)
        ident = getattr(ds, "identity", None)
        out: dict[str, Any] = {"teacher_data": {
            "identity": ident() if callable(ident) else {"location": ds.locate()},
            "loader": f"{type(ds).__module__}.{type(ds).__qualname__}", "version": str(getattr(ds, "version", ""))}}
        if options.teacher_checkpoint:
            p = Path(options.teacher_checkpoint).expanduser()
            out["teacher_checkpoint"] = sha256_file(p) if p.is_file() else str(p)
        return out

    def evaluate(self, ctx: "RunContext", distilled: "DistilledSet", source: "PreparedData",
                 options: KDOptions) -> dict[str, MetricValue]:
        from ddbench.data import prepare
        from ddbench.toolkit import recipes
        from ddbench.toolkit.transfer import arch_facts

        from . import checks
        from .distill import kd_train, measure
        from .teacher import obtain_teacher

        t_start = time.time()
        checks.check_set(distilled, source)
        same = same_data_message(source.name, options.teacher_data)
        if same:
            raise DataError(same)
        res = int(distilled.resolution)
        tdata = prepare(options.teacher_data, res, val_fraction=options.teacher_val_fraction, cache=ctx.cache)
        if options.eval_split == "val" and len(tdata.y_val) == 0:
            raise DataError(f"eval_split=val, but teacher_data {tdata.name} has no validation images at "
                            f"teacher_val_fraction={options.teacher_val_fraction}")
        specs = checks.student_specs(distilled, options)
        checks.check_students(specs, res, tdata.num_classes)  # before any training

        # ---- the teacher data's training images: the overlap audit and the teacher, then sealed ----
        digests = checks.image_digests(tdata.x_train, tdata.x_val, tdata.x_test)
        audit = checks.check_no_overlap(source, digests, tdata.name)
        teacher = obtain_teacher(ctx, tdata, options)
        tdata = checks.seal(tdata)
        del digests

        split, mode = options.eval_split, options.eval_mode
        if mode != "eval":
            ctx.mark_diagnostic("kd eval_mode=train: BatchNorm batch statistics at test time (the reference code's "
                                "measurement); the number depends on the test batch")
        x01, y = (tdata.x_test, tdata.y_test) if split == "test" else (tdata.x_val, tdata.y_val)
        x_eval = distilled.inputs(x01)  # the student's own input space, never teacher-data statistics
        x_val = distilled.inputs(tdata.x_val) if split == "test" and len(tdata.y_val) else None
        scaling = SCALING.get(ctx.preset or "", "custom options (no preset)")
        noise = distilled.label_kind == "noise"
        teacher_info = dict(ctx.extras["kd_teacher"])
        metrics: dict[str, MetricValue] = {}
        log: dict[str, Any] = {}
        for student, spec in specs.items():
            t0 = time.time()
            pre_log: dict[str, Any] = {}
            if noise:
                net = recipes.build_network(ctx, spec["name"], spec["kwargs"], spec["width"], res, None)
                pre_log.update({"skipped": True, "reason": "noise set (Gaussian baseline): a randomly initialised "
                                                           "student"})
            else:
                net = recipes.pretrain(ctx, distilled, spec["name"], spec["kwargs"], spec["width"],
                                       options.recipe_lengths(), log=pre_log, description=student)
            recipes.seed_global(ctx, student_offset(student))
            net.reset_head(tdata.num_classes)
            kd_log = kd_train(ctx, net, teacher, distilled, options, student_offset(student), description=student)
            value = measure(net, x_eval, y, options)
            val_acc = None
            if x_val is not None:
                from ddbench.toolkit import finetune as ft

                val_acc = float(ft.accuracy(net, x_val, tdata.y_val, options.eval_batch))
            elif split == "val" and mode == "eval":
                val_acc = value
            facts = arch_facts(net, spec)
            seconds = round(time.time() - t0, 3)
            extra = {
                "student": student, "arch": facts["arch"], "arch_origin": facts["arch_origin"], "norm": facts["norm"],
                "params": facts["params"], "trunk_params": facts["trunk_params"],
                "student_spec": {k: spec[k] for k in ("name", "kwargs", "width")},
                "pretrain": pre_log, "kd": kd_log, "split": split, "eval_mode": mode,
                "eval_batch": int(options.eval_batch), "val_accuracy": val_acc, "n_eval": int(len(y)),
                "teacher_sha256": teacher.sha256, "teacher_test_accuracy": teacher_info.get("test_accuracy"),
                "recipe": distilled.recipe, "label_kind": distilled.label_kind, "budget": distilled.budget(),
                "pixel_space": distilled.pixel_space, "scaling": scaling, "accuracy_unit": "percent (0-100)",
                "reference": REFERENCE, "seconds": seconds,
            }
            name = student_metric(student, split, mode)
            metrics[name] = MetricValue(value=float(value), n_examples=int(len(y)), extra=extra,
                                        predictor=PREDICTOR.format(data=tdata.name, split=split, mode=mode))
            log[student] = {"arch": facts["arch"], "params": facts["params"], "trunk_params": facts["trunk_params"],
                            "value": float(value),
                            "val_accuracy": val_acc, "pretrain_seconds": pre_log.get("seconds"),
                            "kd_seconds": kd_log["seconds"], "kd_loss_last": kd_log["loss_last"], "seconds": seconds}
            del net
        from ddbench.toolkit.transfer import report_params

        report_params(ctx, {student_metric(s, "test", "eval"): entry["trunk_params"] for s, entry in log.items()})
        ctx.extras["kd"] = {"scaling": scaling, "eval_split": split, "eval_mode": mode, "students": log,
                            "teacher_data": tdata.name, "overlap_audit": audit,
                            "seconds": round(time.time() - t_start, 3)}
        return metrics


@hookimpl
def ddbench_register_tasks(register):
    register(KD())


@hookimpl
def ddbench_before_run(config):
    """Before any work: refuse a source that is the teacher's data (at any resolution), and
    names (students, teacher data, teacher architecture) the registries lack."""
    if config.task != KD.name:
        return
    from ddbench import plugins

    opts = config.task_options
    teacher_data = opts.get("teacher_data", "")
    same = same_data_message(config.source, teacher_data)
    if same:
        raise DataError(same)
    plugins.registry("dataset").get(teacher_data)
    plugins.registry("architecture").get(opts.get("teacher_arch", "resnet18"))
    for s in opts.get("students", []):
        if s != SOURCE_STUDENT:
            try:
                plugins.registry("architecture").get(s)
            except UnknownNameError as e:
                raise UnknownNameError(f"task kd, option students: {e}") from None
