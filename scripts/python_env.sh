# Sourced by setup.sh, demo.sh and run_tests.sh: picks the Python environment nnunet-progressive lives in and
# sets PYTHON to its interpreter. In order: $PYTHON if given; the active virtual environment or conda
# environment; else ./.venv of this repository (created when missing), so a system Python managed by the
# distribution (PEP 668, "externally-managed-environment") is never installed into.
# Needs: the repository root as the current directory. SETUP_BASE_PYTHON: the Python that makes ./.venv (default
# python3). No variable here starts with NNPROG: the trainers refuse NNPROG_* names that are no knob.

python_env_fail() { echo "setup: error: $*" >&2; exit 2; }

pick_python_env() {
  if [ -n "${PYTHON:-}" ] && [ -n "${SETUP_ENV_DESCRIPTION:-}" ]; then
    :  # picked already by the script that called this one
  elif [ -n "${PYTHON:-}" ]; then
    SETUP_ENV_DESCRIPTION="the Python you named (PYTHON=$PYTHON)"
  elif [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PYTHON="$VIRTUAL_ENV/bin/python"
    SETUP_ENV_DESCRIPTION="the active virtual environment $VIRTUAL_ENV"
  elif [ -n "${CONDA_PREFIX:-}" ] && [ -x "$CONDA_PREFIX/bin/python" ]; then
    PYTHON="$CONDA_PREFIX/bin/python"
    SETUP_ENV_DESCRIPTION="the active conda environment $CONDA_PREFIX"
  else
    local venv="$PWD/.venv" base=${SETUP_BASE_PYTHON:-python3}
    if [ ! -x "$venv/bin/python" ]; then
      command -v "$base" >/dev/null 2>&1 || python_env_fail "no python3 on PATH; install Python 3.10 or newer"
      "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
        || python_env_fail "$("$base" -V 2>&1) is too old; nnunet-progressive needs Python 3.10 or newer"
      echo "setup: no virtual environment is active: creating one in $venv"
      "$base" -m venv "$venv" 2>/tmp/nnprog_venv_error.$$ || {
        cat /tmp/nnprog_venv_error.$$ >&2; rm -f /tmp/nnprog_venv_error.$$
        python_env_fail "could not create $venv; on Debian/Ubuntu install the venv module" \
          "(apt-get install python3-venv) or activate an environment of your own and run again"
      }
      rm -f /tmp/nnprog_venv_error.$$
    fi
    PYTHON="$venv/bin/python"
    SETUP_ENV_DESCRIPTION="the virtual environment $venv (new shells: source $venv/bin/activate)"
  fi
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
    || python_env_fail "$PYTHON is not Python 3.10 or newer ($("$PYTHON" -V 2>&1)); nnunet-progressive needs 3.10+"
  # the environment's own commands (nnprog, nnUNetv2_train) come first for everything this script runs
  PATH="$(dirname "$PYTHON"):$PATH"
  export PYTHON PATH SETUP_ENV_DESCRIPTION
}
