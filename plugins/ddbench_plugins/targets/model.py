"""The frozen target model and its artifact: ``backbone.safetensors`` (the trunk's weights)
and ``target.json`` (config, quality, training summary, the weights' sha256, which is the
model's identity)."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ddbench.errors import DataError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ddbench.data import PreparedData
    from ddbench.toolkit.nn import Network

#: bump when a change alters the trained weights or their quality numbers; part of the cache key
TARGET_VERSION = "1"
WEIGHTS_FILE = "backbone.safetensors"
META_FILE = "target.json"


def build_backbone(arch: str, in_shape: Sequence[int], width: float, stem_padding: int = 1) -> "Network":
    """A fresh backbone from the architecture registry (uses torch's global RNG)."""
    from ddbench.plugins import registry

    architecture = registry("architecture").get(arch)
    kwargs: dict[str, Any] = {}
    if "stem_padding" in inspect.signature(architecture.build).parameters:
        kwargs["stem_padding"] = int(stem_padding)
    elif int(stem_padding) != 1:
        raise OptionError(f"target_stem_padding={stem_padding}, but architecture {arch!r} has no stem_padding argument")
    return architecture.build(tuple(int(s) for s in in_shape), None, width=float(width), **kwargs)


class TargetModel:
    """A frozen target model: ``represent(x_norm)`` gives ``(N, feature_dim)`` features.

    ``x_norm`` is normalised with the source's mean/std (``ddbench.data.normalize``).
    ``sha256`` (of the weights file) identifies the model; ``quality`` holds the linear-probe
    accuracies; ``config`` is the cache key it was made under; ``path`` its folder.
    """

    def __init__(self, net: "Network", *, sha256: str = "", quality: Mapping[str, Any] | None = None,
                 config: Mapping[str, Any] | None = None, path: str = "", meta: Mapping[str, Any] | None = None):
        net.eval().requires_grad_(False)
        self.net = net
        self.feature_dim = int(net.feature_dim)
        self.sha256 = sha256
        self.quality = dict(quality or {})
        self.config = dict(config or {})
        self.path = str(path)
        self.meta = dict(meta or {})

    @property
    def device(self) -> "torch.device":
        return next(self.net.parameters()).device

    def represent(self, x_norm: "torch.Tensor", batch_size: int = 1024) -> "torch.Tensor":
        """Features of normalised images, without gradients, in eval mode, ``batch_size`` at a time;
        float32 on ``x_norm``'s device."""
        import torch

        self.net.eval()
        dev = self.device
        out = []
        with torch.no_grad():
            for i in range(0, x_norm.shape[0], int(batch_size)):
                xb = x_norm[i:i + int(batch_size)].to(dev, torch.float32)
                out.append(self.net.embed(xb).float().to(x_norm.device))
        if not out:
            return torch.zeros((0, self.feature_dim), dtype=torch.float32, device=x_norm.device)
        return torch.cat(out)

    def represent_pixels(self, x01: "torch.Tensor", mean: Sequence[float], std: Sequence[float],
                         batch_size: int = 1024) -> "torch.Tensor":
        """``represent`` of [0, 1] images, normalised chunk by chunk (saves memory)."""
        import torch

        from ddbench.data import normalize

        parts = [self.represent(normalize(x01[i:i + batch_size].float(), mean, std), batch_size)
                 for i in range(0, x01.shape[0], batch_size)]
        return torch.cat(parts) if parts else torch.zeros((0, self.feature_dim), device=x01.device)


def target_quality(model: TargetModel, source: "PreparedData", steps: int = 100) -> dict[str, Any]:
    """Linear probe on frozen features: train on ``x_train``/``y_train``, weight decay chosen on
    validation, top-1 % on validation and test."""
    from ddbench.toolkit.probe import linear_probe

    f = [model.represent_pixels(x, source.mean, source.std) for x in (source.x_train, source.x_val, source.x_test)]
    res = linear_probe(f[0], source.y_train, [(f[1], source.y_val), (f[2], source.y_test)],
                       num_classes=source.num_classes, steps=steps)
    return {"linear_probe_val": round(res["top1"][0], 3), "linear_probe_test": round(res["top1"][1], 3),
            "probe_weight_decay": res["weight_decay"],
            "probe": "logistic regression on standardised frozen features, full-batch L-BFGS, "
                     "wd chosen on validation; top-1 %"}


def save_target_model(folder: str | Path, net: "Network", meta: dict[str, Any]) -> str:
    """Write ``backbone.safetensors`` and ``target.json`` (``meta`` plus the weights' sha256)."""
    from safetensors.torch import save_file

    from ddbench.distilled import sha256_file

    folder = Path(folder)
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    # one metadata key only: safetensors writes a multi-key metadata map in a per-process
    # random order, which would make the file's bytes (its sha256, the model's identity) vary
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": f"ddbench-target-model/{TARGET_VERSION}"})
    sha = sha256_file(folder / WEIGHTS_FILE)
    (folder / META_FILE).write_text(json.dumps({**meta, "sha256": sha}, indent=2, sort_keys=True, default=str))
    return sha


def load_target_model(path: str | Path, device: str = "cpu") -> TargetModel:
    """Load a saved target model (its folder or its ``backbone.safetensors``), checking the sha256.

    Building the network happens under ``fork_rng``: loading never moves the global RNG.
    """
    import torch
    from safetensors.torch import load_file

    from ddbench.distilled import sha256_file

    p = Path(path)
    folder = p if p.is_dir() else p.parent
    weights, meta_path = folder / WEIGHTS_FILE, folder / META_FILE
    if not weights.exists() or not meta_path.exists():
        raise DataError(f"no target model at {folder} (expected {WEIGHTS_FILE} and {META_FILE})")
    meta = json.loads(meta_path.read_text())
    sha = sha256_file(weights)
    if sha != meta.get("sha256"):
        raise DataError(f"target model weights {weights} do not match their recorded sha256 "
                        f"({sha[:12]} != {str(meta.get('sha256'))[:12]}); delete {folder} to retrain")
    opts = meta["config"]["options"]
    with torch.random.fork_rng(devices=[]):
        net = build_backbone(opts["target_arch"], meta["in_shape"], opts["target_width"], opts["target_stem_padding"])
    net.load_state_dict(load_file(str(weights), device="cpu"), strict=True)
    net.to(device)
    return TargetModel(net, sha256=sha, quality=meta.get("quality", {}), config=meta["config"], path=str(folder), meta=meta)
