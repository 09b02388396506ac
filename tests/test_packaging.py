"""The project's packaging promises: the layer's requirements equal the package's, the core
library is typed, and no code reaches around the package layout with sys.path."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _requirements(lines: list[str]) -> set[str]:
    return {line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")}


def test_layer_requirements_match_the_package_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    layer = (ROOT / "layers/core/requirements.txt").read_text().splitlines()
    assert _requirements(layer) == set(project["dependencies"])


def test_core_library_is_typed() -> None:
    assert (ROOT / "layers/core/contactsync/py.typed").exists()


def test_no_sys_path_manipulation() -> None:
    offenders = []
    for folder in ("layers", "sandboxes", "functions", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "sys.path" in text and path.name != "test_packaging.py":
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
