"""Declared dependencies match the code: every third-party module media_search imports is
declared in pyproject.toml, and every declared requirement holds for what the tests run with
(so a lower bound is never below the versions tested)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(folder: Path) -> set[str]:
    """Top-level names of every absolute import in ``folder`` (inside functions too)."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names


def _declared(requirements: list[str]) -> dict[str, Requirement]:
    return {_norm(r.name): r for r in map(Requirement, requirements)}


def test_every_third_party_import_is_declared() -> None:
    third_party = sorted(n for n in _imports(ROOT / "media_search") if n not in sys.stdlib_module_names and n != "media_search")
    assert third_party, "no imports found"
    # Runtime extras (not the test and bench tools) declare the optional models' packages, which
    # the code imports only when such a model is chosen (e.g. transformers for SigLIP).
    extras = [r for g, reqs in PROJECT["optional-dependencies"].items() if g not in ("test", "bench") for r in reqs]
    declared = _declared(PROJECT["dependencies"] + extras)
    owners = packages_distributions()
    missing = []
    for name in third_party:
        dists = {_norm(d) for d in owners.get(name, [])}
        if not dists:
            missing.append(f"{name} (not installed here either)")
        elif not dists & declared.keys():
            missing.append(f"{name} (from {', '.join(sorted(dists))})")
    assert not missing, f"imported by media_search/ but not in [project] dependencies or a runtime extra: {missing}"


@pytest.mark.parametrize("group", ["dependencies", "test", "multimodal", "ray"])
def test_installed_versions_satisfy_the_declared_ranges(group: str) -> None:
    """The versions the tests run with lie inside the ranges users get (lower bounds not below them)."""
    requirements = PROJECT["dependencies"] if group == "dependencies" else PROJECT["optional-dependencies"][group]
    outside = []
    for req in map(Requirement, requirements):
        try:
            have = version(req.name)
        except PackageNotFoundError:
            outside.append(f"{req} (not installed)")
            continue
        if not req.specifier.contains(have, prereleases=True):
            outside.append(f"{req} (installed {have})")
        assert req.specifier, f"{req.name} has no version bound"
    assert not outside, outside


def test_quickstart_installs_the_declared_torch() -> None:
    declared = _declared(PROJECT["dependencies"])
    script = (ROOT / "scripts" / "venv.sh").read_text()
    for name in ("torch", "torchvision"):
        assert f'"{name}{declared[name].specifier}"' in script, f"scripts/venv.sh and pyproject.toml disagree on {name}"
