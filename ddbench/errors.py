"""Errors that reach the user as one actionable line (exit code 2, no traceback)."""

from __future__ import annotations


class DDBenchError(Exception):
    """A problem with the user's input or environment.

    The CLI turns it into ``Error: <message>`` on stderr and exit code 2.
    The message says what was wrong and what to do about it.
    """


class UnknownNameError(DDBenchError, KeyError):
    """A name that no registry entry has."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(DDBenchError):
    """Two plugins registered the same name."""


class OptionError(DDBenchError):
    """An option key or value that a method or task does not accept."""


class DataError(DDBenchError):
    """A dataset that is missing, corrupt or inconsistent."""


class DivergenceError(DDBenchError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


class PluginError(DDBenchError):
    """A plugin broke: its module failed to import, it implements a hook that does not
    exist, or one of its hooks (or its method's ``distill``, task's ``evaluate``, ...)
    raised something other than a :class:`DDBenchError`.

    The message names the plugin, the distribution that installed it and the hook; the
    original traceback is kept in ``traceback`` (``DDBENCH_TRACEBACK=1`` prints it).
    """

    def __init__(self, message: str, traceback: str = "") -> None:
        super().__init__(message)
        self.traceback = traceback


class StoreError(DDBenchError):
    """ddbench's own state (``DDBENCH_HOME``, the run database, the cache) is unusable.
    ddbench never repairs or overwrites it; the message says what to move or fix."""
