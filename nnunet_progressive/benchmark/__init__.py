"""Benchmarks: the spec (:mod:`.spec`), the runner and its executors (:mod:`.run`), per-run records
(:mod:`.results`) and the report (:mod:`.report`). See ``docs/benchmark.md``."""
# Dataset converters for the paper's 15 tasks (official download layout -> nnU-Net raw): :mod:`.converters`,
# see docs/datasets.md.
