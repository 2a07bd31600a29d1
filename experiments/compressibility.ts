/**
 * The default reproduction: add 4-class JPEG compressibility (the paper's first control) to the
 * embedded pre-trained model with CTRL, and judge the samples by their real JPEG size.
 *
 *   node --import tsx experiments/compressibility.ts        (what `make run` does, via the CLI)
 *
 * Every knob is spelled out below with its default value (src/ctrl/config.ts says why each is
 * what it is), sized for a 2-core CPU: under 10 minutes. README.md compares them with the paper's
 * Stable Diffusion settings.
 */
import { runCtrl } from "../src/index.js";

const { run, results } = await runCtrl({
  task: "compressibility",
  seed: 0,
  backbone: "models/default", // a diffusers folder, or a Hugging Face id
  // Offline data, the paper's recipe: 2000 of the pre-trained model's own samples (drawn with the
  // sampler below, cached), in 4 classes of JPEG size at quality 95 cut at their quartiles.
  dataset: { kind: "default", oracle: "compressibility", images: "samples", numImages: 2000, numClasses: 4, thresholdsFrom: "dataset" },
  sampler: { steps: 10, eta: 0.5, spacing: "trailing" }, // DDIM 999, 899, ..., 99
  classifier: { architecture: "stats-convnet", width: 16, epochs: 20, batchSize: 64, learningRate: 5e-3, schedule: "cosine" },
  control: { loraRank: 4, loraAlpha: 4, loraTargets: ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"], timestepBands: 5, loraPerLabel: true },
  finetune: {
    epochs: 10,
    stepsPerEpoch: 8,
    batchSize: 16,
    gradAccumulation: 1,
    klWeight: 3, // reward = log min(p(y|x0), confidenceCap) - klWeight * KL / D: the KL per dimension, as the official code weighs it
    klWeightRamp: 10, // the KL weight rises geometrically from 3 to 30 over the optimiser steps
    confidenceCap: 0.97,
    loraLearningRate: 1e-2,
    embeddingLearningRate: 1e-2,
    warmupSteps: 5,
    schedule: "cosine",
    truncation: { kind: "none" }, // every step keeps its gradient; { kind: "random" } is the official truncation
    checkpointing: false, // true saves memory on a GPU; on a CPU it only costs time
  },
  evaluation: { numSamples: 256, seed: 42 },
});

for (const r of results) console.log(`${r.method}: accuracy ${r.evaluation.accuracy.toFixed(3)}, macro-F1 ${r.evaluation.macroF1.toFixed(3)}`);
console.log(`report: ${run.path("report.html")}`);
