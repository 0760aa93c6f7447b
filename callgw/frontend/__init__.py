"""frontend: see the modules' docstrings."""
