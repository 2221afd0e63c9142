"""Built-in datasets, registered through the same hook a third-party plugin uses.

* Every ``*.npz`` file in the sample format directly inside a data folder is a dataset
  named by its file stem (:mod:`.npz`). A stem equal to a built-in name below replaces
  that built-in loader.
* The paper's datasets, read from their official release layouts: ``cifar10``,
  ``cifar100`` (:mod:`.cifar`), ``tinyimagenet`` (:mod:`.tinyimagenet`), ``imagenet64``
  (:mod:`.imagenet64`), ``aircraft``, ``cars``, ``cub2011``, ``dogs``, ``flowers102``
  (:mod:`.finegrained`, loaded at 64 px).

Data folders, in search order (``_common.search_folders``): the ``DDBENCH_DATA`` folders
(``:``-separated), ``$DDBENCH_HOME/data``, and, only when ``DDBENCH_DATA`` is unset,
``../shared/data`` next to the working directory and next to the repository, so a
checkout finds the sample data without configuration. ``DDBENCH_DOWNLOAD=1`` lets the
loaders that can download do so into ``$DDBENCH_HOME/data``.

This module imports neither torch nor numpy (``ddbench ls`` imports it); finding data
only looks at file names, and ``load()`` does the reading.
"""

from __future__ import annotations

from ddbench import hookimpl

from . import npz
from .cifar import Cifar10, Cifar100
from .finegrained import CUB2011, Aircraft, Cars, Flowers102, StanfordDogs
from .imagenet64 import ImageNet64
from .npz import NpzDataset
from .tinyimagenet import TinyImageNet

#: the official-layout loaders, in listing order
BUILTIN = (Cifar10, Cifar100, TinyImageNet, ImageNet64, Aircraft, Cars, CUB2011, StanfordDogs, Flowers102)

__all__ = ["BUILTIN", "NpzDataset", "Cifar10", "Cifar100", "TinyImageNet", "ImageNet64", "Aircraft", "Cars",
           "CUB2011", "StanfordDogs", "Flowers102"]


@hookimpl
def ddbench_register_datasets(register):
    files = npz.scan(reserved=frozenset(cls.name for cls in BUILTIN))
    replaced = {ds.name for ds in files}
    for cls in BUILTIN:
        if cls.name not in replaced:
            register(cls())
    for ds in files:
        register(ds)
