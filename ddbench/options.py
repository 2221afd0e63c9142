"""Typed option dataclasses for methods and tasks.

Each field carries help text in ``metadata["help"]``. ``Options.resolve`` builds an
instance from defaults, then a preset, then user overrides (strings from the CLI
are parsed to the field's type), and rejects unknown keys with the closest names.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any, Mapping

from .errors import OptionError


def option(default: Any, help: str, **kw: Any) -> Any:
    """A dataclass field with help text. Mutable defaults (lists, tuples) are fine."""
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda d=default: type(d)(d), metadata={"help": help}, **kw)
    return dataclasses.field(default=default, metadata={"help": help}, **kw)


def _parse(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse(value, a, key)
            except OptionError as e:
                errors.append(str(e))
        raise OptionError(errors[0] if errors else f"option {key}: cannot parse {value!r}")
    if origin in (list, tuple):
        inner = args[0] if args else str
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise OptionError(f"option {key}: expected a comma-separated list, got {value!r}")
        parsed = [_parse(v, inner, key) for v in items]
        return tuple(parsed) if origin is tuple else parsed
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"option {key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise OptionError(f"option {key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        try:
            f = float(str(value).replace("_", ""))
        except ValueError:
            raise OptionError(f"option {key}: expected an integer, got {value!r}") from None
        if not f.is_integer():
            raise OptionError(f"option {key}: expected an integer, got {value!r}")
        return int(f)
    if tp is float:
        if isinstance(value, bool):
            raise OptionError(f"option {key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise OptionError(f"option {key}: expected a number, got {value!r}") from None
    if tp is str:
        return str(value)
    return value


@dataclasses.dataclass
class Options:
    """Base class for a method's or task's options.

    Example::

        @dataclasses.dataclass
        class MyOptions(Options):
            steps: int = option(100, "number of outer iterations")
            lr: float = option(1e-3, "outer learning rate")

        MyOptions.resolve({"steps": 10}, {"lr": "0.1"})  # -> MyOptions(steps=10, lr=0.1)
    """

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        return {f.name: hints[f.name] for f in dataclasses.fields(cls)}

    @classmethod
    def help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}

    @classmethod
    def check_keys(cls, keys: typing.Iterable[str], where: str = "") -> None:
        known = [f.name for f in dataclasses.fields(cls)]
        for k in keys:
            if k not in known:
                close = difflib.get_close_matches(k, known, n=3, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                raise OptionError(
                    f"unknown option {k!r}{' for ' + where if where else ''}; {hint}"
                    f"known options: {', '.join(known) or '(none)'}"
                )

    @classmethod
    def resolve(cls, *layers: Mapping[str, Any] | None, where: str = ""):
        types = cls.field_types()
        values: dict[str, Any] = {}
        for layer in layers:
            if not layer:
                continue
            cls.check_keys(layer.keys(), where)
            for k, v in layer.items():
                values[k] = _parse(v, types[k], k)
        obj = cls(**values)
        obj.validate()
        return obj

    def validate(self) -> None:
        """Override to reject values that parse but make no sense (raise OptionError)."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out
