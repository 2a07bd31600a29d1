/**
 * The default reproduction: add 4-class JPEG compressibility (the paper's first control) to the
 * embedded pre-trained model with CTRL, and judge the samples by their real JPEG size.
 *
 *   node --import tsx experiments/compressibility.ts        (what `make run` does, via the CLI)
 *
 * Every knob is spelled out below; the values are the defaults, sized for a 2-core CPU (about
 * 8 minutes). See README.md for why they differ from the paper's Stable Diffusion settings.
 */
import { runCtrl } from "../src/index.js";

const { run, results } = await runCtrl({
  task: "compressibility",
  seed: 0,
  backbone: "models/default", // a diffusers folder, or a Hugging Face id
  // Offline data: 2000 synthetic images (the backbone's training distribution) in 4 classes of
  // JPEG size at quality 95, cut at the data's quartiles; "reference" cuts at the model samples'.
  dataset: { kind: "default", oracle: "compressibility", images: "synthetic", numImages: 2000, numClasses: 4, thresholdsFrom: "dataset" },
  sampler: { steps: 10, eta: 1 }, // DDIM; eta 1 as in the paper (which takes 50 steps)
  classifier: { epochs: 10, batchSize: 64, learningRate: 2e-3 },
  control: { loraRank: 4, loraAlpha: 4, loraTargets: ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"] },
  finetune: {
    epochs: 16,
    stepsPerEpoch: 4,
    batchSize: 16,
    gradAccumulation: 2,
    klWeight: 0.1, // reward = log p(y|x0) - klWeight * KL / D: the KL per dimension, as the official code weighs it
    loraLearningRate: 1e-3,
    embeddingLearningRate: 3e-2,
    truncation: { kind: "random" }, // the official randomised truncated back-propagation
    checkpointing: false, // true saves memory on a GPU; on a CPU it only costs time
  },
  evaluation: { numSamples: 256, seed: 42 },
});

for (const r of results) console.log(`${r.method}: accuracy ${r.evaluation.accuracy.toFixed(3)}, macro-F1 ${r.evaluation.macroF1.toFixed(3)}`);
console.log(`report: ${run.path("report.html")}`);
