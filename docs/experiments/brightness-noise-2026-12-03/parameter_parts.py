"""Which of a trained control's parameters carry brightness's noise: the whole control, LoRA only
(label embeddings zeroed), embeddings only (LoRA B zeroed); per asked class the oracle accuracy,
grain and mean luma. Arguments: run dir, samples per class, optionally one checkpoint name (e.g.
epoch-0004; then the whole control only)."""
import sys, torch
from ctrl_worker.ctrl.control import ADAPTER
from common import use_threads, load_run, sample_class, luma, brightness_class, grain

use_threads()
folder, n = sys.argv[1], int(sys.argv[2])
only = sys.argv[3] if len(sys.argv) > 3 else None
for mode in ("full", "lora-only", "embeddings-only") if only is None else ("full",):
    run = load_run(folder, only)
    with torch.no_grad():
        if mode == "lora-only":
            for table in run.control.embeddings.values():
                table.weight.zero_()
        if mode == "embeddings-only":
            for layer in run.control._tuner_layers:
                layer.lora_B[ADAPTER].weight.zero_()
    out = []
    for k in range(4):
        x = sample_class(run, k, n, 1234 + k)
        accuracy = float((brightness_class(x, run.thresholds) == k).float().mean())
        out.append((round(accuracy, 2), round(float(grain(x).mean()), 1), round(float(luma(x).mean()))))
    print(only or "last checkpoint", mode, "per class (accuracy, grain, mean luma):", out, flush=True)
