"""Progressive DL: which training cases each stage uses (pure functions)."""
