"""Fine-tuning step time, shared vs per-label LoRA, on the embedded default (CPU)."""
import statistics, sys, time, json
import torch
from ctrl_worker.diffusion.backbones import load_backbone
from ctrl_worker.diffusion.branches import StepModel
from ctrl_worker.classifiers.classifier import create_classifier, validate_config
from ctrl_worker.ctrl.control import Control, LabelField, Labels, LoraSpec
from ctrl_worker.gen.ctrl.v1 import worker_pb2 as pb
from ctrl_worker.ctrl.optim import create_optimizer, optimizer_step
from ctrl_worker.ctrl.rewards import ClassifierLogProb, Kl, Term, backward
from ctrl_worker.ctrl.rollout import rollout

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
dev = torch.device("cpu")
backbone = load_backbone(sys.argv[2] if len(sys.argv) > 2 else "../models/default", "", torch.float32, dev, None)
targets = ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2")
timesteps = [999 - 100 * i for i in range(10)]
out = {}
for per_label in (False, True, False, True):
    control = Control(backbone, [LabelField("label", 4)], LoraSpec(4, 4.0, targets, per_label), 0, 5)
    opt = create_optimizer(control, [pb.ParamGroup(name="lora", learning_rate=1e-2, weight_decay=0.1), pb.ParamGroup(name="embedding", learning_rate=1e-2, weight_decay=0.1)], 0.0, 0.0, 0.0, 5.0)
    clf = create_classifier(validate_config(list(backbone.image_shape), 4, "convnet", 16, 1e-3, 0.0), 0, dev)
    times = []
    for i in range(4):
        t0 = time.perf_counter()
        labels = Labels({"label": torch.arange(16) % 4})
        model = StepModel(backbone, control, labels, None, fused=True, checkpointing=False)
        r = rollout(model, 16, timesteps, 0.5, i, [True] * 10, 0)
        backward(r, [Term(1.0, ClassifierLogProb(clf, labels.values["label"])), Term(-1e-3, Kl())], 1.0)
        r.close()
        optimizer_step(opt)
        if i: times.append(time.perf_counter() - t0)
    control.close() if hasattr(control, "close") else None
    key = "per_label" if per_label else "shared"
    out.setdefault(key, []).extend(times)
    print(key, [round(t, 2) for t in times], file=sys.stderr, flush=True)
print(json.dumps({k: {"median_s": statistics.median(v), "runs": v} for k, v in out.items()}))
