import os

import pytest


@pytest.fixture(autouse=True)
def _isolate(tmp_path, monkeypatch):
    """Every test gets its own DDBENCH_HOME (``tmp_path / "home"``); a developer's installed
    plugins never leak in; the data search path holds only what a test puts on it."""
    home = tmp_path / "home"
    monkeypatch.setenv("DDBENCH_HOME", str(home))
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "1")
    monkeypatch.setenv("DDBENCH_QUIET", "1")
    monkeypatch.delenv("DDBENCH_DATA", raising=False)
    monkeypatch.delenv("DDBENCH_DOWNLOAD", raising=False)
    from ddbench import plugins

    plugins.reset()
    _clear_memo()
    yield home
    plugins.reset()
    _clear_memo()


def _clear_memo():
    try:
        from ddbench import data

        data.clear_memo()
    except ImportError:
        pass


@pytest.fixture
def fake_plugin():
    """Register the tiny test plugin (dataset, method, task) and unregister it afterwards."""
    from ddbench import plugins

    from . import fakes

    plugins.register_plugin(fakes, name="tests.fakes", origin="tests")
    yield fakes
    plugins.unregister_plugin(fakes)


def pytest_collection_modifyitems(config, items):
    if os.environ.get("DDBENCH_TEST_GPU") != "1":
        skip = pytest.mark.skip(reason="needs CUDA (set DDBENCH_TEST_GPU=1 on a GPU machine)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
