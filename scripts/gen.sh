#!/usr/bin/env bash
# Generates the contract's code from proto/: TypeScript (ts-proto, for @grpc/grpc-js) into
# src/gen/ and Python (grpcio-tools, pinned to the runtime the GPU image has) into
# python-worker/ctrl_worker/gen/. One protoc, the one grpcio-tools bundles, serves both.
# Usage: scripts/gen.sh [OUT_ROOT]   (default: the repository; tests pass a temporary folder)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root}
python=${CTRL_PYTHON:-$root/python-worker/.venv/bin/python}
cd "$root"
# The worker serves grpc.health.v1 from grpcio-health-checking; only TypeScript needs its code.
protos=(ctrl/v1/worker.proto grpc/health/v1/health.proto)
ts_out="$out/src/gen"
py_out="$out/python-worker/ctrl_worker/gen"
rm -rf "$ts_out" "$py_out"
mkdir -p "$ts_out" "$py_out"
"$python" -m grpc_tools.protoc -I proto \
  --plugin=protoc-gen-ts_proto="$root/node_modules/.bin/protoc-gen-ts_proto" \
  --ts_proto_out="$ts_out" \
  --ts_proto_opt=outputServices=grpc-js,env=node,esModuleInterop=true,importSuffix=.js,forceLong=number,oneof=unions-value \
  "${protos[@]}"
"$python" -m grpc_tools.protoc -I proto \
  --python_out="$py_out" --pyi_out="$py_out" --grpc_python_out="$py_out" \
  "${protos[0]}"
# Python needs packages to import the generated modules by their proto paths.
find "$py_out" -type d -exec touch {}/__init__.py \;
# grpc_python_out imports its sibling by proto path (`from ctrl.v1 import ...`); make it relative
# so the stubs live inside the ctrl_worker package without touching sys.path.
sed -i 's/^from ctrl\.v1 import /from . import /' "$py_out"/ctrl/v1/*_pb2_grpc.py
