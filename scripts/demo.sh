#!/usr/bin/env bash
# The quick start: install (scripts/setup.sh), then `nnprog demo` in that environment. Arguments go to the demo
# (e.g. --workspace DIR); `nnprog demo --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
pick_python_env
bash scripts/setup.sh
nnprog demo "$@"
