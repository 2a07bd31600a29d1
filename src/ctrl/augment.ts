/**
 * The augmented model that CTRL and classifier-free guidance fine-tuning share: zero-initialised
 * label embeddings plus LoRA on the backbone, and AdamW over its two parameter groups.
 */
import type { Control, LabelField, Optimizer } from "../gen/ctrl/v1/worker.js";
import type { Worker } from "../worker/worker.js";
import type { ExperimentConfig } from "./config.js";

/** The optimiser knobs: CTRL's `finetune` section has them, and so do the baselines' settings. */
export type OptimizerSettings = Pick<ExperimentConfig["finetune"], "loraLearningRate" | "embeddingLearningRate" | "weightDecay" | "maxGradNorm"> &
  Partial<Pick<ExperimentConfig["finetune"], "adamEpsilon" | "adamBeta2">>;

export function addControl(worker: Worker, backbone: string, fields: LabelField[], settings: ExperimentConfig["control"], seed: number): Promise<Control> {
  return worker.addControl({
    backbone,
    fields,
    loraRank: settings.loraRank,
    loraAlpha: settings.loraAlpha,
    loraTargetModules: settings.loraTargets,
    timestepBands: settings.timestepBands,
    loraPerLabel: settings.loraPerLabel,
    seed,
  });
}

/** AdamW (betas 0.9 / 0.999, eps 1e-8 unless set) with the LoRA and embedding groups, clipped. */
export function createOptimizer(worker: Worker, control: string, settings: OptimizerSettings): Promise<Optimizer> {
  return worker.createOptimizer({
    control,
    groups: [
      { name: "lora", learningRate: settings.loraLearningRate, weightDecay: settings.weightDecay },
      { name: "embedding", learningRate: settings.embeddingLearningRate, weightDecay: settings.weightDecay },
    ],
    beta1: 0.9,
    beta2: settings.adamBeta2 ?? 0.999,
    eps: settings.adamEpsilon ?? 1e-8,
    maxGradNorm: settings.maxGradNorm,
  });
}
