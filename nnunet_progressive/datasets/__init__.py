"""Datasets without a download (synthetic presets, MNI152), nnU-Net preparation, and the 15 benchmark converters."""
