/**
 * Classifier-free guidance fine-tuning (the paper's CFG baseline): the same augmented model as
 * CTRL (zero-initialised label embeddings + LoRA) trained with the backbone's denoising loss on
 * the labelled offline images. Each row's label is dropped to the null label with probability
 * `labelDropout` (per field, independently), which trains the unconditional branch; timesteps are
 * drawn uniformly from [0, T). Sampling is `sampleGuided` with a classifier-free term.
 */
import type { OptimizerSettings } from "../ctrl/augment.js";
import { Random, deriveSeed } from "../ctrl/random.js";
import type { Run } from "../ctrl/runs.js";
import { ProgressBar } from "../worker/progress.js";
import type { Worker } from "../worker/worker.js";

export interface ClassifierFreeSettings extends OptimizerSettings {
  /** Optimiser steps, one batch each. */
  steps: number;
  batchSize: number;
  /** Probability that a row's label is replaced by the null label, per field. */
  labelDropout: number;
}

/** Every row of a dataset, with its labels for each field of the control (columns of the same name). */
export interface LabelledRows {
  dataset: string;
  labels: Record<string, number[]>;
}

export interface ClassifierFreeTarget {
  control: string;
  optimizer: string;
  numTrainTimesteps: number;
}

export interface ClassifierFreeReport {
  steps: number;
  /** Mean denoising loss of the first and the last tenth of the steps. */
  firstLoss: number;
  lastLoss: number;
  seconds: number;
}

export async function trainClassifierFree(
  worker: Worker,
  target: ClassifierFreeTarget,
  data: LabelledRows,
  settings: ClassifierFreeSettings,
  seed: number,
  run?: Run,
): Promise<ClassifierFreeReport> {
  const fields = Object.keys(data.labels);
  const size = data.labels[fields[0]!]?.length ?? 0;
  if (size === 0) throw new RangeError("trainClassifierFree: no labelled rows");
  const started = performance.now();
  const bar = new ProgressBar("cfg fine-tune");
  const losses: number[] = [];
  let order: number[] = [];
  for (let step = 0; step < settings.steps; step++) {
    const random = new Random(deriveSeed(seed, "cfg-step", step));
    if (order.length < settings.batchSize) order = [...order, ...new Random(deriveSeed(seed, "cfg-order", step)).shuffle(Array.from({ length: size }, (_, i) => i))];
    const indices = order.splice(0, Math.min(settings.batchSize, size));
    const labels = Object.fromEntries(
      fields.map((field) => [field, indices.map((row) => (random.next() < settings.labelDropout ? -1 : data.labels[field]![row]!))]),
    );
    const timesteps = indices.map(() => random.int(target.numTrainTimesteps));
    const result = await worker.denoisingLoss({
      control: target.control,
      dataset: data.dataset,
      indices,
      labels,
      timesteps,
      seed: deriveSeed(seed, "cfg-noise", step),
      lossScale: 1,
    });
    const update = await worker.optimizerStep(target.optimizer);
    losses.push(result.loss);
    run?.logMetrics({ phase: "cfg", step: step + 1, loss: result.loss, grad_norm: update.gradNorm });
    bar.update(step + 1, settings.steps);
  }
  const tenth = Math.max(1, Math.floor(losses.length / 10));
  const meanOf = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
  return {
    steps: settings.steps,
    firstLoss: meanOf(losses.slice(0, tenth)),
    lastLoss: meanOf(losses.slice(-tenth)),
    seconds: (performance.now() - started) / 1000,
  };
}
