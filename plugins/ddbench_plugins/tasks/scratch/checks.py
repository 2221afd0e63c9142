"""What the ``scratch`` task accepts: sets with class labels (hard or learned) made from the
run's source, and a network it can build."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ddbench.errors import DataError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    from ddbench.data import PreparedData
    from ddbench.distilled import DistilledSet

    from .options import ScratchOptions

#: label kinds a classifier can be trained on: class indices, or learned per-class label vectors
ACCEPTED_LABEL_KINDS = ("hard", "soft")

_WHY = {
    "representation": "its targets are learned representations (e.g. KRR-ST's 512-d targets), not class labels, "
                      "so no classifier of the source's classes can be trained on it",
    "none": "it is the empty no-pre-training reference: there is nothing to train on",
    "noise": "it is a noise baseline without labels (the Gaussian reference of data-free knowledge distillation)",
}


def refusal(label_kind: str | None, who: str) -> str | None:
    """The one-line reason the task cannot evaluate ``who``'s set of ``label_kind``, or None."""
    if label_kind in ACCEPTED_LABEL_KINDS or label_kind is None:
        return None
    why = _WHY.get(label_kind, f"only sets with label kind {' or '.join(ACCEPTED_LABEL_KINDS)} can be trained on")
    instead = ("--task kd (target-data-free knowledge distillation)" if label_kind == "noise"
               else "--task transfer (pre-train, then fine-tune on labelled targets)")
    return f"task scratch cannot evaluate {who}'s set of label kind {label_kind!r}: {why}; evaluate it with {instead}"


def check_set(distilled: "DistilledSet", source: "PreparedData") -> "DistilledSet":
    """Refuse a set this task cannot train on, or one made from other data; return the set
    with ``num_classes`` set to the source's (hard-label sets that left it out)."""
    who = f"method {distilled.method or '?'}"
    message = refusal(distilled.label_kind, who)
    if message:
        raise DataError(message)
    if distilled.source and distilled.source != source.name:
        raise DataError(f"the distilled set was made from {distilled.source!r} but the run's source is "
                        f"{source.name!r}; the task reports accuracy on the source the set was distilled from: "
                        f"pass --source {distilled.source}")
    if int(distilled.resolution) != int(source.resolution):
        raise DataError(f"the distilled set is at {distilled.resolution} px but the source {source.name} was "
                        f"prepared at {source.resolution} px")
    if distilled.num_images == 0:
        raise DataError(f"{who}'s set is empty but its label kind is {distilled.label_kind!r}; there is nothing to "
                        f"train on")
    k = int(source.num_classes)
    t = distilled.targets
    if distilled.label_kind == "hard":
        if distilled.num_classes is not None and int(distilled.num_classes) != k:
            raise DataError(f"{who}'s set declares {distilled.num_classes} classes but the source {source.name} has "
                            f"{k}; the trained network must output the source's classes")
        if int(t.max()) >= k:
            raise DataError(f"{who}'s set has hard labels up to {int(t.max())}, outside the source's {k} classes")
        if distilled.num_classes is None:  # the head is sized from num_classes, not from the largest label seen
            distilled = dataclasses.replace(distilled, num_classes=k)
    elif t.dim() != 2 or int(t.shape[1]) != k:
        raise DataError(f"{who}'s learned labels have shape {tuple(t.shape)}; the task needs one {k}-d label vector "
                        f"per image (the source {source.name} has {k} classes)")
    distilled.check_preparation(source)
    return distilled


def check_network(options: "ScratchOptions", resolution: int, num_classes: int) -> None:
    """Build the network once before training, so a wrong architecture option fails first
    and says which task option to change."""
    from ddbench import plugins

    arch = plugins.registry("architecture").get(options.arch)
    kwargs = options.arch_kwargs()
    try:
        arch.build((3, int(resolution), int(resolution)), num_classes, width=options.width, **kwargs)
    except OptionError as e:
        if not kwargs:
            raise
        passed = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise OptionError(f"{e} (task scratch passed {passed} from its options arch_widths/norm; for an "
                          f"architecture without them set -o arch_widths= -o norm=)") from None
