#!/usr/bin/env bash
# Release path check (`make test-wheel`, run by .ci/run after `make test`):
#   1. `python -m build` → dist/cotbal_plugin-<v>.tar.gz and a wheel built FROM that sdist;
#   2. a fresh virtual environment gets the torch set, then the WHEEL (not the source tree, not editable);
#   3. .ci/wheel_smoke.py, run by that environment's python from a folder outside the clone and without PYTHONPATH,
#      trains a tiny Llama with `loss: cotbal` through the installed .pth and checks task_loss/<task> in
#      trainer_state.json.
# Nothing is downloaded twice: the wheels are kept outside the clone, in $PIP_CACHE_DIR/cotbal-wheelhouse
# (PIP_CACHE_DIR is ~/.cache/pip by default; COTBAL_WHEELHOUSE overrides the folder).
# Environment: PYTHON (interpreter of the fresh venv, python3.11), BUILD_PYTHON (has `build`; .venv/bin/python),
# TORCH_PKGS (from the Makefile), WHEEL_VENV (build/wheel-venv; recreated each run, removed on success unless
# KEEP_WHEEL_VENV=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3.11}
BUILD_PYTHON=${BUILD_PYTHON:-.venv/bin/python}
TORCH_PKGS=${TORCH_PKGS:-torch==2.11.0 torchvision==0.26.0 torchaudio==2.11.0}
VENV=${WHEEL_VENV:-build/wheel-venv}
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-$HOME/.cache/pip}" PIP_DISABLE_PIP_VERSION_CHECK=1
WHEELHOUSE=${COTBAL_WHEELHOUSE:-$PIP_CACHE_DIR/cotbal-wheelhouse}
unset PYTHONPATH
start=$SECONDS
stamp() { echo "[test-wheel] $1 ($((SECONDS - start)) s)"; }

rm -rf dist "$VENV"
mkdir -p build "$(dirname "$VENV")"
VENV="$(cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"
"$BUILD_PYTHON" -m build --outdir dist . > build/test-wheel-build.log 2>&1 \
  || { tail -n 40 build/test-wheel-build.log; echo "[test-wheel] python -m build failed"; exit 1; }
shopt -s nullglob
wheels=(dist/cotbal_plugin-*-py3-none-any.whl)
sdists=(dist/cotbal_plugin-*.tar.gz)
[ ${#wheels[@]} -eq 1 ] && [ ${#sdists[@]} -eq 1 ] || { echo "[test-wheel] expected one wheel and one sdist in dist/"; exit 1; }
stamp "built ${sdists[0]} and ${wheels[0]}"

"$PYTHON" -m venv "$VENV"
# Every wheel of the environment (torch set + the project's dependencies) is kept in a wheelhouse outside the
# clone: pip's HTTP cache cannot be relied on (it only stores responses that carry cache headers), so the wheels
# are kept as files. A run installs from the wheelhouse alone (no network); only when something is missing (first
# run, a new dependency) does `pip wheel` fill it from the index. --no-compile: byte-compiling torch's thousands of
# modules would take most of the install time; Python compiles what the smoke test imports.
install() { "$VENV/bin/python" -m pip install -q --no-compile --no-index --find-links "$WHEELHOUSE" "$@"; }
mkdir -p "$WHEELHOUSE"
# shellcheck disable=SC2086  # TORCH_PKGS is a list of requirements
if install $TORCH_PKGS "${wheels[0]}" > build/test-wheel-pip.log 2>&1; then
  stamp "fresh venv $VENV: $TORCH_PKGS and ${wheels[0]} from the wheelhouse $WHEELHOUSE"
else
  stamp "wheelhouse $WHEELHOUSE incomplete; filling it from the package index"
  # shellcheck disable=SC2086
  "$VENV/bin/python" -m pip wheel -q -w "$WHEELHOUSE" $TORCH_PKGS "${wheels[0]}"
  rm -f "$WHEELHOUSE"/cotbal_plugin-*.whl  # the wheel under test always comes from dist/
  # shellcheck disable=SC2086
  install $TORCH_PKGS "${wheels[0]}"
  stamp "fresh venv $VENV: $TORCH_PKGS and ${wheels[0]} installed"
fi
"$VENV/bin/python" -m pip check > /dev/null || { "$VENV/bin/python" -m pip check; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$VENV/bin/python" "$ROOT/.ci/wheel_smoke.py" "$work")
stamp "smoke test passed"
if [ "${KEEP_WHEEL_VENV:-0}" != 1 ]; then rm -rf "$VENV"; fi
echo "[test-wheel] passed in $((SECONDS - start)) s"
