"""MONAI as an optional extra: imported only when a MONAI network is built, with one clear message if absent."""
from __future__ import annotations

import importlib
from types import ModuleType

from nnunet_progressive.core.errors import ProgressiveConfigError

MONAI_RANGE = (1, 5), (1, 7)  # tested with 1.6.1; 1.5 removed SwinUNETR's img_size (our builders rely on that)
INSTALL_HINT = 'pip install "nnunet-progressive[transformers]"  (or: pip install "monai>=1.5,<1.7")'


def require_monai(what: str) -> ModuleType:
    """``monai``, or a :class:`ProgressiveConfigError` naming ``what`` needs it and how to install it."""
    try:
        monai = importlib.import_module("monai")
    except ImportError as error:
        raise ProgressiveConfigError(
            f"{what} needs MONAI, which is not installed ({error}); install the optional extra: {INSTALL_HINT}"
        ) from None
    version = tuple(int(part) for part in monai.__version__.split(".")[:2] if part.isdigit())
    low, high = MONAI_RANGE
    if not low <= version < high:
        raise ProgressiveConfigError(
            f"{what} needs MONAI >= {low[0]}.{low[1]} and < {high[0]}.{high[1]}, found {monai.__version__}; "
            f"{INSTALL_HINT}"
        )
    return monai
