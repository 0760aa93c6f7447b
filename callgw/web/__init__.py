"""web: see the modules' docstrings."""
