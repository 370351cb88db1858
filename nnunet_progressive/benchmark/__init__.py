"""Benchmarks: the spec (:mod:`.spec`), the runner and its executors (:mod:`.run`), per-run records
(:mod:`.results`), the report (:mod:`.report`) and the demo built on them (:mod:`.demo`). See ``docs/benchmark.md``."""
