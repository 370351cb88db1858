#!/usr/bin/env bash
# One GPU session of about 6.5 minutes: the per-architecture PGPS check, then real nnU-Net training iterations per
# PGPS stage with loaders. Run from the repository root on a machine whose python3 has torch (CUDA) but not
# nnU-Net; the other packages come as wheels in .whl/ (SimpleITK as an xz tarball of its wheel's contents, to fit
# the 64 MiB a device call carries):
#
#     bash scripts/gpu_session.sh          # device call: carry [".whl"], timeout_s 420
#
# Results (at most 8 files) land in $OUT (default /tmp/gpu_session_out):
#   session.log                          everything printed (versions, nvidia-smi, both checks)
#   gpu_check_architectures.{csv,md,png} per network, PGPS mode and stage: peak GPU memory above the resident
#                                        weights and its ratio to the planned stage's, the estimate, voxels/s
#   gpu_check.{json,md,png}              nnUNetTrainer_PGPS_Performance per stage: peak memory, loader and
#                                        network voxels/s, waiting share, step time with the loader and of the
#                                        network alone (12 workers, eager mode); with every stage measured, the
#                                        run's time ratio from both against the voxel ideal
#   pgps_logs.tar.gz                     preprocessing and training logs, gpu_check.csv
#
# Each check runs under `timeout` and rewrites its results after every stage, so a hang or a slow stage still
# returns what was measured. SESSION_SECONDS (default 395) is the wall time the whole script may use; ARCH_ARGS and
# PGPS_ARGS replace the checks' default arguments (e.g. PGPS_ARGS="--cases 8 --stages first,last" to count compile
# graphs, at about a minute of compilation per stage).
# CPU rehearsal of the same steps (tiny networks, quick data): SMOKE=1 WHEELS=<wheel folder> bash scripts/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_session_out}
WHEELS=${WHEELS:-.whl}
PYTHON=${PYTHON:-python3}
SESSION_SECONDS=${SESSION_SECONDS:-395}
SMOKE=${SMOKE:-0}
WORK=${WORK:-/tmp/gpu_session_work}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT" "$WORK"

remaining() { echo $((SESSION_SECONDS - SECONDS)); }

session() {
  echo "== gpu_session.sh: $(date -u +%FT%TZ), budget ${SESSION_SECONDS} s, smoke ${SMOKE}"
  echo "== install: ${WHEELS} -> ${SITE}"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
    "$WHEELS"/*.whl || { echo "wheel install failed"; return 1; }
  for archive in "$WHEELS"/*.tar.xz; do
    [ -e "$archive" ] || continue
    tar -xJf "$archive" -C "$SITE" 2>/dev/null || "$PYTHON" -c "import sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    archive.extractall(sys.argv[2], **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
" "$archive" "$SITE" || { echo "cannot unpack $archive"; return 1; }
  done
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
  export PATH="$SITE/bin:$PATH"  # nnUNetv2_* console scripts of the wheels installed with --target
  echo "== installed in ${SECONDS} s"
  nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
  "$PYTHON" - <<'EOF' || echo "WARNING: an import failed (above); the checks run anyway"
import importlib.metadata as m, platform, torch
names = ["torch", "numpy", "nnunetv2", "dynamic_network_architectures", "batchgenerators", "batchgeneratorsv2",
         "acvl_utils", "blosc2", "SimpleITK", "nibabel", "monai", "timm", "torchvision", "pydantic", "scipy",
         "scikit-image"]
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return "missing"
print("python", platform.python_version(), "|", " | ".join(f"{n} {version(n)}" for n in names))
print("cuda", torch.cuda.is_available(), torch.version.cuda,
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
import nnunetv2.training.nnUNetTrainer.nnUNetTrainer, monai.networks.nets, SimpleITK  # noqa: E401,F401
import nnunet_progressive
from nnunet_progressive.nnunet.orchestration.discovery import trainers_directory
print("nnunet_progressive", nnunet_progressive.__version__, "trainers in", trainers_directory())
EOF

  if [ "$SMOKE" = 1 ]; then
    arch_args=(--device cpu --tiny --iterations 1 --stages 3)
    pgps_args=(--quick)
  else
    arch_args=(--iterations 3 --stages 8)
    pgps_args=(--cases 8 --stages all --no-compile --workers 12 --iterations 10 --warmup 2)
  fi
  # shellcheck disable=SC2206  # word splitting of the overrides is intended
  [ -n "${ARCH_ARGS:-}" ] && arch_args=(${ARCH_ARGS})
  # shellcheck disable=SC2206
  [ -n "${PGPS_ARGS:-}" ] && pgps_args=(${PGPS_ARGS})

  # 1. every architecture and PGPS mode on random data (about 2-3 min on an H200)
  local arch_limit=$(( $(remaining) - 150 < 210 ? $(remaining) - 150 : 210 ))
  echo "== [$SECONDS s] gpu_check_architectures.py, limit ${arch_limit} s"
  timeout -k 10 "$arch_limit" "$PYTHON" scripts/gpu_check_architectures.py --out "$WORK/arch" \
    --budget-seconds $((arch_limit - 35)) "${arch_args[@]}"
  echo "== [$SECONDS s] gpu_check_architectures.py exit $?"

  # 2. real nnU-Net training iterations per stage with loaders (data generation and preprocessing included)
  local pgps_limit=$(( $(remaining) - 15 ))
  if [ "$pgps_limit" -lt 100 ]; then
    echo "== [$SECONDS s] gpu_check_pgps.py skipped: ${pgps_limit} s left"
  else
    local budget_minutes
    budget_minutes=$("$PYTHON" -c "print(round(($pgps_limit - 45) / 60, 2))")
    echo "== [$SECONDS s] gpu_check_pgps.py, limit ${pgps_limit} s, stage budget ${budget_minutes} min"
    timeout -k 10 "$pgps_limit" "$PYTHON" scripts/gpu_check_pgps.py --workspace "$WORK/pgps" \
      --budget-minutes "$budget_minutes" "${pgps_args[@]}"
    echo "== [$SECONDS s] gpu_check_pgps.py exit $?"
  fi
}

session 2>&1 | tee "$OUT/session.log"
status=${PIPESTATUS[0]}
for name in gpu_check_architectures.csv gpu_check_architectures.md gpu_check_architectures.png; do
  [ -f "$WORK/arch/$name" ] && cp "$WORK/arch/$name" "$OUT/"
done
for name in gpu_check.json gpu_check.md gpu_check.png; do
  [ -f "$WORK/pgps/$name" ] && cp "$WORK/pgps/$name" "$OUT/"
done
if [ -d "$WORK/pgps" ]; then
  (
    cd "$WORK/pgps" || exit
    logs=()
    for name in preprocess.log gpu_check.csv; do [ -f "$name" ] && logs+=("$name"); done
    while IFS= read -r name; do logs+=("$name"); done < <(find nnUNet_results -name 'training_log_*.txt' 2>/dev/null)
    [ "${#logs[@]}" -gt 0 ] && tar -czf "$OUT/pgps_logs.tar.gz" "${logs[@]}"
  )
fi
echo "== [$SECONDS s] done (status $status); in $OUT:" | tee -a "$OUT/session.log"
ls -la "$OUT" | tee -a "$OUT/session.log"
exit "$status"
