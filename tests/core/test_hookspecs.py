import inspect

from ddbench import hookspecs


def test_every_hookspec_documented_and_prefixed():
    specs = [f for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "ddbench_spec")]
    assert len(specs) >= 7
    for f in specs:
        assert f.__name__.startswith("ddbench_"), f.__name__
        assert f.__doc__ and len(f.__doc__.split()) >= 8, f"{f.__name__} needs a docstring saying when it fires"
        assert "Fires" in f.__doc__, f"{f.__name__}: say when it fires"


def test_builtins_register_through_hooks():
    from ddbench.plugins import DEFAULT_PLUGINS, registries

    regs = registries()
    origins = {e.origin for kind in regs.values() for e in kind}
    assert all(o.startswith("ddbench (built-in") for o in origins)
    assert len(DEFAULT_PLUGINS) >= 5
    for name in ("krrst", "random", "kmeans", "none"):
        assert name in regs["method"]
    assert "transfer" in regs["task"]
    for name in ("convnet", "resnet18", "vgg11", "alexnet", "mobilenet", "resnet10"):
        assert name in regs["architecture"]
