#!/usr/bin/env bash
# `make bench` on the lent GPU machine, which has torch but no Node and no diffusers: run
# `make bench-bundle` and ../shared/device/pack.sh here first (they fill .device/), then this
# there, from the repository root. Figures go to $OUT (or /tmp/bench-out). See BENCHMARKS.md.
set -uo pipefail
. .device/prelude.sh
export CTRL_PYTHON=python3 PYTHONUNBUFFERED=1
out=${OUT:-/tmp/bench-out}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, diffusers, peft, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__, 'transformers', transformers.__version__)"
  node --version
} | tee "$out/machine.txt"
# The three variants of the issue: batch 4, DDIM 50, one fused UNet call per step for (a)/(b).
node .device/bench/bench.mjs --out "$out/bench.json" 2> >(tee "$out/bench.log" >&2)
# The fused path with one sample (its four branches) per UNet call: less memory, more calls.
node .device/bench/bench.mjs --variants ts,pytorch --unet-batch 1 --iterations 2 \
  --out "$out/bench-unet-batch-1.json" 2> >(tee "$out/bench-unet-batch-1.log" >&2)
