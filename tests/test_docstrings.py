"""Module docstrings name test files that exist: every module under callgw/ and protocols/
starts with a docstring (an empty package ``__init__`` aside), and a module other than a package's ``__init__`` names (as
``tests/....py``) the test file that exercises it; every test file named exists."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMED = re.compile(r"\btests/[\w/.-]*?\.py\b")
MODULES = sorted(p for package in ("callgw", "protocols") for p in (ROOT / package).rglob("*.py"))


def docstring(path: Path) -> str | None:
    return ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"), str(path)))


def test_modules_are_found():
    assert len(MODULES) > 50


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docstring_names_test_files_that_exist(path):
    doc = docstring(path)
    if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
        return                                  # an empty package marker
    assert doc, f"{path.relative_to(ROOT)} has no module docstring"
    named = NAMED.findall(doc)
    missing = [n for n in named if not (ROOT / n).is_file()]
    assert not missing, f"{path.relative_to(ROOT)} names test files that do not exist: {missing}"
    if path.name != "__init__.py":
        assert named, f"{path.relative_to(ROOT)}'s docstring names no test file (tests/....py)"
