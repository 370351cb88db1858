#!/usr/bin/env bash
# Installs nnunet-progressive (editable) with its dependencies into the current Python environment.
# On a machine without an NVIDIA GPU it pins the CPU build of torch first, so that nnunetv2's
# dependencies (timm -> torchvision) do not pull the newest CUDA torch (several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_CPU_VERSION=${TORCH_CPU_VERSION:-2.13.0}
TORCHVISION_CPU_VERSION=${TORCHVISION_CPU_VERSION:-0.28.0}
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check -q "$@"; }

if "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "setup: using the installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
  echo "setup: NVIDIA GPU found: installing the ordinary (CUDA) torch"
  pip_install torch torchvision
else
  echo "setup: no GPU: installing torch==$TORCH_CPU_VERSION (CPU build) and torchvision==$TORCHVISION_CPU_VERSION"
  pip_install "torch==$TORCH_CPU_VERSION" "torchvision==$TORCHVISION_CPU_VERSION"
fi
# keep whatever torch is installed now: a constraint stops any dependency from replacing it
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$PYTHON" -c "import torch; print('torch==' + torch.__version__)" > "$constraints"
pip_install -c "$constraints" -e ".[test]"
echo "setup: done. nnprog $("$PYTHON" -c 'import nnunet_progressive; print(nnunet_progressive.__version__)') installed."
