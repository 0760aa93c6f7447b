"""docs/protocols/h323.md: its generated tables match the code (protocols/h323/docgen.py)."""
import pathlib

from protocols.h323 import docgen

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocols" / "h323.md"


def test_generated_sections_are_up_to_date():
    text = DOC.read_text(encoding="utf-8")
    assert docgen.render(text) == text, "run: python -m protocols.h323.docgen docs/protocols/h323.md"
    for name in docgen.SECTIONS:
        assert f"<!-- generated:{name} -->" in text
