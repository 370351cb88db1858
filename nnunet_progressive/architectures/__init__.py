"""Network input rules and memory estimates, pure (no torch): what a planned network needs and keeps."""
