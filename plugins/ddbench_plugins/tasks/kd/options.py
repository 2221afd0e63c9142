"""Options of the ``kd`` task (defaults: the paper's Table 4, source TinyImageNet at 64 px,
teacher ResNet18 on CIFAR-10 at the same resolution). No torch here: ``__init__`` imports it."""

from __future__ import annotations

import dataclasses
import re

from ddbench.errors import OptionError
from ddbench.options import option
from ddbench.toolkit.transfer_options import PretrainOptions

EVAL_SPLITS = ("test", "val")
EVAL_MODES = ("eval", "train")
#: the entry of ``students`` that names the set's own backbone (chosen like the transfer task's)
SOURCE_STUDENT = "source"
#: the metric name of that student (the arch_generalization task's column for the same network)
SOURCE_METRIC = "source_net"
#: the paper's Table 4 students (protocol §1.3)
PAPER_STUDENTS = [SOURCE_STUDENT, "vgg11", "alexnet", "mobilenet", "resnet10"]


def base_name(dataset: str) -> str:
    """A dataset's name without a trailing resolution suffix: ``cifar10_32`` -> ``cifar10``."""
    return re.sub(r"_\d+$", "", str(dataset))


def student_metric(student: str, split: str = "test", eval_mode: str = "eval") -> str:
    """``vgg11``, ``val/vgg11``, ``train_mode/vgg11``, ``train_mode/val/vgg11``; the source
    student is ``source_net``."""
    name = SOURCE_METRIC if student == SOURCE_STUDENT else student
    if split != "test":
        name = f"{split}/{name}"
    if eval_mode != "eval":
        name = f"train_mode/{name}"
    return name


@dataclasses.dataclass
class KDOptions(PretrainOptions):
    """Options of the kd task (defaults: the paper, Table 4)."""

    students: list[str] = option(PAPER_STUDENTS, f"student architectures (`ddbench ls architectures`); "
                                                 f"{SOURCE_STUDENT!r} is the set's own backbone (metric "
                                                 f"{SOURCE_METRIC!r}), chosen like the transfer task's (arch, "
                                                 f"default_arch, ...)")
    student_width: float = option(1.0, f"width multiplier of every student except {SOURCE_STUDENT!r}")
    # ---- the source student and pre-training: the shared PretrainOptions (arch, arch_widths, norm,
    # width, default_arch*, pretrain_*), with this task's paper defaults (TinyImageNet, Table 4) ----
    default_arch_widths: list[int] = option([64, 128, 256, 512], "ConvNet widths of default_arch (the 'source' "
                                                                 "student when the set names no backbone)")
    pretrain_steps: int = option(40_000, "iterations of learned_mse_adamw (paper: 40k for TinyImageNet)")
    # ---- the teacher (a cached artifact: trained once, shared by every run) ----
    teacher_data: str = option("cifar10", "dataset the teacher is trained on and the students are tested on; "
                                          "prepared at the source's resolution")
    teacher_arch: str = option("resnet18", "teacher architecture (small-image stem)")
    teacher_width: float = option(1.0, "teacher width multiplier")
    teacher_epochs: int = option(200, "teacher training epochs (ddbench's recipe: SGD 0.1, m 0.9, wd 5e-4, batch "
                                      "128, cosine, crop+flip)")
    teacher_batch: int = option(128, "teacher training batch size")
    teacher_lr: float = option(0.1, "teacher SGD learning rate (cosine to 0 per iteration)")
    teacher_wd: float = option(5e-4, "teacher weight decay")
    teacher_seed: int = option(0, "seed of the teacher's initialisation, batch order and augmentation")
    teacher_val_fraction: float = option(0.1, "fraction of teacher_data's training split held out (seeded, "
                                              "class-balanced) from the teacher's training: the eval_split=val "
                                              "images; 0 = train on all of it, as the paper")
    teacher_checkpoint: str = option("", "path to a safetensors file with the teacher's weights (a state_dict of "
                                         "teacher_arch x teacher_width with a teacher_data-sized head); empty = "
                                         "train (once) and cache the teacher")
    # ---- knowledge distillation ----
    kd_epochs: int = option(1000, "KD epochs; one epoch = one shuffled pass over the set's images")
    kd_batch: int = option(512, "KD batch size (the last batch of an epoch may be short)")
    kd_lr: float = option(1e-4, "AdamW learning rate of KD (wd kd_wd, cosine over kd_epochs, stepped per epoch)")
    kd_lr_noise: float = option(1e-3, "AdamW learning rate of KD for noise sets (the Gaussian baseline)")
    kd_wd: float = option(0.0, "AdamW weight decay of KD")
    temperature: float = option(1.0, "softmax temperature T of the soft cross-entropy")
    # ---- measurement ----
    eval_mode: str = option("eval", "eval: BatchNorm's running statistics (each prediction independent of the "
                                    "batch; the reported number); train: the reference code's batch statistics, "
                                    "batches of eval_batch (a diagnostic: metrics named train_mode/<student>)")
    eval_split: str = option("test", "test (teacher_data's test split), or val (its validation split, held out "
                                     "from the teacher's training; metrics val/<student>, test never read)")
    eval_batch: int = option(512, "prediction batch size (the reference code's 512; changes results only with "
                                  "eval_mode=train)")

    def validate(self) -> None:
        super().validate()
        if not self.students:
            raise OptionError(f"students is empty: name at least one, e.g. students={SOURCE_STUDENT}")
        if len(set(self.students)) != len(self.students):
            raise OptionError(f"students {self.students} repeat a name")
        if self.eval_split not in EVAL_SPLITS:
            raise OptionError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if self.eval_mode not in EVAL_MODES:
            raise OptionError(f"eval_mode must be one of {', '.join(EVAL_MODES)}, got {self.eval_mode!r}")
        if self.eval_split == "val" and not self.teacher_val_fraction > 0:
            raise OptionError("eval_split=val needs a validation split of teacher_data: set teacher_val_fraction > 0 "
                              "(e.g. 0.1)")
        if not 0.0 <= self.teacher_val_fraction < 1.0:
            raise OptionError(f"teacher_val_fraction must be in [0, 1), got {self.teacher_val_fraction}")
        for name in ("teacher_epochs", "teacher_batch", "kd_epochs", "kd_batch",
                     "eval_batch"):
            if getattr(self, name) < 1:
                raise OptionError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("teacher_wd", "kd_wd"):
            if getattr(self, name) < 0:
                raise OptionError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("student_width", "teacher_width", "teacher_lr", "kd_lr", "kd_lr_noise", "temperature"):
            if not getattr(self, name) > 0:
                raise OptionError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.teacher_data:
            raise OptionError("teacher_data is empty: name the teacher's dataset, e.g. teacher_data=cifar10_32")

    def teacher_options(self) -> dict:
        """The options that decide a trained teacher's weights: part of its cache key."""
        return {"arch": self.teacher_arch, "width": float(self.teacher_width), "epochs": int(self.teacher_epochs),
                "batch": int(self.teacher_batch), "lr": float(self.teacher_lr), "momentum": 0.9,
                "wd": float(self.teacher_wd), "seed": int(self.teacher_seed), "schedule": "cosine per iteration",
                "augment": "crop(pad 4)+flip", "loss": "cross-entropy",
                "val_fraction": float(self.teacher_val_fraction)}
