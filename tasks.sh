#!/usr/bin/env bash
# Set-up and go, from nothing, on a Debian/Ubuntu machine with Python 3.11:
#   bash tasks.sh lab    install everything, then open JupyterLab on notebooks/
#   bash tasks.sh test   install everything, then run every test (unit tests, browser tests, every notebook,
#                        and, in a second environment with Google Colab's packages, tests/colab)
# The virtual environment lives in .venv (override with LECTUREKIT_VENV).
set -euo pipefail
cd "$(dirname "$0")"
VENV=${LECTUREKIT_VENV:-.venv}
PY="$VENV/bin/python"
COLAB_VENV=${LECTUREKIT_COLAB_VENV:-.venv-colab}     # Google Colab's packages, for the tests in tests/colab

apt_install() {
  # apt_install PACKAGE WHY: install a Debian package where we are root or have passwordless sudo.
  command -v apt-get >/dev/null || { echo "note: no apt-get; $2"; return 0; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      echo "note: not root; $2: sudo apt-get install $1"; return 0; fi
  fi
  { $sudo apt-get update -qq && $sudo apt-get install -y -qq "$1" >/dev/null; } \
    || echo "note: $1 could not be installed; $2"
}

install_dataset() {
  # Fashion-MNIST from Debian (retraining the teaching models and notebook 18 use it).
  [ -d /usr/share/datasets/fashion-mnist ] || \
    apt_install dataset-fashion-mnist "Fashion-MNIST is needed to retrain the models and for notebook 18"
}

install_browser() {
  # Debian's Chromium for the browser tests of the widgets (they skip, saying so, without it).
  command -v chromium >/dev/null || apt_install chromium "the browser tests of the widgets will be skipped"
}

install_slides() {
  # reveal.js and MathJax from the npm registry (npm pack, once, into ~/.cache/lecturekit/npm): the decks
  # inline them, and the browser test of the slides builds decks offline from that copy.
  command -v npm >/dev/null || apt_install npm "the browser test of the slides will be skipped"
  "$PY" -m lecturekit download slides || echo "note: no reveal.js and MathJax; the browser test of the slides will say why"
}

install() {
  install_dataset
  [ -x "$PY" ] || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  # The exact torch this project is tested with; lecturekit's own metadata only asks for compatible ranges.
  "$PY" -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[lab,test]"
  # The paintings (Wikimedia's, else The Starry Night and The Scream out of Debian's opencv-doc and
  # darknet) and the sample photos from those packages, into ~/.cache/lecturekit, which the
  # notebooks read even with a fresh TORCH_HOME. Done once; what cannot be had is said in a line
  # and the notebooks use bundled photos in its place, so it never fails the install.
  "$PY" -m lecturekit download paintings photos || true
}

install_colab() {
  # A second environment with Colab's packages at Colab's versions (tests/colab/constraints.txt) and the
  # test tools, but without lecturekit: there the notebooks' own setup cells install it, as on Colab.
  [ -x "$COLAB_VENV/bin/python" ] || python3 -m venv "$COLAB_VENV"
  "$COLAB_VENV/bin/python" -m pip install -q --upgrade pip
  "$COLAB_VENV/bin/python" -m pip install -q -c tests/colab/constraints.txt \
    $(sed -n 's/^\([A-Za-z][A-Za-z0-9_.-]*\)==.*/\1/p' tests/colab/constraints.txt) pytest nbclient nbformat
}

run_colab_tests() {
  echo "== Colab's packages (.venv-colab): installing replaces none, every notebook alone through its setup cell, an upload, the widget protocol"
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHEEL_DIR" .
  LECTUREKIT_COLAB_WHEEL=$(ls "$WHEEL_DIR"/lecturekit-*.whl) "$COLAB_VENV/bin/python" -m pytest -q -m colab \
    -p no:cacheprovider tests/colab
  echo "== the widget tests and the explorer's with Colab's ipywidgets 7"
  "$COLAB_VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_widgets.py tests/test_explorer.py
}

run_tests() {
  EMPTY_HOME=$(mktemp -d) STANDIN_HOME=$(mktemp -d) WHEEL_DIR=$(mktemp -d)
  trap 'rm -rf "$EMPTY_HOME" "$STANDIN_HOME" "$WHEEL_DIR"' EXIT
  export LECTUREKIT_OFFLINE=1 LECTUREKIT_DEVICE=cpu MPLBACKEND=Agg
  echo "== lint (ruff; the rules are in pyproject.toml)"
  "$PY" -m ruff check lecturekit tests benchmarks notebooks assignments
  echo "== unit tests"
  "$PY" -m pytest -q tests
  echo "== the instructor kit as the README says: build and grade, otter run, the Gradescope zip in a fresh venv, offline"
  "$PY" -m pytest -q -m instructor -p no:cacheprovider tests/test_instructor.py
  echo "== the widgets, the explorer and the slides in a real browser (JupyterLab, the explorer page in Voila, decks of notebooks 06 and 15; headless Chromium)"
  "$PY" -m pytest -q -rs -m browser tests/browser
  local chosen=(notebooks/0*.ipynb notebooks/1[0-3]_*.ipynb notebooks/17_*.ipynb notebooks/19_*.ipynb)   # the notebooks that use the chosen model
  echo "== every notebook, quick mode, the real ImageNet models installed with lecturekit (empty torch cache)"
  TORCH_HOME="$EMPTY_HOME" LECTUREKIT_QUICK=1 "$PY" -m pytest -q --nbval-lax --nbval-current-env -p no:cacheprovider notebooks
  echo "== every notebook, quick mode, LECTUREKIT_MODEL=squeezenet1_1 and stand-in weights for all five torchvision models"
  "$PY" tests/standins.py "$STANDIN_HOME" squeezenet1_1 alexnet vgg16 resnet18 vit_b_16 >/dev/null
  TORCH_HOME="$STANDIN_HOME" LECTUREKIT_STANDINS=1 LECTUREKIT_QUICK=1 LECTUREKIT_MODEL=squeezenet1_1 "$PY" -m pytest -q \
    --nbval-lax --nbval-current-env -p no:cacheprovider notebooks
  echo "== the notebooks that use the chosen model, with LECTUREKIT_MODEL=resnet18 (stand-in weights)"
  TORCH_HOME="$STANDIN_HOME" LECTUREKIT_STANDINS=1 LECTUREKIT_QUICK=1 LECTUREKIT_MODEL=resnet18 "$PY" -m pytest -q --nbval-lax \
    --nbval-current-env -p no:cacheprovider "${chosen[@]}"
  echo "== the notebooks that use the chosen model, with LECTUREKIT_MODEL=teaching (the fallback without the weights package)"
  TORCH_HOME="$EMPTY_HOME" LECTUREKIT_QUICK=1 LECTUREKIT_MODEL=teaching "$PY" -m pytest -q --nbval-lax \
    --nbval-current-env -p no:cacheprovider "${chosen[@]}"
  run_colab_tests
}

case "${1:-}" in
  lab)  install; shift
        root=(); [ "$(id -u)" = 0 ] && root=(--allow-root)      # JupyterLab refuses root without it
        exec "$VENV/bin/jupyter" lab notebooks/ "${root[@]}" "$@" ;;
  test) install; install_browser; install_slides; install_colab; run_tests ;;
  *)    echo "usage: bash tasks.sh lab|test" >&2; exit 2 ;;
esac
