#!/usr/bin/env bash
# usage: .ci/wheelhouse.sh PYTHON [pip install arguments...]
#
# `pip install` through a wheelhouse kept outside the clone ($COTBAL_WHEELHOUSE, default
# $PIP_CACHE_DIR/cotbal-wheelhouse, PIP_CACHE_DIR defaulting to ~/.cache/pip). pip's own HTTP cache cannot be relied
# on here (it keeps only responses that carry cache headers, and the index's multi-GB torch downloads came back
# uncached), so `make setup` in a fresh clone would download torch again on every CI run. Instead: install from the
# wheelhouse alone (no network); only when something is missing (first run, a new dependency) fill the wheelhouse
# with `pip wheel` from the index and install again. The project's own wheel is never kept there.
set -euo pipefail
py=$1
shift
wh=${COTBAL_WHEELHOUSE:-${PIP_CACHE_DIR:-$HOME/.cache/pip}/cotbal-wheelhouse}
mkdir -p "$wh"
if "$py" -m pip install -q --no-index --find-links "$wh" "$@" > /dev/null 2>&1; then
  echo "[wheelhouse] installed from $wh: $*"
  exit 0
fi
echo "[wheelhouse] filling $wh from the package index: $*"
args=()
for a in "$@"; do [ "$a" = "-e" ] || args+=("$a"); done  # `pip wheel` builds editable requirements as plain ones
"$py" -m pip wheel -q -w "$wh" --find-links "$wh" "${args[@]}"
rm -f "$wh"/cotbal_plugin-*.whl
"$py" -m pip install -q --no-index --find-links "$wh" "$@"
echo "[wheelhouse] installed: $*"
