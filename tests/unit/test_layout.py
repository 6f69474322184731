"""Dependencies point one way: cli above everything; connectors and api use pipeline; pipeline
uses models; models knows nothing above it. Read from the sources' import statements (ast)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# part -> top-level packages of this repository it must never import
FORBIDDEN = {
    "models": {"pipeline", "connectors", "api", "cli", "bench"},
    "pipeline": {"connectors", "api", "cli", "bench"},
    "connectors": {"api", "cli", "bench"},
    "api": {"connectors", "cli", "bench"},
}


def imported_packages(path: Path) -> set[str]:
    """Top-level names of every module ``path`` imports (absolute imports, anywhere in the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_a_part_imports_nothing_above_it(part: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) & FORBIDDEN[part])
        for path in sorted((ROOT / part).rglob("*.py"))
    }
    assert {f: bad for f, bad in offenders.items() if bad} == {}


def test_nothing_but_bench_and_tests_imports_the_command() -> None:
    users = [str(p.relative_to(ROOT)) for part in ("pipeline", "connectors", "api", "models")
             for p in (ROOT / part).rglob("*.py") if "cli" in imported_packages(p)]
    assert users == []


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from bench.results import write_results\n")
    assert "bench" in imported_packages(module)
