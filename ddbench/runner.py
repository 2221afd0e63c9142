"""Runs a method on a task over seeds and records everything.

The runner knows no method or task by name: it resolves plugins from the registries,
caches each seed's distilled set and evaluation by the hash of what made them (so a
killed run, started again, resumes where it stopped), and writes one record whatever
happens.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import __version__, plugins, term
from .cache import ArtifactCache
from .errors import DataError, DDBenchError, OptionError
from .interfaces import Method, Task
from .records import Metric, MethodInfo, RunConfig, RunRecord, SeedResult
from .store import RunStore
from .types import Budget

#: bump when the runner's caching or aggregation changes results
RUNNER_VERSION = "1"


def parse_seeds(text: str | Sequence[int]) -> list[int]:
    if not isinstance(text, str):
        return [int(s) for s in text]
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                seeds.extend(range(int(a), int(b) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise OptionError(f"cannot parse seeds {text!r}: use a comma-separated list of integers such as 0,1,2 or a range 0-2") from None
    if not seeds:
        raise OptionError("no seeds given: use --seeds 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise OptionError(f"seeds {text!r} repeat a value; each seed must appear once")
    return seeds


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise OptionError(f"option {item!r} is not key=value: write e.g. -o steps=100")
        k, v = item.split("=", 1)
        if not k.strip():
            raise OptionError(f"option {item!r} has an empty key")
        out[k.strip()] = v.strip()
    return out


def split_overrides(overrides: Mapping[str, str], method: Any, task: Any) -> tuple[dict[str, str], dict[str, str]]:
    """Route ``key=value`` to the method or the task; ``method.key``/``task.key`` force it."""
    mfields = set(method.Options.field_types())
    tfields = set(task.Options.field_types())
    m_over: dict[str, str] = {}
    t_over: dict[str, str] = {}
    for k, v in overrides.items():
        if k.startswith("method."):
            m_over[k[7:]] = v
        elif k.startswith("task."):
            t_over[k[5:]] = v
        elif k in mfields and k in tfields:
            raise OptionError(f"option {k!r} exists for method {method.name} and task {task.name}: "
                              f"write -o method.{k}=... or -o task.{k}=...")
        elif k in mfields:
            m_over[k] = v
        elif k in tfields:
            t_over[k] = v
        else:
            import difflib

            close = difflib.get_close_matches(k, sorted(mfields | tfields), n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise OptionError(f"unknown option {k!r}: {hint}method {method.name} takes {', '.join(sorted(mfields)) or '(none)'}; "
                              f"task {task.name} takes {', '.join(sorted(tfields)) or '(none)'}")
    return m_over, t_over


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: str) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "ddbench": __version__,
        "platform": platform.platform(), "machine": platform.machine(), "device": device,
        "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
    }
    if device.startswith("cuda"):
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
        env["cuda"] = torch.version.cuda
    else:
        env["device_name"] = _cpu_name()
    env.update(plugins.environment_info())
    return env


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def check_device(device: str) -> None:
    import torch

    if device == "cpu":
        return
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DDBenchError(f"--device {device} asked for CUDA but torch sees no GPU here; use --device cpu")
        return
    raise DDBenchError(f"unknown device {device!r}: use cpu, cuda or cuda:N")


def peak_memory_mb(device: str) -> float:
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mb = rss_kb / 1024.0
    if device.startswith("cuda"):
        import torch

        mb = max(mb, torch.cuda.max_memory_allocated() / 2**20)
    return round(mb, 1)


@dataclasses.dataclass
class RunSpec:
    method: str
    task: str
    source: str | None = None
    preset: str | None = "quick"
    seeds: Sequence[int] = (0,)
    overrides: Mapping[str, str] = dataclasses.field(default_factory=dict)
    device: str = "cpu"
    #: the budget: total images or images per class (at most one); None = the preset's
    images: int | None = None
    ipc: int | None = None


@dataclasses.dataclass
class Resolved:
    """Everything a run needs, validated before any work starts."""

    method: Method
    task: Task
    m_opts: Any
    t_opts: Any
    seeds: list[int]
    config: RunConfig


def requested_budget(spec: RunSpec) -> Budget:
    if spec.images is not None and spec.ipc is not None:
        raise OptionError("give the budget once: --ipc K (images per class) or --images N (in total), not both")
    return Budget(images=spec.images, ipc=spec.ipc)


def resolve(spec: RunSpec) -> Resolved:
    """Validate everything that can be validated before work starts; return the config."""
    method = plugins.get_method(spec.method)
    task = plugins.get_task(spec.task)
    requested = requested_budget(spec)
    for plugin in (method, task):
        if spec.preset is not None and not any(p.name == spec.preset for p in plugin.preset_entries()):
            plugin.find_preset(spec.preset, "")  # raises: unknown preset, naming the plugin's presets
    if not method.takes_budget and not requested.empty:
        raise OptionError(f"method {method.name} spends no image budget; drop --ipc/--images")
    source = spec.source or method.default_source(spec.preset) or task.default_source(spec.preset)
    if not source:
        raise OptionError(f"no default source: neither method {method.name} nor task {task.name} names one for "
                          f"preset {spec.preset or 'none'}; give --source DATASET (see `ddbench ls datasets` and "
                          f"`ddbench ls presets`)")
    plugins.get_dataset(source)
    m_entry = method.find_preset(spec.preset, source, requested)
    t_entry = task.find_preset(spec.preset, source)
    budget = requested
    if budget.empty and m_entry is not None and m_entry.budget is not None and method.takes_budget:
        budget = m_entry.budget
    if method.takes_budget and budget.empty:
        raise OptionError(f"method {method.name} needs an image budget: give --ipc K or --images N "
                          f"(its preset {spec.preset!r} sets none)")
    m_over, t_over = split_overrides(spec.overrides, method, task)
    m_opts = method.options(m_entry, m_over)
    t_opts = task.options(t_entry, t_over)
    refused = task.refusal(method.label_kind_for(m_opts), f"method {method.name}")
    if refused:
        raise DataError(refused)
    seeds = parse_seeds(spec.seeds) if isinstance(spec.seeds, str) else [int(s) for s in spec.seeds]
    scaling = {kind: entry.scaling for kind, entry in (("method", m_entry), ("task", t_entry))
               if entry is not None and entry.scaling}
    config = RunConfig(
        method=method.name, method_version=method.version, method_options=m_opts.to_dict(),
        task=task.name, task_version=task.version, task_options=t_opts.to_dict(),
        source=source, preset=spec.preset, budget=budget, device=spec.device,
        origins={"method": plugins.registry("method").entry(method.name).origin,
                 "task": plugins.registry("task").entry(task.name).origin,
                 "source": plugins.registry("dataset").entry(source).origin},
        scaled=spec.preset != "paper", scaling=scaling, overrides=dict(spec.overrides),
        metrics=list(task.metrics(t_opts)), measurement_options=list(task.measurement_options),
        method_info=MethodInfo(label_kind=method.label_kind_for(m_opts), reference=method.reference,
                               takes_budget=method.takes_budget, recipes=list(method.recipes),
                               controls=list(method.controls)),
    )
    return Resolved(method=method, task=task, m_opts=m_opts, t_opts=t_opts, seeds=seeds, config=config)


def _check_distilled(method: Method, options: Any, distilled: Any, budget: Budget) -> None:
    from .distilled import check_returned
    from .errors import DataError

    check_returned(distilled, method.name)
    if method.takes_budget and budget.images is not None and distilled.num_images != budget.images:
        raise DataError(f"method {method.name} returned {distilled.num_images} images for a budget of "
                        f"{budget.label()}; a method must fill its budget exactly")
    if method.recipes and distilled.recipe not in method.recipes:
        raise DataError(f"method {method.name} returned a set with recipe {distilled.recipe!r} but declares "
                        f"{', '.join(method.recipes)}; add it to {type(method).__name__}.recipes")
    declared = method.label_kind_for(options)
    if distilled.label_kind != declared:
        raise DataError(f"method {method.name} declares label kind {declared!r} but returned a set with "
                        f"{distilled.label_kind!r}")


def _check_metrics(task: Task, config: RunConfig, metrics: Mapping[str, Any]) -> None:
    from .errors import DataError

    undeclared = [k for k in metrics if config.metric_spec(k) is None]
    if undeclared:
        raise DataError(f"task {task.name} returned metrics it does not declare: {', '.join(undeclared)}; "
                        f"add them to {type(task).__name__}.metrics()")


def run(spec: RunSpec, store: RunStore | None = None, cache: ArtifactCache | None = None) -> RunRecord:
    r = resolve(spec)
    check_device(spec.device)
    store = store or RunStore()
    cache = cache or ArtifactCache()
    method, task, config = r.method, r.task, r.config
    record = RunRecord(
        run_id=_dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6], config=config,
        config_hash=config.hash(), seeds=r.seeds, started_at=_now(), commit=git_commit(),
    )
    record.env = environment(spec.device)
    store.save(record)
    t_start = time.time()
    per_metric: dict[str, dict[str, Any]] = {}
    try:
        # inside the try: a failing plugin marks the record failed, and it is stored, like any other failure
        plugins.call_hook("ddbench_before_run", config=config)
        from .context import RunContext
        from .data import prepare
        from .distilled import DistilledSet, sha256_file

        t0 = time.time()
        source = prepare(config.source, method.source_resolution(r.m_opts), cache=cache)
        record.timings["prepare_s"] = round(time.time() - t0, 3)
        record.source_info = source.summary()
        budget = config.budget.resolve(source.num_classes) if method.takes_budget else Budget()
        record.budget = {"images": budget.images if method.takes_budget else 0, "ipc": budget.ipc}
        for i, seed in enumerate(r.seeds):
            term.log(f"[bold]seed {seed}[/] ({i + 1}/{len(r.seeds)}): {method.name} on {source.name} → {task.name}"
                     + (f" ({budget.label()})" if method.takes_budget else ""))
            ctx = RunContext(seed=seed, device=spec.device, preset=spec.preset, run_id=record.run_id, cache=cache,
                             budget=budget)
            ctx.seed_everything()
            dkey = {"kind": "distilled", "method": method.name, "version": method.version,
                    "options": method.cache_options(r.m_opts), "budget": budget.to_dict(),
                    "source": source.content_hash, "source_name": source.name,
                    "seed": seed, "device": spec.device.split(":")[0]}

            def create(out: Path, ckpt: Path, ctx=ctx) -> None:
                ctx.checkpoint_dir, ctx.output_dir = ckpt, out
                t = time.time()
                distilled = method.distill(ctx, source, r.m_opts)
                _check_distilled(method, r.m_opts, distilled, budget)
                if distilled.provenance.seconds is None:
                    distilled.provenance.seconds = round(time.time() - t, 3)
                distilled.save(out)
                (out / "extras.json").write_text(json.dumps({"extras": ctx.extras, "artifacts": ctx.artifacts,
                                                             "seconds": round(time.time() - t, 3),
                                                             "peak_memory_mb": round(peak_memory_mb(spec.device), 1)},
                                                            default=str))

            t0 = time.time()
            dpath, cached = cache.get_or_create("distilled", dkey, create)
            distill_s = time.time() - t0
            saved = json.loads((dpath / "extras.json").read_text())
            ctx.extras = dict(saved.get("extras", {}))
            ctx.artifacts = dict(saved.get("artifacts", {}))
            distilled = DistilledSet.load(dpath)

            record.artifacts[f"distilled/seed{seed}"] = {"path": str(dpath), "sha256": sha256_file(dpath / "images.safetensors")}
            for name, art in ctx.artifacts.items():
                record.artifacts.setdefault(name, art)

            ekey = {"kind": "evaluation", "task": task.name, "version": task.version, "options": config.task_options,
                    "distilled": record.artifacts[f"distilled/seed{seed}"]["sha256"], "source": source.content_hash,
                    "seed": seed, "device": spec.device.split(":")[0], "runner": RUNNER_VERSION,
                    "dependencies": task.dependencies(r.t_opts)}

            def evaluate(out: Path, ckpt: Path, ctx=ctx, distilled=distilled) -> None:
                ctx.checkpoint_dir, ctx.output_dir = ckpt, out
                ctx.seed_everything(1)
                metrics = task.evaluate(ctx, distilled, source, r.t_opts)
                _check_metrics(task, config, metrics)
                (out / "metrics.json").write_text(json.dumps(
                    {"metrics": {k: dataclasses.asdict(v) for k, v in metrics.items()}, "extras": ctx.extras,
                     "artifacts": ctx.artifacts}, default=str))

            t0 = time.time()
            epath, ecached = cache.get_or_create("evaluation", ekey, evaluate)
            eval_s = time.time() - t0
            result = json.loads((epath / "metrics.json").read_text())
            ctx.extras.update(result.get("extras", {}))
            for name, art in (result.get("artifacts") or {}).items():  # e.g. a teacher the evaluation trained
                record.artifacts.setdefault(name, art)
            for name, mv in result["metrics"].items():
                slot = per_metric.setdefault(name, {"values": {}, "predictor": mv.get("predictor", "")})
                slot["values"][seed] = mv["value"]
            record.per_seed[str(seed)] = SeedResult(
                extras=ctx.extras, budget=distilled.budget(), label_kind=distilled.label_kind,
                recipe=distilled.recipe, pixel_space=distilled.pixel_space,
                distilled_cached=cached, evaluation_cached=ecached,
                metrics_extra={k: v.get("extra", {}) for k, v in result["metrics"].items()},
                n_examples={k: v["n_examples"] for k, v in result["metrics"].items() if v.get("n_examples")},
                seconds={"distill": round(distill_s, 3), "evaluate": round(eval_s, 3)},
                distill_cost={"seconds": saved.get("seconds"), "peak_memory_mb": saved.get("peak_memory_mb")},
            )
            record.budget.setdefault("bytes", distilled.budget()["bytes"])
            record.timings[f"seed{seed}_distill_s"] = round(distill_s, 3)
            record.timings[f"seed{seed}_evaluate_s"] = round(eval_s, 3)
            record.metrics = _aggregate(per_metric, r.seeds, method, config)
            store.save(record)  # partial progress is never lost
        record.status = "finished"
    except KeyboardInterrupt:
        record.status, record.error = "interrupted", "interrupted by the user (KeyboardInterrupt); rerun the same command to resume"
        raise
    except DDBenchError as e:
        record.status, record.error = "failed", str(e)
        raise
    except BaseException as e:
        record.status, record.error = "failed", "".join(traceback.format_exception(e))[-4000:]
        raise
    finally:
        record.metrics = _aggregate(per_metric, r.seeds, method, config)
        record.timings["total_s"] = round(time.time() - t_start, 3)
        record.peak_memory_mb = peak_memory_mb(spec.device)
        record.finished_at = _now()
        try:
            plugins.call_hook("ddbench_after_run", record=record)
        except DDBenchError as e:
            # a plugin failing after a finished run must not leave it "finished"; a run that
            # had already failed keeps its own error first, and its exception goes on
            if record.status == "finished":
                record.status, record.error = "failed", str(e)
                raise
            record.error = f"{record.error}\n(also: {e})"
        finally:
            store.save(record)
    return record


def _aggregate(per_metric: dict[str, dict[str, Any]], seeds: list[int], method: Method,
               config: RunConfig) -> list[Metric]:
    out = []
    varied = method.seed_varies()
    for name, slot in per_metric.items():
        vals = [slot["values"][s] for s in seeds if s in slot["values"]]
        spec = config.metric_spec(name)
        out.append(Metric(name=name, per_seed=vals, higher_is_better=spec.higher_is_better if spec else True,
                          predictor=slot["predictor"], varied=varied))
    return out
