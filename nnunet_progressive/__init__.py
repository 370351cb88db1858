"""nnunet-progressive: progressive training strategies for stock nnU-Net v2."""
from nnunet_progressive._version import __version__

__all__ = ["__version__"]
