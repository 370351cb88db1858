"""pgps."""
