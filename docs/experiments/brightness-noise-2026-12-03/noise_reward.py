"""Does the reward pay for the noise? A trained control's samples per asked class, judged by the
run's reward classifier (capped log p(y | x0), as fine-tuning sees it) and by the oracle, as drawn
and after a 3x3 box blur (which keeps the mean luma, so the oracle's class, and removes most of the
grain); the same for the pre-trained model's samples. Arguments: run dir, samples per class."""
import sys, torch
import torch.nn.functional as F
from ctrl_worker.classifiers.classifier import load_classifier, log_prob
from common import use_threads, load_run, sample_class, brightness_class, grain

use_threads()
run = load_run(sys.argv[1]); n = int(sys.argv[2])
th = run.thresholds
cap = run.config["finetune"]["confidenceCap"]
classifier = load_classifier(f"{run.folder}/classifier", torch.device("cpu"))
def blur(x):
    return F.avg_pool2d(F.pad(x.clamp(-1, 1), (1, 1, 1, 1), mode="replicate"), 3, stride=1)
print("cap", cap)
for k in range(4):
    for who in ("control", "pre-trained"):
        drawn = sample_class(run, k, n, 1234 + k, pretrained=who == "pre-trained")
        with torch.no_grad():
            cells = []
            for name, x in (("as drawn", drawn.clamp(-1, 1)), ("blurred", blur(drawn))):
                labels = torch.full((n,), k)
                lp = log_prob(classifier, x, labels).clamp(max=torch.log(torch.tensor(cap)))
                oracle = brightness_class(x, th)
                cells.append(f"{name}: grain {float(grain(x).mean()):.1f}, capped log p {float(lp.mean()):.3f}, oracle in class {float((oracle == k).float().mean()):.2f}")
        print(f"asked {k}, {who}: " + " | ".join(cells), flush=True)
