"""What the ``kd`` task accepts and the no-leakage guarantee: the teacher data's training
images are read only while the teacher is made (and hashed once for the overlap audit),
then sealed; a source that is the teacher data, or shares an image with it, is refused."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import TYPE_CHECKING, Any

from ddbench.errors import DataError, OptionError

from .options import SOURCE_STUDENT, base_name

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

    from .options import KDOptions

#: what a set must carry: images to feed the teacher (labels are never read)
ACCEPTED_LABEL_KINDS = ("hard", "soft", "representation", "noise")


def refusal(label_kind: str | None, who: str) -> str | None:
    """The one-line reason the task cannot evaluate ``who``'s set of ``label_kind``, or None."""
    if label_kind in ACCEPTED_LABEL_KINDS or label_kind is None:
        return None
    if label_kind == "none":
        why = ("it is the empty no-pre-training reference, and KD needs images to show the teacher; the "
               "data-free reference of this task is the Gaussian baseline: run -m gaussian -t kd")
    else:
        why = f"it evaluates the label kinds {', '.join(ACCEPTED_LABEL_KINDS)}"
    return f"task kd cannot evaluate {who}'s set of label kind {label_kind!r}: {why}"


class TrainingSplitLeak(AssertionError):
    """The kd task read the teacher data's training split outside the teacher's creation."""


class SealedSplit:
    """Stands in for the teacher data's ``x_train``/``y_train`` once the teacher exists: any
    use raises :class:`TrainingSplitLeak` naming the leak."""

    def __init__(self, what: str):
        object.__setattr__(self, "_what", what)

    def _leak(self, *_: Any, **__: Any):
        raise TrainingSplitLeak(f"leak: the kd task touched {object.__getattribute__(self, '_what')} after the "
                                f"teacher was made; target-data-free KD must never read the teacher data's "
                                f"training images (protocol §3.7)")

    __len__ = __getitem__ = __iter__ = __array__ = __bool__ = __call__ = __float__ = __index__ = _leak
    __add__ = __mul__ = __sub__ = __eq__ = __lt__ = __gt__ = __contains__ = __setitem__ = _leak
    __hash__ = None  # type: ignore[assignment]

    def __getattr__(self, attr: str):
        self._leak()

    def __setattr__(self, attr: str, value: Any):
        self._leak()

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        for a in list(args) + list((kwargs or {}).values()):
            if isinstance(a, SealedSplit):
                a._leak()
        raise TrainingSplitLeak("leak: a torch function was given a sealed training split")

    def __repr__(self) -> str:
        return f"<sealed: {object.__getattribute__(self, '_what')}>"


def seal(data: "PreparedData") -> "PreparedData":
    """A copy of ``data`` whose training split raises on any use (the prepared object is
    memoised and shared, so it is never changed in place)."""
    return dataclasses.replace(data, x_train=SealedSplit(f"{data.name}'s x_train"),
                               y_train=SealedSplit(f"{data.name}'s y_train"))


def same_data_message(source: str, teacher_data: str) -> str | None:
    if base_name(source) == base_name(teacher_data):
        return (f"the source {source} is the teacher's data {teacher_data} (same dataset"
                f"{'' if source == teacher_data else ' at another resolution'}): KD from it would not be "
                f"target-data-free; distil another source (e.g. -s tinyimagenet200_32_subset) or set "
                f"-o task.teacher_data=... to another dataset")
    return None


def image_digests(*tensors: Any) -> set[bytes]:
    """One 16-byte digest per image of float32 [0, 1] tensors (byte-wise identity)."""
    import torch

    out: set[bytes] = set()
    for t in tensors:
        t = t.detach().to("cpu", torch.float32).contiguous()
        flat = t.reshape(len(t), -1).numpy()
        for row in flat:
            out.add(hashlib.blake2b(row.tobytes(), digest_size=16).digest())
    return out


def check_no_overlap(source: "PreparedData", teacher_digests: set[bytes], teacher_data: str) -> dict[str, int]:
    """DataError when a source training image (train or validation split) equals, byte for
    byte at the same resolution, an image of the teacher data."""
    src = [source.x_train]
    if len(source.y_val):
        src.append(source.x_val)
    found = image_digests(*src) & teacher_digests
    if found:
        raise DataError(f"{len(found)} training images of the source {source.name} are also images of the teacher "
                        f"data {teacher_data} (byte-identical at {source.resolution} px): KD from a set distilled "
                        f"from them would not be target-data-free; use a source disjoint from {teacher_data}")
    return {"source_images": sum(len(t) for t in src), "teacher_images": len(teacher_digests), "overlap": 0}


def check_set(distilled: "DistilledSet", source: "PreparedData") -> None:
    """The set must hold images of the run's source, at its resolution and normalisation."""
    who = f"method {distilled.method or '?'}"
    message = refusal(distilled.label_kind, who)
    if message:
        raise DataError(message)
    from ddbench.toolkit.transfer import check_origin

    check_origin(distilled, source)
    if distilled.num_images < 2:
        raise DataError(f"{who}'s set has {distilled.num_images} images; KD needs at least 2 (BatchNorm in train "
                        f"mode needs a batch)")
    if distilled.label_kind != "noise":
        distilled.check_preparation(source)


def student_specs(distilled: "DistilledSet", options: "KDOptions") -> dict[str, dict[str, Any]]:
    """``{student: {"name", "kwargs", "width", "origin"}}``, the source student resolved like
    the transfer task's backbone."""
    from ddbench.toolkit.transfer import resolve_backbone

    out: dict[str, dict[str, Any]] = {}
    for s in options.students:
        if s == SOURCE_STUDENT:
            out[s] = resolve_backbone(distilled, options)
        else:
            out[s] = {"name": s, "kwargs": {}, "width": float(options.student_width), "origin": "task option students"}
    return out


def check_students(specs: dict[str, dict[str, Any]], resolution: int, num_classes: int) -> None:
    """Build every student once before any training: an unknown name or a bad option fails
    first and says which task option to change."""
    import torch

    from ddbench import plugins
    from ddbench.errors import UnknownNameError

    for student, spec in specs.items():
        try:
            arch = plugins.registry("architecture").get(spec["name"])
        except UnknownNameError as e:
            raise UnknownNameError(f"task kd: student {student!r}: {e} (option students)") from None
        try:
            with torch.random.fork_rng(devices=[]):
                arch.build((3, int(resolution), int(resolution)), int(num_classes), width=spec["width"],
                           **spec["kwargs"])
        except OptionError as e:
            raise OptionError(f"task kd: student {student!r} ({spec['name']}): {e}") from None
