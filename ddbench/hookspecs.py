"""Every hook a ddbench plugin can implement. Names start with ``ddbench_``.

Arguments are only ever added, never renamed. Registration hooks receive a
``register`` callable; call it once per object you supply.

What a raise does, for every hook: a :class:`ddbench.errors.DDBenchError` is a message
written for the user and is shown as it is; any other exception is a bug in the plugin,
and the command stops with one line that names the plugin, its distribution and the hook
(exit code 2; ``DDBENCH_TRACEBACK=1`` prints the traceback). ddbench calls the
implementations one by one (``ddbench.plugins.call_hook``), so hook wrappers are refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .records import RunConfig, RunRecord

hookspec = pluggy.HookspecMarker("ddbench")


@hookspec
def ddbench_register_methods(register: Callable[[Any], None]) -> None:
    """Fires once per plugin manager, the first time a command needs the registries
    (``ddbench ls``, ``ddbench run``, ...), and again after a plugin is registered at run
    time. Call ``register(method)`` for each
    :class:`ddbench.interfaces.Method` instance the plugin supplies; a name another plugin
    already registered stops the command, naming both. Returns nothing. Keep it cheap: no
    torch, no data. A raise stops every command that needs the registries."""


@hookspec
def ddbench_register_architectures(register: Callable[[Any], None]) -> None:
    """Fires once per plugin manager, like ``ddbench_register_methods``. Call
    ``register(arch)`` for each :class:`ddbench.interfaces.Architecture` instance.
    Returns nothing. A raise stops every command that needs the registries."""


@hookspec
def ddbench_register_tasks(register: Callable[[Any], None]) -> None:
    """Fires once per plugin manager, like ``ddbench_register_methods``. Call
    ``register(task)`` for each :class:`ddbench.interfaces.Task` instance. Returns
    nothing. A raise stops every command that needs the registries."""


@hookspec
def ddbench_register_datasets(register: Callable[[Any], None]) -> None:
    """Fires once per plugin manager, like ``ddbench_register_methods``. Call
    ``register(dataset)`` for each :class:`ddbench.interfaces.Dataset` instance (its
    ``locate()`` must be cheap: ``ddbench ls datasets`` calls it). Returns nothing. A raise
    stops every command that needs the registries."""


@hookspec
def ddbench_before_run(config: "RunConfig") -> None:
    """Fires in ``ddbench.runner.run`` once the record has been saved with status
    ``running``, before any work (data preparation, distillation). ``config`` is the
    resolved :class:`ddbench.records.RunConfig`, the record's ``config``: read it, don't
    change it. Returns nothing. A raise fails the run: its record is stored with status
    ``failed`` and the message in ``error``, ``ddbench_after_run`` still fires, and the
    command exits with code 2."""


@hookspec
def ddbench_after_run(record: "RunRecord") -> None:
    """Fires when a run ends, whether it finished, failed or was interrupted, after the
    record is complete and just before it is stored for the last time (so changes made
    here are stored). ``record`` is the :class:`ddbench.records.RunRecord`;
    ``record.error`` is set when the run failed. Returns nothing. A raise after a finished
    run stores it as ``failed`` with the plugin's message and exits with code 2; after a
    failed or interrupted run the record keeps its own error first (the plugin's message
    is appended) and the run's own error reaches the user."""


@hookspec
def ddbench_environment_info() -> dict[str, Any] | None:
    """Fires once per run while the record's ``env`` is assembled, before the record is
    first saved. Return a dict with string keys and JSON-serialisable values to merge into
    ``env`` (e.g. a cluster job id; a key overrides a built-in one of the same name), or
    None. A raise, or a return value that is not such a dict, stops the run before any
    record exists (exit code 2)."""
