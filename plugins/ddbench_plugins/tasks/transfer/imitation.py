"""The imitation error of a representation set: how well the network pre-trained on it
reproduces the set's target model on held-out source images (never test images)."""

from __future__ import annotations

from ddbench.errors import DataError
from ddbench.interfaces import MetricValue


def imitation(ctx, distilled, source, net, options, log) -> MetricValue | None:
    """MSE between the pre-trained network's head output and the target model's
    representations of the source's validation images (never its test images)."""
    import torch

    from ddbench.toolkit import finetune as ft
    from ddbench_plugins.targets import target_model_for_set


    if len(source.y_val) == 0:
        log["imitation_skipped"] = "the source has no validation split"
        return None
    try:
        target = target_model_for_set(ctx, distilled, source)
    except DataError as e:
        ctx.log(f"transfer: cannot load the target model for imitation_mse ({e}); skipped")
        log["imitation_skipped"] = str(e)
        return None
    if target is None:
        ctx.log("transfer: cannot find the representation set's target model (provenance.depends_on['target_model'], "
                "the run's artifacts, the cache); imitation_mse skipped")
        log["imitation_skipped"] = "target model not found"
        return None
    mean, std = target.meta.get("mean", source.mean), target.meta.get("std", source.std)
    reps = target.represent_pixels(source.x_val, mean, std).cpu()
    out = ft.predict(net, distilled.inputs(source.x_val), options.eval_batch)
    if out.shape != reps.shape:
        raise DataError(f"imitation_mse: the network outputs {tuple(out.shape[1:])} but the target model gives "
                        f"{tuple(reps.shape[1:])}-d representations")
    mse = float(torch.mean((out - reps) ** 2))
    # the MSE of predicting every image by the mean representation: imitation_mse / this < 1 beats it
    baseline = float(torch.mean((reps - reps.mean(0, keepdim=True)) ** 2))
    log["imitation"] = {"mse": mse, "variance_of_targets": baseline, "n_images": int(len(source.y_val)),
                        "target_sha256": target.sha256}
    return MetricValue(value=mse, n_examples=int(len(source.y_val)),
                       predictor="pre-trained network head vs target model, MSE on source val",
                       extra={"split": "source val", "n_images": int(len(source.y_val)),
                              "target_sha256": target.sha256, "variance_of_targets": baseline,
                              "relative": mse / baseline if baseline > 0 else None})
