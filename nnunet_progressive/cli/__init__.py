"""The `nnprog` command line: one module per method or tool (see main.py)."""
