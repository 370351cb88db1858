"""Pure analysis of finished runs (tables, statistics, plots); no nnU-Net, GPU or training needed."""
