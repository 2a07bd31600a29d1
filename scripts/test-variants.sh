#!/usr/bin/env bash
# The worker's float-sensitive tests (zero KL, a fresh control equal to its backbone, fused equal
# to separate calls, batch-size independence) under 1 and 2 torch threads and with
# CUBLAS_WORKSPACE_CONFIG set and unset: kernels that split or order sums differently must stay
# inside the tolerances of tests/support.py. About 2 minutes on two CPU cores.
set -euo pipefail
cd "$(dirname "$0")/../python-worker"

# Idle OpenMP threads sleep instead of spinning: on a machine with busy cores, spinning threads wait
# for each other's time slices and two threads ran ten times slower than one. Results are the same.
export OMP_WAIT_POLICY=PASSIVE
FILES=(tests/test_control.py tests/test_rollout.py tests/test_service.py tests/test_text_to_image.py tests/test_sampler.py)
failed=()
for threads in 1 2; do
  for cublas in "" ":4096:8"; do
    name="OMP_NUM_THREADS=$threads CUBLAS_WORKSPACE_CONFIG=${cublas:-(unset)}"
    echo "== test variant: $name"
    env_args=(OMP_NUM_THREADS="$threads")
    if [ -n "$cublas" ]; then env_args+=(CUBLAS_WORKSPACE_CONFIG="$cublas"); fi
    if ! env -u CUBLAS_WORKSPACE_CONFIG "${env_args[@]}" .venv/bin/python -m pytest -q -p no:cacheprovider "${FILES[@]}"; then
      failed+=("$name")
    fi
  done
done
if [ ${#failed[@]} -gt 0 ]; then
  printf 'test variants failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "== all 4 test variants passed"
