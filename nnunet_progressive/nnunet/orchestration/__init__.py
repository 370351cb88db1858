"""nnU-Net's own commands run as processes (:mod:`.runner`) and where they find the package's trainers
(:mod:`.discovery`). Used by the CLI and the benchmark; imports neither."""
