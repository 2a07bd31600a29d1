"""`python -m ctrl_worker.tools.bench PLAN.json --variant pytorch|official`: CTRL training throughput
without RPC, two of `make bench`'s three variants (scripts/bench.ts runs the TypeScript-driven one
and starts this for the others).

- pytorch: this worker's own code path (one fused UNet call per step for the model and the
  reference branches, the reference = adapters off, the backbone's autocast), driven by a Python
  loop: what the TypeScript-driven path costs, minus the RPCs and the TypeScript loop.
- official: the official code's configuration: float32 weights under float16 autocast (on a GPU)
  with loss scaling, four separate UNet calls per step (fine-tuned conditional/unconditional, frozen
  conditional/unconditional), and a deep copy of the pre-trained UNet as the frozen reference.

All variants read the same plan (model, timesteps, per-iteration seeds, labels and gradient
masks), so they do the same work. One iteration = rollout + reward backward + optimizer step
for `batch` samples. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from ..diffusion.backbones import load_backbone
from ..diffusion.branches import StepModel
from ..classifiers.classifier import create_classifier, validate_config
from ..diffusion.conditioning import parse_condition
from ..ctrl.control import Control, LabelField, Labels, LoraSpec
from ..gen.ctrl.v1 import worker_pb2 as pb
from ..ctrl.optim import create_optimizer, optimizer_step
from ..ctrl.rewards import ClassifierLogProb, Kl, Term, backward
from ..ctrl.rollout import rollout
from ..rpc.telemetry import memory_snapshot

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# The official code scales the loss for float16 (accelerate's GradScaler); a static scale does the
# same arithmetic per step (scale, unscale, skip on overflow) without the dynamic bookkeeping.
_LOSS_SCALE = 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker.tools.bench")
    parser.add_argument("plan", help="the JSON plan written by scripts/bench.ts")
    parser.add_argument("--variant", choices=["pytorch", "official"], required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    plan = json.loads(Path(args.plan).read_text())
    print(json.dumps(run(plan, args.variant, torch.device(args.device))), flush=True)


def run(plan: dict, variant: str, device: torch.device) -> dict:
    official = variant == "official"
    started = time.perf_counter()
    if official:
        dtype = torch.float32
        autocast = torch.float16 if device.type == "cuda" else None
    else:
        dtype = _DTYPES[plan["dtype"]]
        autocast = _DTYPES[plan["autocast"]] if plan.get("autocast") else None
    backbone = load_backbone(plan["model"], "", dtype, device, autocast)
    reference_network = None
    if official:  # the frozen copy is taken before the adapters go in
        reference_network = replace(backbone, unet=copy.deepcopy(backbone.unet)).predict_eps
    control = Control(
        backbone, [LabelField("label", plan["num_classes"])], LoraSpec(plan["lora_rank"], float(plan["lora_rank"]), tuple(plan["lora_targets"])), 0
    )
    optimizer = create_optimizer(
        control,
        [pb.ParamGroup(name="lora", learning_rate=1e-3, weight_decay=0.1), pb.ParamGroup(name="embedding", learning_rate=1e-2, weight_decay=0.1)],
        0.0, 0.0, 0.0, 5.0,
    )
    classifier = create_classifier(
        validate_config(list(backbone.image_shape), plan["num_classes"], "convnet", plan["classifier_width"], 1e-3, 0.0), 0, device
    )
    batch = plan["batch"]
    text = plan.get("text")
    condition = parse_condition(backbone, text["prompts"], text["guidance_scale"], batch) if text else None
    setup_seconds = time.perf_counter() - started

    times: list[float] = []
    for i, iteration in enumerate(plan["iterations"]):
        _sync(device)
        began = time.perf_counter()
        labels = Labels({"label": torch.tensor(iteration["labels"], device=device)})
        model = StepModel(
            backbone, control, labels, condition,
            fused=not official, checkpointing=plan["checkpointing"], reference_network=reference_network,
        )
        result = rollout(model, batch, plan["timesteps"], plan["eta"], iteration["seed"], iteration["grad_steps"], plan["unet_batch"] if not official else 0)
        terms = [Term(1.0, ClassifierLogProb(classifier, labels.values["label"])), Term(-plan["alpha"], Kl())]
        scale = _LOSS_SCALE if autocast == torch.float16 else 1.0
        backward(result, terms, scale)
        result.close()
        if scale != 1.0:
            for p in control.parameters():
                if p.grad is not None:
                    p.grad.div_(scale)
        optimizer_step(optimizer)
        _sync(device)
        seconds = time.perf_counter() - began
        if i >= plan["warmup"]:
            times.append(seconds)
        print(f"[{variant}] iteration {i + 1}/{len(plan['iterations'])}: {seconds:.2f} s", file=sys.stderr, flush=True)
    median = statistics.median(times)
    return {
        "variant": variant,
        "samples_per_second": batch / median,
        "seconds_per_iteration": times,
        "median_seconds_per_iteration": median,
        "peak_memory_bytes": _peak_memory(device),
        "memory_measure": "cuda max_memory_allocated" if device.type == "cuda" else "max RSS",
        "setup_seconds": setup_seconds,
        "unet_calls_per_iteration": result.unet_calls,
        "weights_dtype": str(dtype).removeprefix("torch."),
        "autocast": None if autocast is None else str(autocast).removeprefix("torch."),
    }


def _peak_memory(device: torch.device) -> int:
    """The same measure GetInfo reports for the worker (the TypeScript-driven variant)."""
    memory = memory_snapshot()
    return int(memory["cuda_peak_bytes"] if device.type == "cuda" else memory["max_rss_bytes"])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
