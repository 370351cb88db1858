"""The torchvision work-around (CPU torch beside a CUDA torchvision) applied inside a running process."""
import subprocess
import sys

import pytest

from nnunet_progressive.nnunet.compat import torchvision_import_broken

SCRIPT = """
import gc, importlib.util
import torch
from nnunet_progressive.nnunet.compat import install_in_this_process
install_in_this_process()
importlib.util.find_spec("torchvision")  # the work-around declares the operators here and steps aside
gc.collect()  # what a long process does sooner or later, e.g. in the middle of importing torchvision
assert hasattr(torch.ops.torchvision, "nms"), "the operator declaration was garbage-collected"
import torchvision
print("ok")
"""


@pytest.mark.skipif(not torchvision_import_broken(), reason="torchvision imports fine here: no work-around needed")
def test_operator_declaration_survives_garbage_collection():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
