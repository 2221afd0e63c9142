"""Target models shared by methods and tasks: the self-supervised Barlow Twins target of
KRR-ST (also Kmeans' feature space and the transfer task's imitation reference), or the
supervised oracle. See README.md.

Public API (importing it does not import torch)::

    from ddbench_plugins.targets import TargetOptions, TARGET_PRESETS, get_target_model

    model = get_target_model(ctx, source, options)          # trained once, then cached
    model.represent_pixels(x01, source.mean, source.std)    # (N, feature_dim)
    target_model_for_set(ctx, distilled, source)            # the model a set was made with, or None
    load_target_model(path, device)                         # a saved model, sha256-checked

Modules: :mod:`.options` (``target_*`` options, presets), :mod:`.training` (Barlow Twins /
oracle training), :mod:`.model` (``TargetModel``, save/load, linear-probe quality),
:mod:`.cached` (the cache key and the public calls).
"""

from .cached import get_target_model, target_model_for_set
from .model import TargetModel, load_target_model
from .options import TARGET_PRESETS, TargetOptions, target_options_dict

__all__ = ["TargetOptions", "TARGET_PRESETS", "TargetModel", "get_target_model", "load_target_model",
           "target_model_for_set", "target_options_dict"]
