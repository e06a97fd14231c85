#!/usr/bin/env bash
# The checks that need a GPU: run from the repository root on a machine with CUDA, in an environment
# holding lecturekit's dependencies and its `test` extra (pytest-xdist is used when installed).
#   bash tests/gpu/run.sh            logs go to $OUT (default: gpu-logs/)
#   GPU_CHECK_STEPS="1 3" GPU_CHECK_NOTEBOOKS="notebooks/0[5-9]_*.ipynb" bash tests/gpu/run.sh    a part of it
# 1. every technique with model and input on the GPU (tests/test_dtype_device.py, float64 side on CUDA);
# 2. every notebook in quick mode with the models on the GPU: the real models installed with lecturekit
#    (EfficientNet-Lite0, the original VGG-19), then SqueezeNet and stand-in weights for all five
#    torchvision ImageNet models (the Colab path);
# 3. the unit tests with this machine's torch and torchvision (on the CPU, as in CI).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-gpu-logs}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD:$PWD/tests/gpu${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg LECTUREKIT_OFFLINE=1
unset LECTUREKIT_DEVICE LECTUREKIT_MODEL LECTUREKIT_QUICK
parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then    # notebooks side by side, each kernel with a few CPU threads
  parallel=(-n "${GPU_CHECK_WORKERS:-6}" --dist loadscope); export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
fi
"$PY" - <<'PY'
import torch, torchvision
from lecturekit import config, zoo
assert torch.cuda.is_available(), "no CUDA device"
print("torch", torch.__version__, "torchvision", torchvision.__version__, "on", torch.cuda.get_device_name())
print("lecturekit picks", config.device(), "; the teaching model loads on",
      next(zoo.load("teaching").model.parameters()).device)
PY
failed=() n=0
step() {  # step TITLE COMMAND...: run it, keep its log in $OUT/stepN.log, remember a failure
  n=$((n + 1)); [[ "$STEPS" == *" $n "* ]] || return 0
  echo "== $n. $1"; shift
  "$@" > "$OUT/step$n.log" 2>&1 || failed+=("step $n: $*")
  tail -n 15 "$OUT/step$n.log"
}
STEPS=" ${GPU_CHECK_STEPS:-1 2 3 4} "
NB=(-m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-kernel-startup-timeout=300 "${parallel[@]}" ${GPU_CHECK_NOTEBOOKS:-notebooks})
EMPTY=$(mktemp -d) STANDINS=$(mktemp -d)
step "every technique on the GPU (float64) against the CPU (float32)" \
  "$PY" -m pytest -q -p no:cacheprovider -p float64_on_cuda tests/test_dtype_device.py
step "every notebook, quick mode, EfficientNet-Lite0 and VGG-19 on the GPU" env TORCH_HOME="$EMPTY" LECTUREKIT_QUICK=1 "$PY" "${NB[@]}"
[[ "$STEPS" == *" 3 "* ]] && "$PY" tests/standins.py "$STANDINS" >/dev/null
step "every notebook, quick mode, stand-ins for the five ImageNet models on the GPU" \
  env TORCH_HOME="$STANDINS" LECTUREKIT_STANDINS=1 LECTUREKIT_QUICK=1 LECTUREKIT_MODEL=squeezenet1_1 "$PY" "${NB[@]}"
step "unit tests (CPU) with this machine's torch" "$PY" -m pytest -q -p no:cacheprovider "${parallel[@]}" --ignore=tests/browser tests
rm -rf "$EMPTY" "$STANDINS"
if [ ${#failed[@]} = 0 ]; then echo "GPU checks passed"; else printf 'FAILED: %s\n' "${failed[@]}"; exit 1; fi
