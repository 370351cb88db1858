"""The transformer networks inside nnU-Net: MONAI's UNETR and SwinUNETR, nnU-Net's Primus, with embeddings
that follow the token grid of whatever patch they are given (PGPS stages), the planned grid being the stored one.

MONAI is an optional extra (``pip install "nnunet-progressive[transformers]"``): nothing here imports it at
module import time; the builders do, and fail with one clear message when it is missing.
"""
