"""The registry-generated conformance suite, as a plugin author would use it."""

from ddbench.testing import *  # noqa: F401,F403


# ---- a third-party method that breaks the contract is refused, here and by `ddbench run` ----

import pytest  # noqa: E402

from ddbench import plugins as _plugins  # noqa: E402

from . import broken_methods  # noqa: E402


@pytest.fixture
def broken_plugin(fake_plugin):
    _plugins.register_plugin(broken_methods, name="tests.broken_methods", origin="broken-methods 0.0.1")
    yield broken_methods
    _plugins.unregister_plugin(broken_methods)


def _contract_messages(name):
    needles = [broken_methods.EXPECTED[name], f"method {name!r}"]
    if name == "broken_uint8_hwc":
        needles.append("channels-last: permute to (N, C, H, W)")
    return needles


@pytest.mark.parametrize("name", sorted(broken_methods.EXPECTED))
def test_conformance_rejects_a_broken_method(ddbench_tiny_source, broken_plugin, tmp_path, name):
    from ddbench.data import prepare
    from ddbench.testing import check_method

    with pytest.raises(pytest.fail.Exception) as failed:
        check_method(_plugins.get_method(name), prepare(ddbench_tiny_source), tmp_path)
    for needle in _contract_messages(name):
        assert needle in str(failed.value), str(failed.value)


def test_conformance_passes_the_method_the_broken_ones_derive_from(ddbench_tiny_source, fake_plugin, tmp_path):
    from ddbench.data import prepare
    from ddbench.testing import check_method

    d = check_method(_plugins.get_method("pick"), prepare(ddbench_tiny_source), tmp_path)
    assert d.value_range == (0.0, 1.0)


@pytest.mark.parametrize("name", sorted(broken_methods.EXPECTED))
def test_run_refuses_a_broken_method_in_one_line(broken_plugin, name):
    from click.testing import CliRunner

    from ddbench.cli import main
    from ddbench.store import RunStore

    res = CliRunner().invoke(main, ["run", "-m", name, "-t", "meanpix", "-p", "smoke"])
    err = res.stderr.strip()
    assert res.exit_code == 2, (res.output, res.exception)
    assert "Traceback" not in res.output and len(err.splitlines()) == 1, err
    for needle in _contract_messages(name):
        assert needle in err, err
    (rec,) = RunStore().all()
    assert rec.status == "failed" and broken_methods.EXPECTED[name] in rec.error
