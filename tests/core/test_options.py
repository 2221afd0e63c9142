import dataclasses

import pytest

from ddbench.errors import OptionError
from ddbench.options import Options, option


@dataclasses.dataclass
class Opts(Options):
    steps: int = option(10, "steps")
    lr: float = option(0.1, "learning rate")
    flag: bool = option(False, "a flag")
    names: list[str] = option(["a"], "names")
    widths: tuple[int, ...] = option((1, 2), "widths")
    maybe: int | None = option(None, "optional")


def test_layers_and_parsing():
    o = Opts.resolve({"steps": 5}, {"lr": "1e-3", "flag": "true", "names": "x,y", "widths": "3,4", "maybe": "7"})
    assert o.steps == 5 and o.lr == 1e-3 and o.flag is True
    assert o.names == ["x", "y"] and o.widths == (3, 4) and o.maybe == 7
    assert Opts.resolve({"steps": "1e3"}).steps == 1000


def test_mutable_defaults_not_shared():
    a, b = Opts(), Opts()
    a.names.append("z")
    assert b.names == ["a"]


@pytest.mark.parametrize("layer, needle", [
    ({"stpes": 3}, "did you mean steps"),
    ({"steps": "ten"}, "expected an integer"),
    ({"steps": "1.5"}, "expected an integer"),
    ({"lr": "fast"}, "expected a number"),
    ({"flag": "maybe"}, "expected true/false"),
    ({"widths": "1,x"}, "expected an integer"),
])
def test_bad_values(layer, needle):
    with pytest.raises(OptionError) as e:
        Opts.resolve(layer)
    assert needle in str(e.value)


def test_help_and_to_dict():
    assert Opts.help()["lr"] == "learning rate"
    assert Opts().to_dict()["widths"] == [1, 2]
