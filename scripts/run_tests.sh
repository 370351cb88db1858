#!/usr/bin/env bash
# The test suite: lint, then unit and end-to-end tests (nnUNetv2_train/predict on CPU, tiny data).
# Test files run in parallel (pytest-xdist, one file per worker at a time; NNPROG_TEST_WORKERS, default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2} nnUNet_def_n_proc=${nnUNet_def_n_proc:-1}
python3 -m ruff check .
python3 -m pytest tests -q --durations=15 -n "${NNPROG_TEST_WORKERS:-2}" --dist loadfile "$@"
