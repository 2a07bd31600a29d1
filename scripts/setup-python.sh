#!/usr/bin/env bash
# Creates the worker's Python environment from python-worker/requirements.lock.
# The environment lives in a cache folder keyed by the hash of the lock (and of this script and the
# interpreter version), so a second `make setup`, or a fresh clone on the same machine, reuses it
# in seconds. python-worker/.venv is a link to it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-python3}
lock=python-worker/requirements.lock
key=$( { cat "$lock" "${BASH_SOURCE[0]}"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
cache=${CTRL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ctrl}
venv="$cache/venv-$key"
if [ -f "$venv/.ctrl-complete" ]; then
  echo "python env: reusing $venv"
else
  echo "python env: creating $venv (torch is large: the first install takes several minutes)"
  # A venv is not relocatable, so build it in place; the marker file says it finished.
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --no-deps -r "$lock"
  "$venv/bin/python" -m pip check
  touch "$venv/.ctrl-complete"
fi
ln -sfn "$venv" python-worker/.venv
python-worker/.venv/bin/python -c 'import torch, diffusers, grpc; print("python env: torch", torch.__version__, "diffusers", diffusers.__version__, "grpcio", grpc.__version__)'
