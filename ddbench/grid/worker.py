"""What a grid worker does with one unit of work: an ordinary ``runner.run`` into a
throw-away run store, returning the record to the driver (the driver alone writes the real
run database; SQLite is never shared between machines)."""

from __future__ import annotations

import os
import signal
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping


def runtime_plugins() -> list[tuple[str, str, str]]:
    """(module, name, origin) of plugin modules registered at run time (not built in, not
    installed): a worker process registers them too, so it knows what the driver knows."""
    import types

    from .. import plugins

    builtin = set(plugins.builtin_modules())
    out = []
    for p in plugins.get_plugin_manager().get_plugins():
        if isinstance(p, types.ModuleType) and p.__name__ not in builtin:
            source = plugins.source_of(p)
            if not source.distribution:
                out.append((p.__name__, source.name, source.origin))
    return sorted(out)


def forwarded_env() -> dict[str, str]:
    """The driver's ``DDBENCH_*`` settings (data folders, plugin switches) for the workers."""
    return {k: v for k, v in os.environ.items() if k.startswith("DDBENCH_") and k != "DDBENCH_HOME"}


def _register(mods: list[tuple[str, str, str]]) -> None:
    import importlib

    from .. import plugins
    from ..errors import DDBenchError

    pm = plugins.get_plugin_manager()
    for modname, name, origin in mods:
        try:
            mod = importlib.import_module(modname)
        except Exception as e:
            raise DDBenchError(f"the plugin module {modname} (registered at run time on the driver) cannot be "
                               f"imported on this worker ({type(e).__name__}: {e}); install it there, or put its "
                               "folder on PYTHONPATH") from None
        if not pm.is_registered(mod) and pm.get_plugin(name) is None:
            plugins.register_plugin(mod, name=name, origin=origin)


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _interruptible(enabled: bool) -> Iterator[None]:
    """In a local worker, SIGINT/SIGTERM become one KeyboardInterrupt (a second signal while the
    record is being saved is ignored), so the run marks itself interrupted."""
    if not enabled:
        yield
        return
    fired = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise KeyboardInterrupt

    try:
        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_unit(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Run one unit (a run, or one seed of a run) and return ``{"status", "record", "error",
    "seconds", "pid", "host"}``. Never raises for a failed run: its record says why."""
    t0 = time.time()
    out: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), "record": None, "error": None}
    env = {**payload.get("env", {}), "DDBENCH_QUIET": "1"}
    if payload.get("home"):
        env["DDBENCH_HOME"] = str(payload["home"])
    with _environ(env), _interruptible(payload.get("signals", False)):
        try:
            out.update(_run(payload))
        except KeyboardInterrupt:
            out.update(status="interrupted", error="interrupted before the run started")
        except Exception as e:  # noqa: BLE001 - reported in the result, the driver decides
            from ..plugins import blame

            err = blame(e)
            out.update(status="failed", error=str(err) if err is not None else f"{type(e).__name__}: {e}")
    out["seconds"] = round(time.time() - t0, 3)
    return out


def _run(payload: Mapping[str, Any]) -> dict[str, Any]:
    from .. import runner
    from ..cache import ArtifactCache
    from ..errors import DDBenchError
    from ..store import RunStore

    _register(payload.get("plugins", []))
    threads = int(payload.get("threads") or 0)
    if threads:
        import torch

        torch.set_num_threads(threads)
    spec = runner.RunSpec(**payload["spec"])
    cache = ArtifactCache(Path(payload["cache"]), verify=bool(payload.get("verify")))
    with tempfile.TemporaryDirectory(prefix="ddbench-grid-") as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        try:
            record = runner.run(spec, store=store, cache=cache)
        except (KeyboardInterrupt, DDBenchError, Exception) as e:
            saved = list(store.all())
            if not saved:
                raise
            rec = saved[-1].to_dict()
            status = rec.get("status") if rec.get("status") in ("failed", "interrupted") else (
                "interrupted" if isinstance(e, KeyboardInterrupt) else "failed")
            from ..plugins import blame

            err = blame(e) if not isinstance(e, (KeyboardInterrupt, DDBenchError)) else None
            return {"status": status, "record": rec, "error": str(err) if err is not None else (rec.get("error") or str(e))}
    return {"status": record.status, "record": record.to_dict(), "error": record.error}
