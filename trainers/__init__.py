"""Trainer modules that nnU-Net finds through ``nnUNet_extTrainer`` (see ``nnprog env``)."""
