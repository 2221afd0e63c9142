"""The reference docs stay complete: every hook, CLI command, tested bad input and record
field is documented, and the tutorial's code is the example plugin's code."""

import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "examples" / "ddbench-example-plugin"


def doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_docs_index_links_every_page():
    index = doc("README.md")
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "README.md":
            assert f"({page.name}" in index, f"docs/README.md does not link {page.name}"


def test_every_hookspec_in_reference_hooks():
    from ddbench import hookspecs

    names = [n for n, f in vars(hookspecs).items() if inspect.isfunction(f) and hasattr(f, "ddbench_spec")]
    assert len(names) >= 7
    text = doc("reference-hooks.md")
    missing = [n for n in names if f"`{n}`" not in text]
    assert not missing, f"hooks missing from docs/reference-hooks.md: {missing}"


def _command_paths():
    from ddbench.cli import main

    def walk(cmd, path):
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            yield path + [name], sub
            yield from walk(sub, path + [name])

    return [" ".join(p) for p, _ in walk(main, [])]


def test_every_cli_command_in_reference_cli():
    paths = _command_paths()
    assert {"run", "ls", "leaderboard build"} <= set(paths)
    text = doc("reference-cli.md")
    missing = [p for p in paths if f"ddbench {p}" not in text]
    assert not missing, f"commands missing from docs/reference-cli.md: {missing}"


def test_every_cli_option_in_reference_cli():
    from ddbench.cli import main

    text = doc("reference-cli.md")
    missing = []

    def walk(cmd, path):
        for param in cmd.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("-") and f"`{opt}" not in text and f" {opt}" not in text:
                    missing.append(f"ddbench {' '.join(path)} {opt}".replace("  ", " "))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, path + [name])

    walk(main, [])
    assert not missing, f"options missing from docs/reference-cli.md: {missing}"


def test_every_bad_input_in_bad_inputs_doc():
    from tests.core.test_cli import BAD_INPUTS

    text = doc("bad-inputs.md")
    missing = [needle for _args, needle in BAD_INPUTS if needle not in text]
    assert not missing, f"BAD_INPUTS needles missing from docs/bad-inputs.md: {missing}"


def test_every_record_field_in_reference_records():
    from ddbench.records import Metric, RunConfig, RunRecord, SeedResult

    metric = Metric(name="acc", per_seed=[1.0, 2.0])
    config = RunConfig(method="m", task="t", source="s", preset="smoke")
    rec = RunRecord(run_id="r", config=config, config_hash="h", seeds=[0, 1], metrics=[metric])
    text = doc("reference-records.md")
    missing = [f for f in rec.to_dict() if f"`{f}`" not in text]
    missing += [f"metrics[].{f}" for f in metric.to_dict() if f"`{f}`" not in text]
    missing += [f"config.{f}" for f in config.to_dict() if f"`{f}`" not in text]
    missing += [f"per_seed[].{f}" for f in SeedResult().to_dict() if f"`{f}`" not in text]
    assert not missing, f"record fields missing from docs/reference-records.md: {missing}"


@pytest.mark.parametrize("relpath", ["pyproject.toml", "ddbench_example/__init__.py"])
def test_tutorial_code_is_the_example_plugin(relpath):
    """The tutorial shows the example plugin's files verbatim, so the two cannot drift."""
    source = (EXAMPLE / relpath).read_text(encoding="utf-8").strip("\n")
    assert source in doc("tutorial-method-plugin.md"), (
        f"docs/tutorial-method-plugin.md must contain examples/ddbench-example-plugin/{relpath} verbatim")


def test_ci_runs_the_readme_test_command_in_a_fresh_venv():
    """CI must install exactly as a new user does: a package installed by hand on the CI
    machine once hid a missing dependency (scipy)."""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split("```bash", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2, "the README starts with exactly two commands"
    ci = (root / ".ci" / "run").read_text()
    assert block[1].strip() in ci.splitlines(), "the README's test command is not in .ci/run verbatim"
    assert "python3 -m venv" in ci and "activate" in ci


def test_test_extra_installs_what_the_dataset_loaders_need():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert any(d.startswith("scipy") for d in extras["datasets"])
    assert "ddbench[datasets]" in extras["test"]
