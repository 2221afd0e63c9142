"""The plugin manager: built-ins from ``DEFAULT_PLUGINS``, third parties from the
entry-point group ``ddbench``, each registry filled through the same hooks."""

from __future__ import annotations

import importlib
import os
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .registry import Registry

#: built-in plugin modules, registered exactly like third-party ones
DEFAULT_PLUGINS = (
    "ddbench_plugins.datasets",
    "ddbench_plugins.architectures",
    "ddbench_plugins.methods.none",
    "ddbench_plugins.methods.random",
    "ddbench_plugins.methods.kmeans",
    "ddbench_plugins.methods.krrst",
    "ddbench_plugins.tasks.transfer",
)

KINDS = ("method", "architecture", "task", "dataset")
_HOOKS = {
    "method": "ddbench_register_methods",
    "architecture": "ddbench_register_architectures",
    "task": "ddbench_register_tasks",
    "dataset": "ddbench_register_datasets",
}

_pm: pluggy.PluginManager | None = None
_registries: dict[str, Registry] | None = None
_origins: dict[int, str] = {}


def _load_default(pm: pluggy.PluginManager) -> None:
    for modname in DEFAULT_PLUGINS:
        mod = importlib.import_module(modname)
        pm.register(mod, name=modname)
        _origins[id(mod)] = f"ddbench (built-in: {modname})"


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    if os.environ.get("DDBENCH_DISABLE_PLUGINS", "").lower() in ("1", "true", "yes"):
        return
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != "ddbench":
                continue
            plugin = ep.load()
            name = f"{dist.metadata['Name']}:{ep.name}"
            if pm.is_registered(plugin) or pm.get_plugin(name) is not None:
                continue
            pm.register(plugin, name=name)
            _origins[id(plugin)] = f"{dist.metadata['Name']} {dist.version}"


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("ddbench")
        pm.add_hookspecs(hookspecs)
        _load_default(pm)
        _load_entrypoints(pm)
        _pm = pm
    return _pm


def origin_of(plugin: Any) -> str:
    return _origins.get(id(plugin), getattr(plugin, "__name__", repr(plugin)))


def _fill() -> dict[str, Registry]:
    pm = get_plugin_manager()
    regs = {k: Registry(k) for k in KINDS}
    for kind, hookname in _HOOKS.items():
        hook = getattr(pm.hook, hookname)
        for impl in hook.get_hookimpls():
            origin = origin_of(impl.plugin)

            def register(obj: Any, _kind=kind, _origin=origin) -> None:
                regs[_kind].add(obj.name, obj, _origin)

            impl.function(register=register)
    return regs


def registries() -> dict[str, Registry]:
    global _registries
    if _registries is None:
        _registries = _fill()
    return _registries


def registry(kind: str) -> Registry:
    return registries()[kind]


def register_plugin(plugin: Any, name: str | None = None, origin: str = "test") -> None:
    """Register an extra plugin object at run time (tests use this) and refresh the registries."""
    global _registries
    pm = get_plugin_manager()
    pm.register(plugin, name=name)
    _origins[id(plugin)] = origin
    _registries = None


def unregister_plugin(plugin: Any) -> None:
    global _registries
    pm = get_plugin_manager()
    if pm.is_registered(plugin):
        pm.unregister(plugin)
    _registries = None


def reset() -> None:
    """Forget the plugin manager; the next call rebuilds it (tests use this)."""
    global _pm, _registries
    _pm = None
    _registries = None
    _origins.clear()


def get_method(name: str):
    return registry("method").get(name)


def get_task(name: str):
    return registry("task").get(name)


def get_architecture(name: str):
    return registry("architecture").get(name)


def get_dataset(name: str):
    from .errors import UnknownNameError

    try:
        return registry("dataset").get(name)
    except UnknownNameError as e:
        from . import paths

        where = ", ".join(str(p) for p in paths.data_search_path())
        raise UnknownNameError(f"{e}. A file NAME.npz in the sample format on the data path registers dataset NAME; "
                               f"looked in: {where} (set DDBENCH_DATA to the folder that holds it)") from None
