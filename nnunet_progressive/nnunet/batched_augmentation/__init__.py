"""nnU-Net 2.8.1's training augmentation, batched: the same transforms, order, probabilities and ranges, drawn
per sample and applied to the whole batch on the training device (issue #21)."""
