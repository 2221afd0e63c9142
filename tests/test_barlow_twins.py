"""The target model (plugins/ddbench_plugins/targets): loss, training, caching, resume, represent,
probe, and finding the model a distilled set was made with."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ddbench.context import RunContext
from ddbench.data import PreparedData, normalize
from ddbench.errors import DataError, OptionError
from ddbench.toolkit.probe import linear_probe
from ddbench_plugins import targets
from ddbench_plugins.targets import cached, model as tm, training
from ddbench_plugins.targets.options import TARGET_PRESETS, TargetOptions

COLOURS = torch.tensor([[0.8, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.2, 0.8]])


def tiny_source(n_train: int = 64, res: int = 16, content_hash: str = "tiny0") -> PreparedData:
    """Three classes whose images are noise around a class colour, so a probe beats chance."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.arange(n) % 3
        x = (COLOURS[y][:, :, None, None] + 0.15 * torch.randn(n, 3, res, res, generator=g)).clamp(0, 1)
        return x, y

    xtr, ytr = make(n_train)
    xv, yv = make(24)
    xte, yte = make(24)
    return PreparedData("tiny", res, 3, ["r", "g", "b"], xtr, ytr, xv, yv, xte, yte,
                        (0.4, 0.4, 0.4), (0.3, 0.3, 0.3), content_hash)


def tiny_options(**over) -> TargetOptions:
    values = dict(TARGET_PRESETS["smoke"])
    values.update(target_epochs=1, target_batch=32, target_proj_dim=32, target_max_images=0, target_probe_epochs=10)
    values.update(over)
    return TargetOptions.resolve(values)


def weights(net) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_loss_low_for_identical_decorrelated_embeddings_high_for_random():
    n, d = 256, 16
    a = torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    q, _ = torch.linalg.qr(a - a.mean(0))  # zero-mean, orthonormal columns
    z = q * n ** 0.5  # unit variance, uncorrelated
    same = training.barlow_twins_loss(z, z.clone(), lambd=0.0051)
    other = training.barlow_twins_loss(z, torch.randn(n, d, generator=torch.Generator().manual_seed(1)), lambd=0.0051)
    assert float(same) < 1e-3
    assert float(other) > 0.5 * d


def test_presets_and_validation():
    fields = {f.name for f in dataclasses.fields(TargetOptions)}
    for name in ("smoke", "quick", "paper"):
        assert set(TARGET_PRESETS[name]) <= fields
        TargetOptions.resolve(TARGET_PRESETS[name])
    assert TARGET_PRESETS["paper"]["target_width"] == 1.0
    with pytest.raises(OptionError):
        TargetOptions.resolve({"target_optimizer": "rmsprop"})
    with pytest.raises(OptionError):
        TargetOptions.resolve({"target_batch": 1})


def test_config_is_the_cache_key():
    src, opts = tiny_source(), tiny_options()
    cfg = cached.target_config(opts, src)
    assert cfg["options"]["target_width"] == opts.target_width
    assert cfg["source_hash"] == "tiny0" and cfg["version"] == tm.TARGET_VERSION
    assert cached.target_config(tiny_options(target_epochs=2), src) != cfg
    assert cached.target_config(opts, tiny_source(content_hash="other")) != cfg
    json.dumps(cfg)  # a plain JSON key


def test_quick_cache_key_is_pinned():
    """The cached quick target (~17 min of CPU) is found by this key: a refactor that changes it
    silently retrains. Change it only with TARGET_VERSION, on purpose."""
    from types import SimpleNamespace

    from ddbench.cache import config_hash

    source = SimpleNamespace(name="tinyimagenet200_32_subset", resolution=32,
                             content_hash="b2b91189015d771ee2a86a656edbb3ae0b9a554c44a69989ea06ca143e2b990e")
    key = config_hash(cached.target_config(TargetOptions.resolve(TARGET_PRESETS["quick"]), source))
    assert key == "de4affec72aeb36a"


def test_train_cache_and_extras(monkeypatch):
    src, opts = tiny_source(), tiny_options()
    torch.manual_seed(123)
    rng_before = torch.get_rng_state()
    ctx = RunContext(seed=0)
    model = targets.get_target_model(ctx, src, opts)
    # training (and loading) never moves the caller's global RNG
    assert torch.equal(torch.get_rng_state(), rng_before)

    info = ctx.extras["target_model"]
    assert set(info) >= {"sha256", "config_hash", "linear_probe_val", "linear_probe_test", "epochs", "arch",
                         "width", "train_seconds"}
    assert info["sha256"] == model.sha256 and len(model.sha256) == 64
    assert info["epochs"] == 1 and info["arch"] == "resnet18" and info["width"] == opts.target_width
    assert 0.0 <= info["linear_probe_val"] <= 100.0 and 0.0 <= info["linear_probe_test"] <= 100.0
    assert ctx.artifacts["target_model"]["sha256"] == model.sha256
    assert model.feature_dim == 64  # 512 x 1/8
    assert not model.net.training and not any(p.requires_grad for p in model.net.parameters())

    # a second call loads the cache and never trains
    def no_training(*a, **k):
        raise AssertionError("retrained a cached target model")

    monkeypatch.setattr(training, "train_target_model", no_training)
    ctx2 = RunContext(seed=1)
    again = targets.get_target_model(ctx2, src, opts)
    assert again.sha256 == model.sha256
    assert ctx2.extras["target_model"] == ctx.extras["target_model"]
    assert torch.equal(torch.get_rng_state(), rng_before)
    for k, v in model.net.state_dict().items():
        assert torch.equal(v, again.net.state_dict()[k])

    # the artifact is checked against its recorded hash
    loaded = targets.load_target_model(ctx.artifacts["target_model"]["path"], "cpu")
    assert loaded.sha256 == model.sha256 and loaded.quality == model.quality
    weights_file = loaded.path + "/" + tm.WEIGHTS_FILE
    with open(weights_file, "r+b") as f:
        f.seek(-1, 2)
        last = f.read(1)
        f.seek(-1, 2)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(DataError, match="sha256"):
        targets.load_target_model(loaded.path, "cpu")


def test_represent_shape_and_determinism():
    src = tiny_source()
    net, _ = training.train_target_model(src.x_train, src.mean, src.std, tiny_options())
    model = targets.TargetModel(net)
    x = normalize(src.x_test, src.mean, src.std)
    f1 = model.represent(x, batch_size=7)
    f2 = model.represent(x, batch_size=7)
    assert f1.shape == (24, model.feature_dim) and f1.dtype == torch.float32
    assert torch.equal(f1, f2)
    assert torch.allclose(f1, model.represent(x, batch_size=1024), atol=1e-5)
    assert model.represent(x[:0]).shape == (0, model.feature_dim)


def test_resume_after_kill_matches_uninterrupted(tmp_path):
    src = tiny_source()
    opts = tiny_options(target_epochs=3)
    full, full_info = training.train_target_model(src.x_train, src.mean, src.std, opts, checkpoint_dir=tmp_path / "a")
    assert full_info.resumed_from == 0 and len(full_info.losses) == 3

    class Killed(Exception):
        pass

    def kill_after_first(epoch, loss):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        training.train_target_model(src.x_train, src.mean, src.std, opts, checkpoint_dir=tmp_path / "b",
                              on_epoch_end=kill_after_first)
    seen = []
    resumed, info = training.train_target_model(src.x_train, src.mean, src.std, opts, checkpoint_dir=tmp_path / "b",
                                          on_epoch_end=lambda e, loss: seen.append(e))
    assert info.resumed_from == 1 and seen == [2, 3]
    assert info.losses == full_info.losses
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_get_target_model_resumes_a_killed_training(monkeypatch, tmp_path):
    src, opts = tiny_source(), tiny_options(target_epochs=2)
    reference = targets.get_target_model(RunContext(seed=0, cache=bt_cache(tmp_path / "ref")), src, opts)

    real_train = training.train_target_model

    def killed(*a, **k):
        def stop(epoch, loss):
            raise KeyboardInterrupt

        return real_train(*a, **k, on_epoch_end=stop)

    ctx = RunContext(seed=0, cache=bt_cache(tmp_path / "run"))
    monkeypatch.setattr(training, "train_target_model", killed)
    with pytest.raises(KeyboardInterrupt):
        targets.get_target_model(ctx, src, opts)
    monkeypatch.setattr(training, "train_target_model", real_train)
    model = targets.get_target_model(ctx, src, opts)
    assert model.meta["train"]["resumed_from"] == 1
    assert model.sha256 == reference.sha256


def bt_cache(root):
    from ddbench.cache import ArtifactCache

    return ArtifactCache(root)


def test_linear_probe_beats_chance_and_selects_on_validation():
    src = tiny_source(n_train=90)
    feats = [x.mean((2, 3)) for x in (src.x_train, src.x_val, src.x_test)]  # mean colour
    res = linear_probe(feats[0], src.y_train, [(feats[1], src.y_val), (feats[2], src.y_test)],
                          num_classes=3, steps=30)
    assert res["top1"][0] > 90 and res["top1"][1] > 90
    assert res["weight_decay"] in res["by_weight_decay"]
    best_val = max(v[0] for v in res["by_weight_decay"].values())
    assert res["top1"][0] == best_val


def test_train_images_only_and_subset():
    src = tiny_source()
    x, y = training.select_train_images(src, tiny_options(target_max_images=10))
    assert x.shape[0] == 10 and y.shape == (10,)
    # every selected image is a training image, with its own label
    for xi, yi in zip(x, y):
        hits = [j for j, t in enumerate(src.x_train) if torch.equal(xi, t)]
        assert hits and int(src.y_train[hits[0]]) == int(yi)
    assert training.select_train_images(src, tiny_options())[0].shape[0] == src.x_train.shape[0]


def test_barlow_twins_never_reads_labels():
    """Same images, scrambled labels: the Barlow Twins target is bit-identical."""
    src = tiny_source()
    a, _ = training.train_target_model(src.x_train, src.mean, src.std, tiny_options(), y_train=src.y_train)
    b, _ = training.train_target_model(src.x_train, src.mean, src.std, tiny_options(), y_train=src.y_train.flip(0))
    for k, v in weights(a).items():
        assert torch.equal(v, weights(b)[k]), k


def test_supervised_oracle_objective_learns_the_labels_and_has_its_own_cache_key(tmp_path):
    src = tiny_source(n_train=96)
    sup = tiny_options(target_objective="supervised", target_epochs=4, target_lr=3e-3)
    bt_opts = tiny_options()
    # the objective is the key's "algorithm"; a Barlow Twins key is what it was before the option existed
    assert cached.target_config(bt_opts, src)["algorithm"] == "barlow_twins"
    assert "target_objective" not in cached.target_config(bt_opts, src)["options"]
    assert cached.target_config(sup, src)["algorithm"] == "supervised"
    same_but_bt = dataclasses.replace(sup, target_objective="barlow_twins")
    assert cached.target_config(sup, src) != cached.target_config(same_but_bt, src)
    assert cached.target_config(sup, src)["options"] == cached.target_config(same_but_bt, src)["options"]

    ctx = RunContext(seed=0, cache=bt_cache(tmp_path))
    model = targets.get_target_model(ctx, src, sup)
    assert ctx.extras["target_model"]["objective"] == "supervised"
    assert ctx.extras["diagnostic"] == ["supervised target model (trained with the source's labels)"]
    ctx_bt = RunContext(seed=0, cache=bt_cache(tmp_path))
    targets.get_target_model(ctx_bt, src, bt_opts)
    assert "diagnostic" not in ctx_bt.extras
    assert model.config["algorithm"] == "supervised"
    # colour classes are trivially separable: a classifier-trained trunk's features must be
    assert model.quality["linear_probe_val"] > 90
    # it learns from the labels: its cross-entropy falls (0.99 -> 0.54 when written), while with
    # randomly permuted labels, which the images cannot predict, it stays near ln 3 (~1.11)
    losses = model.meta["train"]["losses"]
    perm = torch.randperm(src.y_train.shape[0], generator=torch.Generator().manual_seed(0))
    _, scrambled = training.train_target_model(src.x_train, src.mean, src.std, sup, y_train=src.y_train[perm])
    assert losses[-1] < 0.8 * losses[0]
    assert losses[-1] < 0.75 * scrambled.losses[-1]


def test_supervised_objective_needs_labels_and_a_known_name():
    src = tiny_source()
    with pytest.raises(DataError, match="one label per training image"):
        training.train_target_model(src.x_train, src.mean, src.std, tiny_options(target_objective="supervised"))
    with pytest.raises(OptionError, match="target_objective must be one of barlow_twins, supervised"):
        tiny_options(target_objective="simclr")


def test_target_model_for_set_finds_the_model_a_set_was_made_with(tmp_path):
    from ddbench.distilled import DistilledSet

    src, opts = tiny_source(), tiny_options()
    cache = bt_cache(tmp_path)
    made = RunContext(seed=0, cache=cache)
    model = targets.get_target_model(made, src, opts)

    def a_set(target_model=None, **provenance) -> DistilledSet:
        if target_model is not None:
            provenance["depends_on"] = {"target_model": target_model}
        return DistilledSet(images=torch.zeros(1, 3, 16, 16), targets=torch.zeros(1, model.feature_dim),
                            label_kind="representation", recipe="representation_mse", resolution=16,
                            provenance=provenance)

    def fresh() -> RunContext:  # a later evaluation: no artifacts from the distillation
        return RunContext(seed=0, cache=cache)

    sha = {"sha256": model.sha256}
    # the path the set records
    assert targets.target_model_for_set(fresh(), a_set(target_model={"path": model.path, **sha}), src).sha256 \
        == model.sha256
    # only a sha256 recorded: the run's artifact
    assert targets.target_model_for_set(made, a_set(target_model=sha), src).sha256 == model.sha256
    # only a sha256 and the set's options, in a fresh context: the cache entry of its target_* options
    found = targets.target_model_for_set(fresh(), a_set(target_model=sha, options=targets.target_options_dict(opts)),
                                         src)
    assert found.sha256 == model.sha256 and found.path == model.path
    # other weights than the recorded ones are never returned; nothing to go on gives None
    assert targets.target_model_for_set(made, a_set(target_model={"path": model.path, "sha256": "0" * 64}),
                                        src) is None
    assert targets.target_model_for_set(fresh(), a_set(), src) is None


def test_the_target_models_quality_is_reported_beside_every_result(tmp_path):
    """The leaderboard's probe column comes from ctx.report, not from the host knowing targets."""
    src, opts = tiny_source(), tiny_options()
    ctx = RunContext(seed=0, cache=bt_cache(tmp_path))
    model = targets.get_target_model(ctx, src, opts)
    item = ctx.extras["reported"]["target probe (val %)"]
    assert item["value"] == round(float(model.quality["linear_probe_val"]), 2) and "linear-probe" in item["description"]
