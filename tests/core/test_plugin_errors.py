"""A broken plugin is one line naming it, its distribution and the hook (exit code 2, no
traceback), and a run it breaks is recorded as failed."""

import sys
import textwrap
import uuid

import pytest
from click.testing import CliRunner

from ddbench import plugins
from ddbench.cli import main
from ddbench.errors import PluginError
from tests.clihelp import one_line

from .. import fakes

RUN = ["run", "-m", "pick", "-t", "meanpix", "-p", "smoke"]
DIST = "distribution broken-plugin 1.2.3"


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """Install a module as the entry point ``broken`` of a fake distribution
    ``broken-plugin 1.2.3`` (third-party loading on), optionally with the test plugin."""
    made = []

    def install(code: str, with_fakes: bool = True) -> str:
        modname = f"ddbench_tp_{uuid.uuid4().hex[:8]}"
        root = tmp_path / f"site-{modname}"
        info = root / "broken_plugin-1.2.3.dist-info"
        info.mkdir(parents=True)
        (root / f"{modname}.py").write_text("from ddbench import hookimpl\n" + textwrap.dedent(code))
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[ddbench]\nbroken = {modname}\n")
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.delenv("DDBENCH_DISABLE_PLUGINS")
        made.append(modname)
        plugins.reset()
        if with_fakes:
            plugins.register_plugin(fakes, name="tests.fakes", origin="tests")
        return modname

    yield install
    plugins.reset()
    for m in made:
        sys.modules.pop(m, None)


def records():
    from ddbench.store import RunStore

    return list(RunStore().all())


# ---- loading ----

def test_plugin_that_fails_to_import(third_party, monkeypatch):
    third_party("import not_a_module_anyone_has\n", with_fakes=False)
    err = one_line(["ls", "methods"], "plugin 'broken-plugin:broken'", DIST, "failed to import",
                   "ModuleNotFoundError", "DDBENCH_DISABLE_PLUGINS=1", "pip uninstall broken-plugin")
    assert "not_a_module_anyone_has" in err
    monkeypatch.setenv("DDBENCH_DISABLE_PLUGINS", "1")  # the way out the message gives
    plugins.reset()
    assert CliRunner().invoke(main, ["ls", "methods"]).exit_code == 0


def test_misspelt_hook(third_party):
    third_party("""
        @hookimpl
        def ddbench_regster_methods(register):
            pass
    """, with_fakes=False)
    one_line(["ls", "methods"], DIST, "implements ddbench_regster_methods, which is not a ddbench hook",
             "did you mean ddbench_register_methods?", "DDBENCH_DISABLE_PLUGINS=1")


def test_hook_without_hookimpl_marker(third_party):
    third_party("""
        def ddbench_register_methods(register):
            pass
    """, with_fakes=False)
    one_line(["ls", "methods"], DIST, "defines ddbench_register_methods without @hookimpl")


def test_hook_wrapper_refused(third_party):
    third_party("""
        @hookimpl(wrapper=True)
        def ddbench_after_run(record):
            return (yield)
    """, with_fakes=False)
    one_line(["ls", "methods"], DIST, "ddbench_after_run as a hook wrapper")


def test_run_time_registration_of_a_misspelt_hook_is_refused_and_undone():
    class Bad:
        @staticmethod
        def ddbench_befor_run(config):
            pass

    from ddbench import hookimpl

    bad = Bad()
    Bad.ddbench_befor_run = staticmethod(hookimpl(Bad.ddbench_befor_run))
    with pytest.raises(PluginError, match="did you mean ddbench_before_run"):
        plugins.register_plugin(bad, name="bad")
    assert not plugins.get_plugin_manager().is_registered(bad)


def test_register_hook_that_raises(third_party):
    third_party("""
        @hookimpl
        def ddbench_register_methods(register):
            raise KeyError("oops")
    """)
    one_line(["ls", "methods"], "plugin 'broken-plugin:broken'", DIST, "failed in hook ddbench_register_methods",
             "KeyError: 'oops'", "DDBENCH_DISABLE_PLUGINS=1", "DDBENCH_TRACEBACK=1")


def test_register_hook_ddbench_error_passes_through(third_party):
    third_party("""
        from ddbench.errors import DataError

        @hookimpl
        def ddbench_register_datasets(register):
            raise DataError("my data folder is gone: set MYDATA")
    """)
    err = one_line(["ls", "datasets"], "my data folder is gone: set MYDATA")
    assert "broken-plugin" not in err  # the plugin's own message, as written


# ---- run hooks ----

def test_environment_info_that_raises_stops_before_any_record(third_party):
    third_party("""
        @hookimpl
        def ddbench_environment_info():
            return {}["SLURM_JOB_ID"]
    """)
    one_line(RUN, DIST, "failed in hook ddbench_environment_info", "KeyError")
    assert records() == []


def test_environment_info_must_return_a_dict(third_party):
    third_party("""
        @hookimpl
        def ddbench_environment_info():
            return ["job", 7]
    """)
    one_line(RUN, DIST, "returned list from ddbench_environment_info; return a dict with string keys, or None")


def test_environment_info_adds_to_the_record(third_party):
    third_party("""
        @hookimpl
        def ddbench_environment_info():
            return {"cluster_job": "42"}
    """)
    assert CliRunner().invoke(main, RUN).exit_code == 0
    (rec,) = records()
    assert rec.env["cluster_job"] == "42" and rec.status == "finished"


def test_before_run_that_raises_marks_the_record_failed(third_party):
    third_party("""
        @hookimpl
        def ddbench_before_run(config):
            raise ConnectionError("notification server down")
    """)
    err = one_line(RUN, DIST, "failed in hook ddbench_before_run", "ConnectionError: notification server down")
    (rec,) = records()
    assert rec.status == "failed" and rec.error == err.removeprefix("Error: ")
    assert rec.finished_at


def test_after_run_that_raises_does_not_leave_the_run_finished(third_party):
    third_party("""
        @hookimpl
        def ddbench_after_run(record):
            raise ValueError("cannot post results")
    """)
    err = one_line(RUN, DIST, "failed in hook ddbench_after_run", "ValueError: cannot post results")
    (rec,) = records()
    assert rec.status == "failed" and rec.error == err.removeprefix("Error: ")
    assert rec.metrics  # the work itself is kept


def test_after_run_that_raises_after_a_failed_run_keeps_the_first_error(third_party):
    third_party("""
        @hookimpl
        def ddbench_after_run(record):
            raise ValueError("cannot post results")
    """)
    one_line(RUN + ["-o", "fail=true"], "method 'pick' (distill)", "asked to fail")
    (rec,) = records()
    assert rec.status == "failed" and "asked to fail" in rec.error and "cannot post results" in rec.error
    assert rec.error.index("asked to fail") < rec.error.index("cannot post results")


# ---- a method's distill, a task's evaluate ----

def test_distill_that_raises(fake_plugin):
    one_line(RUN + ["-o", "fail=true"], "plugin 'tests.fakes'", "failed in method 'pick' (distill)",
             "RuntimeError: asked to fail", "fakes.py:")
    (rec,) = records()
    assert rec.status == "failed" and "Traceback" in rec.error and "asked to fail" in rec.error


def test_evaluate_that_raises(third_party):
    third_party("""
        from tests.fakes import MeanPixelTask

        class Boom(MeanPixelTask):
            name = "boom"

            def evaluate(self, ctx, distilled, source, options):
                return 1 / 0

        @hookimpl
        def ddbench_register_tasks(register):
            register(Boom())
    """)
    one_line(["run", "-m", "pick", "-t", "boom", "-p", "smoke"], DIST, "failed in task 'boom' (evaluate)",
             "ZeroDivisionError", "DDBENCH_DISABLE_PLUGINS=1")
    (rec,) = records()
    assert rec.status == "failed" and "ZeroDivisionError" in rec.error


def test_traceback_on_request(fake_plugin):
    res = CliRunner().invoke(main, RUN + ["-o", "fail=true"], env={"DDBENCH_TRACEBACK": "1"})
    assert res.exit_code == 2
    assert "Traceback" in res.stderr and "asked to fail" in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("Error: plugin 'tests.fakes'")
    assert "DDBENCH_TRACEBACK=1 shows" not in res.stderr


def test_a_bug_in_ddbench_itself_keeps_its_traceback(fake_plugin):
    from pathlib import Path

    import ddbench

    pick = plugins.get_method("pick")

    def raised_in(filename):
        namespace = {}
        exec(compile("def helper(self):\n    raise RuntimeError('x')\n", filename, "exec"), namespace)
        try:
            namespace["helper"](pick)
        except RuntimeError as e:
            return e

    # the same frame, with the registered method as self: blamed on the plugin only outside ddbench's own code
    assert plugins.blame(raised_in(str(Path(ddbench.__file__).parent / "interfaces.py"))) is None
    blamed = plugins.blame(raised_in("/somewhere/my_plugin.py"))
    assert blamed is not None and "method 'pick' (helper)" in str(blamed)


def test_call_hook_order_and_results(fake_plugin):
    from ddbench import hookimpl

    calls = []

    class A:
        @hookimpl
        def ddbench_environment_info(self):
            calls.append("A")
            return {"k": "a"}

    class B:
        @hookimpl
        def ddbench_environment_info(self):
            calls.append("B")
            return None

    a, b = A(), B()
    plugins.register_plugin(a, name="a")
    plugins.register_plugin(b, name="b")
    try:
        assert plugins.call_hook("ddbench_environment_info") == [{"k": "a"}]
        assert plugins.environment_info() == {"k": "a"}
        assert calls[:2] == ["B", "A"]  # pluggy's order: the last registered first
    finally:
        plugins.unregister_plugin(a)
        plugins.unregister_plugin(b)
