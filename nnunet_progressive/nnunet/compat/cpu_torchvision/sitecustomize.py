"""Declares torchvision's operator schemas before torchvision is imported (CPU torch + CUDA torchvision).

Put on PYTHONPATH by ``nnprog env`` only where ``import torchvision`` is broken; see
``nnunet_progressive.nnunet.compat``. Costs nothing until something imports torchvision.
"""
import importlib.abc
import sys


class _DeclareTorchvisionOperators(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        try:
            import torch

            if torch.version.cuda is None and not hasattr(torch.ops.torchvision, "nms"):
                library = torch.library.Library("torchvision", "DEF")
                library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
                _DeclareTorchvisionOperators.library = library  # keep the registration alive
        except Exception:  # never break an import because of this work-around
            pass
        return None


sys.meta_path.insert(0, _DeclareTorchvisionOperators())
