"""client: see the modules' docstrings."""
