"""Every hook a ddbench plugin can implement. Names start with ``ddbench_``.

Arguments are only ever added, never renamed. Registration hooks receive a
``register`` callable; call it once per object you supply.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("ddbench")


@hookspec
def ddbench_register_methods(register: Callable[[Any], None]) -> None:
    """Fires once when the plugin manager loads. Call ``register(method)`` for each
    :class:`ddbench.interfaces.Method` instance the plugin supplies. Returns nothing."""


@hookspec
def ddbench_register_architectures(register: Callable[[Any], None]) -> None:
    """Fires once when the plugin manager loads. Call ``register(arch)`` for each
    :class:`ddbench.interfaces.Architecture` instance. Returns nothing."""


@hookspec
def ddbench_register_tasks(register: Callable[[Any], None]) -> None:
    """Fires once when the plugin manager loads. Call ``register(task)`` for each
    :class:`ddbench.interfaces.Task` instance. Returns nothing."""


@hookspec
def ddbench_register_datasets(register: Callable[[Any], None]) -> None:
    """Fires once when the plugin manager loads. Call ``register(dataset)`` for each
    :class:`ddbench.interfaces.Dataset` instance. Returns nothing."""


@hookspec
def ddbench_before_run(config: dict[str, Any]) -> None:
    """Fires after a run's configuration is resolved, before any work starts.
    ``config`` is the resolved run configuration (read it, don't change it). Returns nothing."""


@hookspec
def ddbench_after_run(record: Any) -> None:
    """Fires when a run ends, whether it finished, failed or was interrupted, after the
    record is complete and just before it is stored. ``record`` is a
    :class:`ddbench.records.RunRecord`; ``record.error`` is set when the run failed."""


@hookspec
def ddbench_environment_info() -> dict[str, Any] | None:
    """Fires while a run record's ``env`` is assembled. Return a dict of extra
    string-keyed, JSON-serialisable facts to merge into it (e.g. a cluster job id), or None."""
