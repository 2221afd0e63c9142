"""The architecture, enforced: the host knows no plugin by name; import rules between the
host, the toolkit, methods and tasks; no import circles in the host."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOST = ROOT / "ddbench"
TOOLKIT = HOST / "toolkit"
PLUGINS = ROOT / "plugins" / "ddbench_plugins"

#: names of built-in plugins and of what they alone define; none may appear in the host's code
BUILTIN_NAMES = ("krrst", "kmeans", "barlow", "imitation_mse", "representation_mse", "hard_ce_dsa",
                 "learned_mse_adamw", "target_model", "target_objective", "linear_probe", "transfer",
                 "tinyimagenet", "cifar", "flowers", "convnet", "resnet", "\"random\"", "'random'", "\"none\"")


def host_files() -> list[Path]:
    return [p for p in HOST.rglob("*.py") if TOOLKIT not in p.parents]


def code_without_docs_and_help(path: Path) -> str:
    """The module's code with docstrings, comments and click ``help=`` texts removed: usage
    examples may name built-ins, code may not."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0].value.value = ""
        if isinstance(node, ast.keyword) and node.arg == "help":
            node.value = ast.Constant("")
    return ast.unparse(tree)


@pytest.mark.parametrize("path", host_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_host_names_no_builtin_plugin(path):
    code = code_without_docs_and_help(path).lower()
    found = [name for name in BUILTIN_NAMES if name.lower() in code]
    assert not found, f"{path.relative_to(ROOT)} names built-in plugins in its code: {found}"


def test_the_name_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""krrst in a docstring is fine."""\nif method == "krrst":\n    pass\n')
    assert "krrst" in code_without_docs_and_help(bad)
    bad.write_text('"""krrst in a docstring is fine."""\nX = 1\n')
    assert "krrst" not in code_without_docs_and_help(bad)


def imports_of(path: Path) -> set[str]:
    """Absolute module names a file imports (relative imports resolved), at any depth."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(ROOT / "plugins" if PLUGINS in path.parents else ROOT).with_suffix("")
    package = list(rel.parts[:-1]) if rel.name != "__init__" else list(rel.parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                mod = ".".join(base + ([node.module] if node.module else []))
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names)
            else:
                out.add(node.module or "")
                out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def _owner(module: str, kind: str) -> str | None:
    parts = module.split(".")
    if len(parts) >= 3 and parts[0] == "ddbench_plugins" and parts[1] == kind:
        return parts[2]
    return None


def test_the_host_never_imports_plugins_or_the_toolkit():
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imports_of(p)
                                            if m.startswith(("ddbench_plugins", "ddbench.toolkit")))
           for p in host_files()}
    assert not {k: v for k, v in bad.items() if v}


def test_the_toolkit_never_imports_plugins():
    files = list(TOOLKIT.rglob("*.py"))
    assert len(files) > 5  # the check below means nothing without the toolkit's modules
    bad = {str(p.relative_to(ROOT)): sorted(m for m in imports_of(p) if m.startswith("ddbench_plugins"))
           for p in files}
    assert not {k: v for k, v in bad.items() if v}


@pytest.mark.parametrize("kind", ["methods", "tasks"])
def test_plugins_never_import_other_methods_or_tasks(kind):
    offenders = {}
    for path in (PLUGINS / kind).rglob("*.py"):
        me = path.relative_to(PLUGINS / kind).parts[0]
        for m in imports_of(path):
            other_method, other_task = _owner(m, "methods"), _owner(m, "tasks")
            if kind == "methods" and ((other_method and other_method != me) or other_task):
                offenders.setdefault(str(path.relative_to(ROOT)), []).append(m)
            if kind == "tasks" and (other_method or (other_task and other_task != me)):
                offenders.setdefault(str(path.relative_to(ROOT)), []).append(m)
    assert not offenders, f"plugins import other methods/tasks: {offenders}"


def test_no_import_circle_in_the_host():
    names = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in host_files()}

    def target(imported: str) -> str | None:
        """The host module an imported name lives in (the longest module prefix)."""
        parts = imported.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in names:
                return ".".join(parts[:i])
        return None

    # the package and the CLI package only tie the tree together
    edges = {a: {t for m in imports_of(p) if (t := target(m)) and t != a and t not in ("ddbench", "ddbench.cli")}
             for a, p in names.items()}
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        seen[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if seen.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in seen:
                found = visit(m)
                if found:
                    return found
        seen[n] = 2
        stack.pop()
        return None

    for n in sorted(edges):
        if n not in seen:
            cycle = visit(n)
            assert cycle is None, f"import circle: {' -> '.join(cycle)}"
