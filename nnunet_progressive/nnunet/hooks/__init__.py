"""The hooks nnU-Net trainers run: the mixins the variant factory composes (run state, PGPS, PDL, fine-tuning,
stopping, networks) and the parts they use inside the training process (loaders, compile, seeding, checks)."""
