"""proxy: see the modules' docstrings."""
