"""docs/architecture.md carries the handler diagram generated from the transition table."""
from pathlib import Path

from callgw.callserver.handler import mermaid


def test_diagram_matches_the_table():
    text = (Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    assert mermaid() in text, "regenerate: python -m callgw.callserver.handler"
