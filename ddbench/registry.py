"""A generic name -> entry registry with provenance, used for every plugin kind."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Generic, Iterator, TypeVar

from .errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    origin: str  # distribution (or module) that supplied it


class Registry(Generic[T]):
    """Holds one kind of plugin object (methods, tasks, ...), keyed by name.

    >>> r = Registry("method")
    >>> r.add("random", object(), origin="ddbench")
    >>> "random" in r
    True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, obj: T, origin: str) -> None:
        if not name or not isinstance(name, str):
            raise DuplicateNameError(f"a {self.kind} from {origin} has no valid name: {name!r}")
        if name in self._entries:
            first = self._entries[name].origin
            raise DuplicateNameError(
                f"{self.kind} {name!r} is registered twice: by {first} and by {origin}; "
                f"uninstall one of them or rename the {self.kind}"
            )
        self._entries[name] = Entry(name, obj, origin)

    def remove(self, name: str) -> None:
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; {hint}"
                f"known: {', '.join(sorted(self._entries)) or '(none)'} "
                f"(see `ddbench ls {self.kind}s`)"
            ) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return sorted(self._entries)
