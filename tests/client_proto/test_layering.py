"""House rules for protocols/client: sans-I/O, no callgw imports, no clock reads, no print,
module docstrings, modules under about 600 lines."""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "protocols" / "client"
MODULES = sorted(ROOT.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_rules(path):
    source = path.read_text()
    tree = ast.parse(source)
    if path.name != "__init__.py":
        assert ast.get_docstring(tree), "module docstring"
    assert len(source.splitlines()) <= 600
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert not name.startswith(("callgw", "twisted.internet", "socket", "time")), name
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print"
        if isinstance(node, ast.ExceptHandler):
            assert node.type is not None, "bare except"
