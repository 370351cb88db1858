#!/usr/bin/env bash
# The test suite: install (scripts/setup.sh), lint, then unit and end-to-end tests (nnUNetv2_train/predict on CPU,
# tiny data) in the environment setup.sh installed into. Test files run in parallel (pytest-xdist, one file per
# worker at a time, the longest files first: tests/conftest.py orders them; NNPROG_TEST_WORKERS, default 2). Extra
# arguments go to pytest: --run-long adds the tests marked long (more end-to-end scenarios of trainers the default
# run covers, and the shipped benchmark specs through real trainings).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
pick_python_env
bash scripts/setup.sh
export nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2} nnUNet_def_n_proc=${nnUNet_def_n_proc:-1}
"$PYTHON" -m ruff check .
"$PYTHON" -m pytest tests -q --durations=15 -n "${NNPROG_TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
