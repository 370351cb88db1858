#!/usr/bin/env bash
# The test suite: lint, then unit and end-to-end tests (nnUNetv2_train/predict on CPU, tiny data).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2} nnUNet_def_n_proc=${nnUNet_def_n_proc:-1}
python3 -m ruff check .
python3 -m pytest tests -q --durations=15 "$@"
