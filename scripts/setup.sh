#!/usr/bin/env bash
# Installs nnunet-progressive (editable) with its dependencies: into the active virtual/conda environment, or
# into ./.venv of this repository when none is active (created here; see scripts/python_env.sh).
# torch: an installed torch is kept. Otherwise, with an NVIDIA GPU, the ordinary torch from the package index;
# without one, torch==$TORCH_VERSION with torchvision==$TORCHVISION_VERSION (the newest torchvision would pull
# the newest torch). PyPI's torch for Linux is the CUDA build (several GB; it runs on a CPU too): set
# TORCH_INDEX_URL to PyTorch's CPU wheel index for the small CPU build. What was installed, and why, is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
pick_python_env
TORCH_VERSION=${TORCH_VERSION:-${TORCH_CPU_VERSION:-2.13.0}}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-${TORCHVISION_CPU_VERSION:-0.28.0}}
log=$(mktemp "${TMPDIR:-/tmp}/nnprog_setup.XXXXXX")
trap 'rm -f "$log"' EXIT

pip_install() {  # pip's output goes to a log, shown whole when pip fails
  if ! "$PYTHON" -m pip install --disable-pip-version-check --progress-bar off "$@" >"$log" 2>&1; then
    echo "setup: error: pip install $* failed; pip said:" >&2
    tail -n 60 "$log" >&2
    exit 1
  fi
}

echo "setup: installing into $SETUP_ENV_DESCRIPTION"
has_gpu=no
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then has_gpu=yes; fi
if "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "setup: keeping the installed torch $("$PYTHON" -c 'import torch; print(torch.__version__)')"
elif [ "$has_gpu" = yes ]; then
  echo "setup: NVIDIA GPU found: installing torch from the package index (a CUDA build)"
  pip_install torch torchvision
else
  index=()
  [ -n "${TORCH_INDEX_URL:-}" ] && index=(--index-url "$TORCH_INDEX_URL")
  echo "setup: no NVIDIA GPU: installing torch==$TORCH_VERSION and torchvision==$TORCHVISION_VERSION" \
       "${TORCH_INDEX_URL:+from $TORCH_INDEX_URL}"
  pip_install "${index[@]}" "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
# what is installed now, said as it is: the CUDA build of PyPI also trains on a CPU (-device cpu)
"$PYTHON" - "$has_gpu" <<'PY'
import sys
import torch
cuda = torch.version.cuda
build = f"CUDA {cuda} build" if cuda else "CPU-only build"
note = ""
if cuda and sys.argv[1] == "no":
    note = (" (no NVIDIA GPU here: it trains on the CPU with `-device cpu`; for the smaller CPU-only build set "
            "TORCH_INDEX_URL to PyTorch's CPU wheel index and run setup again in a new environment)")
print(f"setup: torch {torch.__version__}: the {build}{note}")
PY
# keep that torch: a constraint on its public version (a local label such as +cu130 or +cpu is no version
# the index knows) stops any dependency from replacing it
constraints=$(mktemp "${TMPDIR:-/tmp}/nnprog_constraints.XXXXXX")
trap 'rm -f "$log" "$constraints"' EXIT
"$PYTHON" -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > "$constraints"
pip_install -c "$constraints" -e ".[test]"
version=$("$PYTHON" -c 'import nnunet_progressive; print(nnunet_progressive.__version__)')
echo "setup: done: nnunet-progressive $version in $SETUP_ENV_DESCRIPTION"
echo "setup: the commands: $(dirname "$PYTHON")/nnprog, nnUNetv2_train, nnUNetv2_predict"
