"""The plugin manager: built-ins from :func:`builtin_modules`, third parties from the
entry-point group ``ddbench``, each registry filled through the same hooks.

Every call into plugin code that ddbench makes goes through here or is traced back to a
plugin here (:func:`blame`), so a broken plugin is one line that names it, its
distribution and the hook, never a bare traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import traceback as _tb
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pluggy

from . import __version__, hookspecs
from .errors import DDBenchError, PluginError
from .registry import Registry

#: the package of built-in plugins; it lists its modules in ``BUILTIN_MODULES`` (the host
#: names none of them), and each is registered exactly like a third-party plugin
BUILTIN_PACKAGE = "ddbench_plugins"


def builtin_modules() -> tuple[str, ...]:
    """The built-in plugin modules, as the built-in package lists them."""
    return tuple(importlib.import_module(BUILTIN_PACKAGE).BUILTIN_MODULES)

KINDS = ("method", "architecture", "task", "dataset")
_HOOKS = {
    "method": "ddbench_register_methods",
    "architecture": "ddbench_register_architectures",
    "task": "ddbench_register_tasks",
    "dataset": "ddbench_register_datasets",
}
HOOK_NAMES = tuple(n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "ddbench_spec"))

_DISABLE_HINT = "set DDBENCH_DISABLE_PLUGINS=1 to run without third-party plugins"
_CORE_DIR = str(Path(__file__).resolve().parent) + os.sep


@dataclasses.dataclass(frozen=True)
class PluginSource:
    """Who supplied a plugin: its pluggy name and, for a third party, the distribution."""

    name: str
    origin: str  # what `ddbench ls` shows
    distribution: str | None = None
    version: str | None = None
    builtin: bool = False

    def describe(self) -> str:
        if self.builtin:
            return f"built-in plugin {self.name!r} (ddbench {__version__})"
        if self.distribution:
            return f"plugin {self.name!r} (distribution {self.distribution} {self.version})"
        return f"plugin {self.name!r} (registered at run time by {self.origin})"

    def hint(self) -> str:
        if self.builtin:
            return "this is a bug in ddbench: please report it"
        if self.distribution:
            return f"{_DISABLE_HINT}, then fix, upgrade or uninstall it (pip uninstall {self.distribution})"
        return f"{_DISABLE_HINT}, or fix or unregister it"


_pm: pluggy.PluginManager | None = None
_registries: dict[str, Registry] | None = None
_origins: dict[int, str] = {}
_sources: dict[int, PluginSource] = {}
#: id(registered object) -> (kind, name, source): lets :func:`blame` name the plugin whose
#: method/task/architecture/dataset raised
_owners: dict[int, tuple[str, str, PluginSource]] = {}


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _where(e: BaseException) -> str:
    frames = _tb.extract_tb(e.__traceback__)
    if not frames:
        return ""
    f = frames[-1]
    return f" at {Path(f.filename).name}:{f.lineno}"


def _traceback_enabled() -> bool:
    return os.environ.get("DDBENCH_TRACEBACK", "").lower() in ("1", "true", "yes")


def _failure(source: PluginSource, what: str, e: BaseException) -> PluginError:
    tb_hint = "" if _traceback_enabled() else "; DDBENCH_TRACEBACK=1 shows the traceback"
    return PluginError(f"{source.describe()} failed in {what}: {_one_line(e)}{_where(e)}; {source.hint()}{tb_hint}",
                       traceback="".join(_tb.format_exception(e)))


def source_of(plugin: Any) -> PluginSource:
    found = _sources.get(id(plugin))
    if found is not None:
        return found
    name = getattr(plugin, "__name__", None) or repr(plugin)
    return PluginSource(name=name, origin=_origins.get(id(plugin), name))


def _remember(plugin: Any, source: PluginSource) -> None:
    _origins[id(plugin)] = source.origin
    _sources[id(plugin)] = source


def _register(pm: pluggy.PluginManager, plugin: Any, source: PluginSource) -> None:
    try:
        pm.register(plugin, name=source.name)
    except pluggy.PluginValidationError as e:
        raise PluginError(f"{source.describe()} cannot be loaded: {' '.join(str(e).split())}; {source.hint()}") from None
    _remember(plugin, source)


def _load_default(pm: pluggy.PluginManager) -> None:
    for modname in builtin_modules():
        mod = importlib.import_module(modname)
        _register(pm, mod, PluginSource(modname, f"ddbench (built-in: {modname})", builtin=True))


def _load_entrypoints(pm: pluggy.PluginManager) -> None:
    if os.environ.get("DDBENCH_DISABLE_PLUGINS", "").lower() in ("1", "true", "yes"):
        return
    for dist in metadata.distributions():
        for ep in dist.entry_points:
            if ep.group != "ddbench":
                continue
            dname, version = dist.metadata["Name"], dist.version
            name = f"{dname}:{ep.name}"
            source = PluginSource(name, f"{dname} {version}", distribution=dname, version=version)
            try:
                plugin = ep.load()
            except Exception as e:  # any import-time error of someone else's code
                raise PluginError(
                    f"{source.describe()} failed to import {ep.value!r}: {_one_line(e)}{_where(e)}; {source.hint()}",
                    traceback="".join(_tb.format_exception(e))) from e
            if pm.is_registered(plugin) or pm.get_plugin(name) is not None:
                continue
            _register(pm, plugin, source)


def _check(pm: pluggy.PluginManager, plugins: list[Any]) -> None:
    """Refuse hooks that would silently never run: a misspelt hook name, a hook function
    left without ``@hookimpl``, a hook wrapper (``call_hook`` calls implementations one by one)."""
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as e:
        source = source_of(e.plugin)
        unknown = sorted(n for n in vars(pm.hook) if not n.startswith("_") and not getattr(pm.hook, n).has_spec()
                         and any(i.plugin is e.plugin for i in getattr(pm.hook, n).get_hookimpls()))
        name = unknown[0] if unknown else "?"
        close = difflib.get_close_matches(name, HOOK_NAMES, n=1, cutoff=0.6)
        fix = f"did you mean {close[0]}? " if close else f"ddbench's hooks are {', '.join(HOOK_NAMES)}; "
        raise PluginError(f"{source.describe()} implements {name}, which is not a ddbench hook; {fix}"
                          f"rename it (see docs/reference-hooks.md); {source.hint()}") from None
    for plugin in plugins:
        source = source_of(plugin)
        for hook in HOOK_NAMES:
            f = getattr(plugin, hook, None)
            if callable(f) and not hasattr(f, "ddbench_impl"):
                raise PluginError(f"{source.describe()} defines {hook} without @hookimpl, so ddbench would never call "
                                  f"it: decorate it with @hookimpl (from ddbench import hookimpl); {source.hint()}")
        for hook in HOOK_NAMES:
            for impl in getattr(pm.hook, hook).get_hookimpls():
                if impl.plugin is plugin and (impl.hookwrapper or impl.wrapper):
                    raise PluginError(f"{source.describe()} implements {hook} as a hook wrapper, which ddbench does not "
                                      f"call; drop wrapper=True/hookwrapper=True; {source.hint()}")


def get_plugin_manager() -> pluggy.PluginManager:
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager("ddbench")
        pm.add_hookspecs(hookspecs)
        _load_default(pm)
        _load_entrypoints(pm)
        _check(pm, pm.get_plugins())
        _pm = pm
    return _pm


def origin_of(plugin: Any) -> str:
    return _origins.get(id(plugin), getattr(plugin, "__name__", repr(plugin)))


def _call(name: str, kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    pm = get_plugin_manager()
    results = []
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):  # pluggy's call order
        try:
            res = impl.function(*[kwargs[a] for a in impl.argnames])
        except DDBenchError:
            raise
        except Exception as e:
            raise _failure(source_of(impl.plugin), f"hook {name}", e) from e
        if res is not None:
            results.append((impl.plugin, res))
    return results


def call_hook(name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of hook ``name``, in pluggy's order, and return their
    non-None results. A :class:`DDBenchError` from a plugin passes through unchanged (it is
    a message written for the user); any other exception becomes a :class:`PluginError`
    naming the plugin, its distribution and the hook."""
    return [res for _, res in _call(name, kwargs)]


def environment_info() -> dict[str, Any]:
    """What every ``ddbench_environment_info`` implementation adds to a run's ``env``, merged
    in call order."""
    merged: dict[str, Any] = {}
    for plugin, extra in _call("ddbench_environment_info", {}):
        if not isinstance(extra, dict) or not all(isinstance(k, str) for k in extra):
            source = source_of(plugin)
            raise PluginError(f"{source.describe()} returned {type(extra).__name__} from ddbench_environment_info; "
                              f"return a dict with string keys, or None; {source.hint()}")
        merged.update(extra)
    return merged


def _fill() -> dict[str, Registry]:
    pm = get_plugin_manager()
    regs = {k: Registry(k) for k in KINDS}
    _owners.clear()
    for kind, hookname in _HOOKS.items():
        hook = getattr(pm.hook, hookname)
        for impl in hook.get_hookimpls():
            source = source_of(impl.plugin)

            def register(obj: Any, _kind=kind, _source=source) -> None:
                regs[_kind].add(getattr(obj, "name", None), obj, _source.origin)
                _owners[id(obj)] = (_kind, obj.name, _source)

            try:
                impl.function(register=register)
            except DDBenchError:
                raise
            except Exception as e:
                raise _failure(source, f"hook {hookname}", e) from e
    return regs


def registries() -> dict[str, Registry]:
    global _registries
    if _registries is None:
        _registries = _fill()
    return _registries


def registry(kind: str) -> Registry:
    return registries()[kind]


def blame(exc: BaseException) -> PluginError | None:
    """If ``exc`` (not a DDBenchError) escaped from a registered method, task, architecture
    or dataset (``distill``, ``evaluate``, ``load``, ...), the one-line error naming it;
    else None (a bug in ddbench itself keeps its traceback)."""
    if isinstance(exc, DDBenchError) or not isinstance(exc, Exception) or not _owners:
        return None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        owner = _owners.get(id(frame.f_locals.get("self")))
        # a base-class helper in ddbench's own code is not the plugin's doing
        if owner is not None and not frame.f_code.co_filename.startswith(_CORE_DIR):
            kind, name, source = owner
            return _failure(source, f"{kind} {name!r} ({frame.f_code.co_name})", exc)
        tb = tb.tb_next
    return None


def register_plugin(plugin: Any, name: str | None = None, origin: str = "test") -> None:
    """Register an extra plugin object at run time (tests use this) and refresh the registries."""
    global _registries
    pm = get_plugin_manager()
    source = PluginSource(name or getattr(plugin, "__name__", repr(plugin)), origin)
    _register(pm, plugin, source)
    try:
        _check(pm, [plugin])
    except PluginError:
        pm.unregister(plugin)
        raise
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
    _sources.clear()
    _owners.clear()


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
