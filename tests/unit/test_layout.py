"""The package's shape: one import name, layers that point one way, and a package list that names every
folder (DESIGN.md, "Layout")."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Each layer may import the ones listed (and itself). The top-level package (the public API) and the
# harness may import everything.
ALLOWED = {
    "histories": set(),
    "checkers": {"histories"},
    "control": {"histories"},
    "nemesis": {"control", "histories"},
    "targets": {"control", "histories", "checkers"},
}
LAYERS = ("histories", "checkers", "control", "nemesis", "targets", "harness")


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _package_files(layer: str) -> list[Path]:
    return sorted(p for p in (ROOT / layer).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_no_layer_imports_a_higher_one(layer: str) -> None:
    wrong = []
    for path in _package_files(layer):
        for line, module in _imported_modules(path):
            parts = module.split(".")
            if parts[0] != "splitbrain" or len(parts) < 2:
                continue
            other = parts[1]
            if other in LAYERS and other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {module}")
    assert not wrong, f"{layer} may import only {sorted(ALLOWED[layer]) or 'nothing of the project'}:\n" + \
        "\n".join(wrong)


def test_every_import_of_the_project_goes_through_the_one_name() -> None:
    """``import harness`` would find an unrelated PyPI package once installed: every module of the
    project is imported as ``splitbrain.<layer>...``, never by its folder's bare name or relatively."""
    wrong = []
    for layer in LAYERS:
        for path in _package_files(layer):
            for line, module in _imported_modules(path):
                if module.split(".")[0] in LAYERS + ("control",) or module.startswith("."):
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not wrong, "\n".join(wrong)


def test_the_package_list_names_every_folder_of_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {"splitbrain"} | {
        "splitbrain." + ".".join(p.parent.relative_to(ROOT).parts)
        for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")
    }
    assert listed == folders


@pytest.mark.timeout(600)
def test_installing_the_project_adds_exactly_one_top_level_name(tmp_path: Path) -> None:
    """``pip install .`` into a clean virtual environment: the distribution's files all live under
    ``splitbrain/`` (plus its metadata and the console script), and ``splitbrain`` imports."""
    # From a copy: a build in place would leave build/ in the repository.
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "runs", "*.egg-info",
                                                                "__pycache__", ".hypothesis", "examples"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                    str(source)], check=True, timeout=480, cwd=tmp_path)
    probe = ("import importlib.metadata as m, json; d = m.distribution('splitbrain'); "
             "print(json.dumps([str(f) for f in d.files]))")
    files = json.loads(subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True,
                                      timeout=60, cwd=tmp_path).stdout)
    tops = {f.split("/")[0] for f in files if not f.startswith("../")}
    tops = {t for t in tops if not t.endswith(".dist-info")}
    assert tops == {"splitbrain"}, f"top-level names installed: {sorted(tops)}"
    assert any(f.endswith("bin/splitbrain") for f in files)
    assert not any(f.startswith(("splitbrain/tests/", "splitbrain/bench/")) for f in files)
    site = subprocess.run([str(python), "-c", "import splitbrain.harness.cli, sys; print(splitbrain.__file__)"],
                          check=True, capture_output=True, text=True, timeout=60, cwd=tmp_path).stdout
    assert str(venv) in site


def test_the_built_in_targets_use_only_the_public_api() -> None:
    """A plugin can do whatever a built-in target does: the targets' specs, target objects and clients
    import from the rest of splitbrain only names that ``splitbrain`` exports (their own package aside)."""
    import splitbrain

    public = set(splitbrain.__all__)
    wrong = []
    for path in sorted((ROOT / "targets").rglob("*.py")):
        if {"sim", "core", "server"} & set(path.parts):  # the Raft store itself, not its target
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("splitbrain."):
                if node.module.startswith("splitbrain.targets"):
                    continue
                wrong += [f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}.{a.name}"
                          for a in node.names if a.name not in public]
    assert not wrong, "not in the public API:\n" + "\n".join(wrong)


def test_every_public_name_resolves() -> None:
    import splitbrain

    for name in splitbrain.__all__:
        assert getattr(splitbrain, name) is not None, name
