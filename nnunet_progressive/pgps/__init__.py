"""Progressive Growing of Patch Size: the stage schedule (pure) and its report."""
