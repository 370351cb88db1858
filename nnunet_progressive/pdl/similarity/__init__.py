"""PDL image similarity: metrics, registration, pair comparison and ranking (no nnU-Net, no torch)."""
