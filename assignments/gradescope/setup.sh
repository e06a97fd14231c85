#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the grading image (with network access).
# It makes a virtual environment with the CPU build of the torch the course was tested with, the
# lecturekit wheel that came in this zip and the otter-grader that built it (requirements.txt), so
# that grading a submission downloads nothing.
#
# For a run elsewhere (assignments/gradescope.py runs it so), these may be set:
#   LECTUREKIT_AUTOGRADER_DIR  the folder holding source/ (Gradescope's: /autograder)
#   LECTUREKIT_TORCH_INDEX     the index of CPU torch wheels; empty: pip's own configuration
#   LECTUREKIT_PYTHON          the Python (3.10 or later) to make the environment with
set -euo pipefail
AUTOGRADER_DIR="${LECTUREKIT_AUTOGRADER_DIR:-/autograder}"
TORCH_INDEX="${LECTUREKIT_TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
PYTHON="${LECTUREKIT_PYTHON:-python3}"
VENV="$AUTOGRADER_DIR/venv"

if ! "$PYTHON" -c 'import sys, ensurepip, venv; assert sys.version_info >= (3, 10)' 2>/dev/null; then
  # Gradescope's Ubuntu images have Python 3.10 or later, not always with its venv module
  apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null
fi
"$PYTHON" -m venv "$VENV"
cd "$AUTOGRADER_DIR/source"
# torch and torchvision first, from the CPU wheels: PyPI's Linux wheels bring CUDA, gigabytes no grader needs
"$VENV/bin/python" -m pip install -q ${TORCH_INDEX:+--index-url "$TORCH_INDEX"} \
  $(grep -E '^(torch|torchvision)==' requirements.txt)
"$VENV/bin/python" -m pip install -q -r requirements.txt
"$VENV/bin/python" - <<'PY'
from importlib.metadata import version
print("grading environment:", ", ".join(f"{p} {version(p)}" for p in ["torch", "torchvision", "lecturekit", "otter-grader"]))
PY
