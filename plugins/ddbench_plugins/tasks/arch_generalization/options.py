"""Options of the ``arch_generalization`` task (defaults: the paper's Fig. 3, source
TinyImageNet): the shared pre-train/fine-tune options plus the architectures."""

from __future__ import annotations

import dataclasses

from ddbench.errors import OptionError
from ddbench.options import option
from ddbench.toolkit.transfer_options import FinetuneOptions

#: the name in ``archs`` of the set's own backbone (the reference column)
SOURCE_NET = "source_net"
#: the paper's Fig. 3 / appendix architectures (protocol §1.3)
PAPER_ARCHS = [SOURCE_NET, "vgg11", "alexnet", "mobilenet", "resnet10"]
#: Fig. 3's targets: the five fine-grained datasets
FIG3_TARGETS = ["aircraft", "cars", "cub2011", "dogs", "flowers102"]


@dataclasses.dataclass
class ArchGeneralizationOptions(FinetuneOptions):
    """Options of the arch_generalization task (defaults: the paper's Fig. 3)."""

    targets: list[str] = option(FIG3_TARGETS, "target datasets to fine-tune each architecture on (registry names); "
                                              "each is resized to the source resolution")
    archs: list[str] = option(PAPER_ARCHS, f"architectures to pre-train on the set and fine-tune (`ddbench ls "
                                           f"architectures`); {SOURCE_NET!r} is the set's own backbone (the "
                                           f"reference column), chosen like the transfer task's (arch, "
                                           f"default_arch, ...)")
    arch_width: float = option(1.0, f"width multiplier of every architecture in archs except {SOURCE_NET!r}; "
                                    "1.0 = the reference code's networks")

    def validate(self) -> None:
        super().validate()
        if not self.archs:
            raise OptionError(f"archs is empty: name at least one architecture, e.g. archs={SOURCE_NET},vgg11")
        if len(set(self.archs)) != len(self.archs):
            raise OptionError(f"archs {self.archs} repeat a name")
        if not self.arch_width > 0:
            raise OptionError(f"arch_width must be > 0, got {self.arch_width}")
