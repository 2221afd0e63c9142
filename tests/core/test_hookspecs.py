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
    from ddbench.plugins import builtin_modules, registries

    regs = registries()
    origins = {e.origin for kind in regs.values() for e in kind}
    assert all(o.startswith("ddbench (built-in") for o in origins)
    assert len(builtin_modules()) >= 5
    for name in ("krrst", "random", "kmeans", "none"):
        assert name in regs["method"]
    assert "transfer" in regs["task"]
    for name in ("convnet", "resnet18", "vgg11", "alexnet", "mobilenet", "resnet10"):
        assert name in regs["architecture"]


def _specs():
    return [f for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "ddbench_spec")]


def test_every_hookspec_typed_and_says_what_a_raise_does():
    for f in _specs():
        sig = inspect.signature(f)
        assert sig.return_annotation is not inspect.Signature.empty, f.__name__
        untyped = [p.name for p in sig.parameters.values() if p.annotation is inspect.Parameter.empty]
        assert not untyped, f"{f.__name__}: type {untyped}"
        assert "raise" in f.__doc__, f"{f.__name__}: say what a raise does"


def test_run_hooks_get_the_types_their_specs_name(fake_plugin):
    """The annotations are the runner's truth: a plugin sees exactly these types."""
    import typing

    from click.testing import CliRunner

    from ddbench import hookimpl, plugins, records
    from ddbench.cli import main

    seen = {}

    class Spy:
        @hookimpl
        def ddbench_before_run(self, config):
            seen["config"] = config

        @hookimpl
        def ddbench_after_run(self, record):
            seen["record"] = record

    spy = Spy()
    plugins.register_plugin(spy, name="spy")
    try:
        assert CliRunner().invoke(main, ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke"]).exit_code == 0
    finally:
        plugins.unregister_plugin(spy)
    namespace = vars(records)
    for hook, arg in (("ddbench_before_run", "config"), ("ddbench_after_run", "record")):
        annotation = typing.get_type_hints(getattr(hookspecs, hook), globalns=namespace)[arg]
        assert isinstance(seen[arg], annotation), (hook, type(seen[arg]), annotation)
