/**
 * CTRL step 2: fine-tune the augmented model by reinforcement learning, back-propagating the
 * reward through the sampler. Per optimiser step: `gradAccumulation` rollouts of `batchSize`
 * samples, each with labels drawn from the training distribution (per label field, independently)
 * and its own truncation mask; reward = log p(y | x0) - alpha * KL (with several controls, the sum
 * of their classifiers' log-probabilities); gradients add up, then one clipped AdamW step.
 * A step whose loss or gradient is NaN or infinite is skipped (logged as "finetune-skipped", the
 * parameters and optimiser state untouched); `maxSkippedSteps` in a row stop the run.
 */
import type { ExperimentConfig } from "./config.js";
import { Random, deriveSeed } from "./random.js";
import type { Run } from "./runs.js";
import { trainingText } from "./text.js";
import { gradientMask } from "./truncation.js";
import { type AdaptiveKlSettings, followedShare, nextKlWeight, rampedKlWeight, shareAtCap } from "./klWeight.js";
import { type RewardPart, rewardTerms } from "../rewards/expression.js";
import { ProgressBar } from "../worker/progress.js";
import type { Worker } from "../worker/worker.js";

/**
 * The learning-rate multiplier of optimiser step `step` (0-based) of `totalSteps`: a linear ramp
 * over `warmupSteps`, then constant or a cosine decay towards 0 at the end.
 */
export function learningRateScale(step: number, totalSteps: number, warmupSteps: number, schedule: "cosine" | "constant"): number {
  if (step < warmupSteps) return (step + 1) / warmupSteps;
  if (schedule === "constant" || totalSteps <= warmupSteps) return 1;
  return 0.5 * (1 + Math.cos((Math.PI * (step - warmupSteps)) / (totalSteps - warmupSteps)));
}

/** A label field of the control and the training distribution of its classes (unnormalised). */
export interface TrainingField {
  name: string;
  weights: number[];
}

export interface FinetuneTarget {
  control: string;
  optimizer: string;
  fields: TrainingField[];
  timesteps: number[];
  reward: RewardPart[];
}

export interface StepRecord {
  phase: "finetune";
  epoch: number;
  step: number;
  loss: number;
  log_prob: number;
  kl: number;
  grad_norm: number;
  grad_steps_kept: number;
  /** Mean KL per sample at each sampler step (0 at deterministic ones): where the KL is spent. */
  kl_per_step: number[];
  /** The KL weight this step's reward used (finetune.klWeight, or the adapted one). */
  kl_weight: number;
  /** The share of the step's samples at the confidence cap; null without a cap. */
  share_at_cap: number | null;
  /** The share the adaptive KL weight follows (its moving average); absent when the weight is not adaptive. */
  share_followed?: number;
  seconds: number;
}

/** `count` optimiser steps in a row, up to `step` (1-based), had a non-finite loss or gradient. */
export class NonFiniteTrainingError extends Error {
  override name = "NonFiniteTrainingError";
  constructor(
    readonly step: number,
    readonly count: number,
  ) {
    super(`fine-tuning stopped at step ${step}: ${count} optimiser steps in a row had a NaN or infinite loss or gradient (each was skipped)`);
  }
}

/** What fine-tuning asks of the worker. */
export type FinetuneWorker = Pick<Worker, "rollout" | "backward" | "optimizerStep">;

/** Each classifier term's cap, as the reward carries it; undefined when a term has none (no share at the cap). */
function rewardCaps(reward: readonly RewardPart[]): number[] | undefined {
  const caps = reward.flatMap((part) => (part.kind === "logProb" ? [part.confidenceCap] : []));
  return caps.length > 0 && caps.every((cap) => cap !== undefined) ? (caps as number[]) : undefined;
}

/**
 * Whether fine-tuning adapts the KL weight (finetune.adaptiveKl.enabled); refused for a reward it
 * cannot drive: no KL term, or a classifier term without a cap (no share at the cap).
 */
export function adaptsKlWeight(reward: readonly RewardPart[], settings: ExperimentConfig["finetune"]): boolean {
  if (!settings.adaptiveKl.enabled) return false;
  if (!reward.some((part) => part.kind === "kl") || !(settings.klWeight > 0) || rewardCaps(reward) === undefined) {
    throw new RangeError("finetune: an adaptive KL weight needs a KL term, klWeight > 0 and a confidence cap on every classifier term");
  }
  return true;
}

/**
 * Runs epochs [fromEpoch, epochs). After each epoch `onEpochEnd` may save a checkpoint; it is
 * awaited, so a crash never leaves a half-written one behind a finished epoch.
 */
export async function finetune(
  worker: FinetuneWorker,
  target: FinetuneTarget,
  config: ExperimentConfig,
  run: Run,
  fromEpoch: number,
  onEpochEnd: (epoch: number) => Promise<void>,
): Promise<void> {
  const settings = config.finetune;
  const logProbIndices = target.reward.flatMap((part, i) => (part.kind === "logProb" ? [i] : []));
  const klIndex = target.reward.findIndex((part) => part.kind === "kl");
  const caps = rewardCaps(target.reward);
  const adaptive = adaptsKlWeight(target.reward, settings) ? settings.adaptiveKl : undefined;
  // A resumed run continues from the weight and followed share its last kept step recorded.
  const resumed = adaptive && fromEpoch > 0 ? lastController(run, adaptive, settings.klWeight) : undefined;
  let klWeight = resumed?.klWeight ?? settings.klWeight;
  let share = resumed?.share;
  // target.reward carries klWeight's term; the adapted weight rescales it.
  const termsAt = (weight: number) =>
    rewardTerms(target.reward.map((part) => (part.kind === "kl" && weight !== settings.klWeight ? { ...part, weight: (part.weight * weight) / settings.klWeight } : part)));
  const totalSteps = settings.epochs * settings.stepsPerEpoch;
  const bar = new ProgressBar("ctrl fine-tune");
  let skippedInARow = 0;
  for (let epoch = fromEpoch; epoch < settings.epochs; epoch++) {
    for (let s = 0; s < settings.stepsPerEpoch; s++) {
      const step = epoch * settings.stepsPerEpoch + s;
      const started = performance.now();
      let loss = 0;
      let logProb = 0;
      let kl = 0;
      let kept = 0;
      let klPerStep: number[] = [];
      const logProbs: number[][] = logProbIndices.map(() => []);
      if (settings.klWeightRamp !== 1) klWeight = rampedKlWeight(settings.klWeight, settings.klWeightRamp, step, totalSteps);
      const terms = termsAt(klWeight);
      let nonFiniteLoss = false;
      for (let micro = 0; micro < settings.gradAccumulation && !nonFiniteLoss; micro++) {
        // Every draw derives from (seed, step, micro): a resumed run repeats them exactly.
        const random = new Random(deriveSeed(config.seed, "finetune", step, micro));
        const labels = Object.fromEntries(
          target.fields.map((field) => [field.name, Array.from({ length: settings.batchSize }, () => random.categorical(field.weights))]),
        );
        const rollout = await worker.rollout({
          control: target.control,
          numSamples: settings.batchSize,
          labels,
          timesteps: target.timesteps,
          eta: config.sampler.eta,
          seed: deriveSeed(config.seed, "rollout", step, micro),
          gradSteps: gradientMask(settings.truncation, target.timesteps.length, random),
          checkpointing: settings.checkpointing,
          batchSize: settings.unetBatchSize,
          text: trainingText(config, random, settings.batchSize),
        });
        const result = await worker.backward({ rollout: rollout.handle, terms, lossScale: 1 / settings.gradAccumulation });
        nonFiniteLoss = result.nonFinite;
        loss += result.loss / settings.gradAccumulation;
        logProbIndices.forEach((i, k) => {
          logProb += result.terms[i]!.mean / settings.gradAccumulation;
          logProbs[k]!.push(...result.terms[i]!.perSample);
        });
        if (klIndex >= 0) kl += result.terms[klIndex]!.mean / settings.gradAccumulation;
        kept += rollout.gradStepsKept;
        klPerStep = (rollout.klPerStep ?? []).map((value, i) => (klPerStep[i] ?? 0) + value / settings.gradAccumulation);
      }
      const scale = learningRateScale(step, totalSteps, settings.warmupSteps, settings.schedule);
      const update = await worker.optimizerStep(target.optimizer, scale, { discard: nonFiniteLoss });
      bar.update(step + 1, totalSteps);
      if (update.skipped) {
        skippedInARow++;
        const reason = nonFiniteLoss ? "non-finite loss" : "non-finite gradient norm";
        run.logMetrics({ phase: "finetune-skipped", epoch: epoch + 1, step: step + 1, reason, skipped_in_a_row: skippedInARow });
        if (skippedInARow >= settings.maxSkippedSteps) throw new NonFiniteTrainingError(step + 1, skippedInARow);
        continue;
      }
      skippedInARow = 0;
      const cappedTerms = caps?.map((confidenceCap, k) => ({ values: logProbs[k]!, confidenceCap }));
      const record: StepRecord = {
        phase: "finetune",
        epoch: epoch + 1,
        step: step + 1,
        loss,
        log_prob: logProb,
        kl,
        grad_norm: update.gradNorm,
        grad_steps_kept: kept / settings.gradAccumulation,
        kl_per_step: klPerStep,
        kl_weight: klWeight,
        share_at_cap: cappedTerms ? shareAtCap(cappedTerms) : null,
        seconds: (performance.now() - started) / 1000,
      };
      if (adaptive) {
        const counted = adaptive.confidence === undefined ? record.share_at_cap! : shareAtCap(cappedTerms!, adaptive.confidence);
        record.share_followed = share = followedShare(share, counted, adaptive.smoothing);
      }
      run.logMetrics({ ...record });
      if (adaptive) klWeight = nextKlWeight(klWeight, share!, adaptive, settings.klWeight);
    }
    await onEpochEnd(epoch + 1);
  }
}

/** The KL weight that the step after the last recorded one uses, and the share followed so far, if a step was recorded. */
function lastController(run: Run, adaptive: AdaptiveKlSettings, floor: number): { klWeight: number; share: number } | undefined {
  const last = run.readMetrics().findLast((record) => record.phase === "finetune" && typeof record.kl_weight === "number");
  if (!last) return undefined;
  // Records written before the moving average existed followed the batch's own share.
  const share = (last.share_followed ?? last.share_at_cap) as number;
  return { klWeight: nextKlWeight(last.kl_weight as number, share, adaptive, floor), share };
}
