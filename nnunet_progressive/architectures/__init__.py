"""Network input rules, training recipes and memory estimates per architecture (pure: no torch, no nnU-Net).

- :mod:`.memory`: what a planned convolutional network keeps per voxel (PGPS Performance's batch budget);
- :mod:`.input_rules`: which patches UNETR, SwinUNETR and Primus accept, and the planned patch adjusted to them;
- :mod:`.recipes`: optimiser, learning rate, clipping, precision and deep supervision as published, with sources;
- :mod:`.transformer_memory`: activation memory per sample of the transformers (attention is not linear in voxels),
  so PGPS Performance keeps its batch budget on them.
"""
