"""A third-party plugin with methods that break the DistilledSet contract the way an author
writing from the docs alone might: each picks real images like ``pick`` and then returns
them wrongly."""

from __future__ import annotations

from ddbench import hookimpl

from .fakes import PickMethod


class Broken(PickMethod):
    """Picks ``ctx.budget.ipc`` real images per class (deterministically), then ``spoil``s them."""

    description = "breaks the distilled-set contract (test plugin)"

    def spoil(self, images01):
        raise NotImplementedError

    def distill(self, ctx, source, options):
        import torch

        from ddbench.distilled import DistilledSet

        idx = torch.cat([(source.y_train == c).nonzero()[: ctx.budget.ipc, 0] for c in range(source.num_classes)])
        return DistilledSet.from_source(source, self.spoil(source.x_train[idx]), source.y_train[idx],
                                        label_kind="hard", recipe="hard_ce_dsa", method=self.name, options=options)


class Pixels255(Broken):
    name = "broken_255"

    def spoil(self, images01):
        return images01 * 255  # float pixels in 0-255


class ChannelsLastUint8(Broken):
    name = "broken_uint8_hwc"

    def spoil(self, images01):
        return (images01 * 255).round().to(__import__("torch").uint8).permute(0, 2, 3, 1)  # as an image file holds them


class HalfResolution(Broken):
    name = "broken_resolution"

    def spoil(self, images01):
        import torch.nn.functional as F

        return F.interpolate(images01, scale_factor=0.5, mode="bilinear", align_corners=False)


class NaNPixels(Broken):
    name = "broken_nan"

    def spoil(self, images01):
        images01 = images01.clone()
        images01[0, 0, 0, 0] = float("nan")
        return images01


#: method name -> what the one-line error must say
EXPECTED = {
    "broken_255": "looks like 0-255 pixels: divide by 255",
    "broken_uint8_hwc": "convert with .float()/255",
    "broken_resolution": "distill at the source's resolution",
    "broken_nan": "NaN or infinite",
}


@hookimpl
def ddbench_register_methods(register):
    for cls in (Pixels255, ChannelsLastUint8, HalfResolution, NaNPixels):
        register(cls())
