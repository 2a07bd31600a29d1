import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/ctrl/config.js";
import { type FinetuneWorker, finetune } from "../../src/ctrl/finetune.js";
import { followedShare, nextKlWeight, rampedKlWeight, shareAtCap } from "../../src/ctrl/klWeight.js";
import { Run } from "../../src/ctrl/runs.js";
import { ctrlReward } from "../../src/rewards/expression.js";
import type { BackwardRequest } from "../../src/gen/ctrl/v1/worker.js";
import { tempDir } from "../helpers.js";

const CAP = 0.9;
const AT_CAP = Math.fround(Math.log(CAP)); // what the worker's float32 clamp returns

test("the share at the cap counts samples whose every classifier term reached its own cap", () => {
  assert.equal(shareAtCap([{ values: [AT_CAP, AT_CAP, -1, AT_CAP], confidenceCap: CAP }]), 0.75);
  // Two controls: a sample counts only when both of its classifiers are at their caps.
  const half = Math.fround(Math.log(0.5));
  assert.equal(shareAtCap([{ values: [AT_CAP, AT_CAP, -1], confidenceCap: CAP }, { values: [half, -0.9, half], confidenceCap: 0.5 }]), 1 / 3);
  // Below the cap: samples with at least that probability, at the cap or not.
  assert.equal(shareAtCap([{ values: [AT_CAP, Math.fround(Math.log(0.5)), Math.log(0.49), -3], confidenceCap: CAP }], 0.5), 0.5);
  assert.equal(shareAtCap([{ values: [AT_CAP, -1], confidenceCap: CAP }], 0.95), 0.5, "above the cap: the cap");
  assert.throws(() => shareAtCap([]), /at least one classifier term/);
  assert.throws(() => shareAtCap([{ values: [AT_CAP], confidenceCap: CAP }, { values: [AT_CAP, AT_CAP], confidenceCap: CAP }]), /same, non-zero number of samples/);
});

test("the weight rises by the factor at the target share, falls below it, within [floor, max]", () => {
  const settings = { target: 0.9, factor: 2, max: 20, smoothing: 0, tolerance: 0 };
  assert.equal(nextKlWeight(3, 0.9, settings, 3), 6);
  assert.equal(nextKlWeight(12, 0.5, settings, 3), 6);
  assert.equal(nextKlWeight(4, 0, settings, 3), 3, "never below the configured weight");
  assert.equal(nextKlWeight(16, 1, settings, 3), 20, "never above max");
});

test("with a tolerance the weight moves in proportion to the share's distance from the target, up to the factor", () => {
  const settings = { target: 0.8, factor: 4, max: 100, smoothing: 0, tolerance: 0.1 };
  assert.ok(Math.abs(nextKlWeight(10, 0.85, settings, 3) - 20) < 1e-9, "half the tolerance above: sqrt(4)");
  assert.ok(Math.abs(nextKlWeight(10, 0.75, settings, 3) - 5) < 1e-9, "half the tolerance below: / sqrt(4)");
  assert.equal(nextKlWeight(10, 0.8, settings, 3), 10, "at the target: unchanged");
  assert.equal(nextKlWeight(10, 1, settings, 3), 40, "far above: the full factor, no more");
  assert.equal(nextKlWeight(10, 0, settings, 3), 3, "far below: the full factor down, not below the floor");
});

test("the followed share is the batch's own at first, then a moving average", () => {
  assert.equal(followedShare(undefined, 0.5, 0.8), 0.5);
  assert.ok(Math.abs(followedShare(0.5, 1, 0.8) - 0.6) < 1e-12);
  assert.equal(followedShare(0.5, 1, 0), 1, "smoothing 0 follows each batch");
});

test("adaptiveKl is validated: it needs a cap, and the starting weight within its range", () => {
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 1, klWeightRamp: 1, adaptiveKl: { enabled: true } } }), /finetune\.adaptiveKl\.enabled: needs finetune\.confidenceCap below 1/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeight: 0, klWeightRamp: 1, adaptiveKl: { enabled: true } } }), /finetune\.klWeight: the adaptive weight starts here/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, factor: 1 } } }), /finetune\.adaptiveKl\.factor/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, target: 1.5 } } }), /finetune\.adaptiveKl\.target/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, smoothing: 1 } } }), /finetune\.adaptiveKl\.smoothing/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, confidence: 0.95 } } }), /finetune\.adaptiveKl\.confidence: the reward is clamped at finetune\.confidenceCap = 0\.9/);
  assert.equal(parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, confidence: 0.5 } } }).finetune.adaptiveKl.confidence, 0.5);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeightRamp: 1, adaptiveKl: { enabled: true, tolerance: -0.1 } } }), /finetune\.adaptiveKl\.tolerance/);
});

/** A worker whose samples are at the cap on the listed optimiser steps (1-based); it records the KL term's weight of each backward. */
function scriptedWorker(atCapSteps: number[], otherwise = -2) {
  let step = 1;
  const klWeights: number[] = [];
  const worker: FinetuneWorker = {
    rollout: async () => ({ handle: `rollout/${step}`, gradStepsKept: 2, seconds: 0 }) as never,
    backward: async (request: BackwardRequest) => {
      klWeights.push(request.terms.find((t) => t.source?.$case === "kl")!.weight);
      const value = atCapSteps.includes(step) ? AT_CAP : otherwise;
      return { loss: 1, terms: [{ mean: value, perSample: [value, value] }, { mean: 5, perSample: [5, 5] }], seconds: 0, nonFinite: false } as never;
    },
    optimizerStep: async () => {
      step++;
      return { gradNorm: 1, steps: 0, skipped: false, parameterChecksum: "" };
    },
  };
  return { worker, klWeights };
}

test("fine-tuning sends the adapted weight in each step's KL term, logs it, and a resume continues from it", async () => {
  const config = parseConfig({ finetune: { epochs: 2, stepsPerEpoch: 3, batchSize: 2, klWeight: 2, confidenceCap: CAP, klWeightRamp: 1, adaptiveKl: { enabled: true, factor: 2 } } });
  const dimensions = 4;
  const target = { control: "c", optimizer: "o", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "k", field: "y" }], 2, dimensions, CAP) };
  const { worker, klWeights } = scriptedWorker([1, 2, 3, 6]);
  const run = Run.create(tempDir(), "t", 0);
  await finetune(worker, target, config, run, 0, async () => undefined);
  const expected = [2, 4, 8, 16, 8, 4]; // up three times at the cap, then down, never below 2
  assert.deepEqual(klWeights.map((w) => Number((-w * dimensions).toPrecision(6))), expected);
  const records = run.readMetrics().filter((m) => m.phase === "finetune");
  assert.deepEqual(records.map((m) => m.kl_weight), expected);
  assert.deepEqual(records.map((m) => m.share_at_cap), [1, 1, 1, 0, 0, 1]);

  // Resuming after epoch 1 (its records kept) starts epoch 2 from the weight step 3 left behind.
  const resumed = Run.create(tempDir(), "t", 0);
  for (const record of records.slice(0, 3)) resumed.logMetrics(record);
  const again = scriptedWorker([]);
  await finetune(again.worker, target, config, resumed, 1, async () => undefined);
  assert.equal(Number((-again.klWeights[0]! * dimensions).toPrecision(6)), 16);
});

test("a smoothed controller follows the moving average of the share, logs it, and a resume continues from it", async () => {
  const config = parseConfig({ finetune: { epochs: 2, stepsPerEpoch: 3, batchSize: 2, klWeight: 2, confidenceCap: CAP, klWeightRamp: 1, adaptiveKl: { enabled: true, factor: 2, smoothing: 0.5 } } });
  const dimensions = 4;
  const target = { control: "c", optimizer: "o", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "k", field: "y" }], 2, dimensions, CAP) };
  const sent = (weights: number[]) => weights.map((w) => Number((-w * dimensions).toPrecision(6)));
  const { worker, klWeights } = scriptedWorker([1, 3, 4, 5, 6]);
  const run = Run.create(tempDir(), "t", 0);
  await finetune(worker, target, config, run, 0, async () => undefined);
  // Shares 1, 0, 1, 1, 1, 1 followed as 1, 0.5, 0.75, 0.875, 0.9375, 0.96875: one empty batch
  // holds the weight down for three steps (each batch on its own: 2, 4, 2, 4, 8, 16).
  assert.deepEqual(sent(klWeights), [2, 4, 2, 2, 2, 4]);
  const records = run.readMetrics().filter((m) => m.phase === "finetune");
  assert.deepEqual(records.map((m) => m.share_followed), [1, 0.5, 0.75, 0.875, 0.9375, 0.96875]);

  const resumed = Run.create(tempDir(), "t", 0);
  for (const record of records.slice(0, 3)) resumed.logMetrics(record);
  const again = scriptedWorker([1, 2, 3]);
  await finetune(again.worker, target, config, resumed, 1, async () => undefined);
  assert.deepEqual(sent(again.klWeights), [2, 2, 4], "the average restored from the log, not restarted at the next batch");
});

test("with adaptiveKl.confidence the controller counts samples that reached that probability, below the cap", async () => {
  const config = parseConfig({ finetune: { epochs: 1, stepsPerEpoch: 3, batchSize: 2, klWeight: 2, confidenceCap: CAP, klWeightRamp: 1, adaptiveKl: { enabled: true, factor: 2, confidence: 0.5 } } });
  const dimensions = 4;
  const target = { control: "c", optimizer: "o", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "k", field: "y" }], 2, dimensions, CAP) };
  const { worker, klWeights } = scriptedWorker([], Math.log(0.6)); // every sample at p = 0.6: none at the cap
  const run = Run.create(tempDir(), "t", 0);
  await finetune(worker, target, config, run, 0, async () => undefined);
  assert.deepEqual(klWeights.map((w) => Number((-w * dimensions).toPrecision(6))), [2, 4, 8]);
  const records = run.readMetrics().filter((m) => m.phase === "finetune");
  assert.deepEqual(records.map((m) => [m.share_at_cap, m.share_followed]), [[0, 1], [0, 1], [0, 1]]);
});

test("an adaptive weight refuses a reward whose classifier term has no cap", async () => {
  const config = parseConfig({ finetune: { epochs: 1, stepsPerEpoch: 1, batchSize: 2, confidenceCap: CAP, klWeightRamp: 1, adaptiveKl: { enabled: true } } });
  const uncapped = { control: "c", optimizer: "o", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "k", field: "y" }], 3, 4) };
  await assert.rejects(finetune(scriptedWorker([]).worker, uncapped, config, Run.create(tempDir(), "t", 0), 0, async () => undefined), /a confidence cap on every classifier term/);
});

test("a ramped KL weight rises geometrically from klWeight to klWeight * klWeightRamp, step by step, resumed or not", async () => {
  assert.equal(rampedKlWeight(3, 10, 0, 5), 3);
  assert.ok(Math.abs(rampedKlWeight(3, 10, 4, 5) - 30) < 1e-12);
  assert.ok(Math.abs(rampedKlWeight(4, 16, 2, 5) - 16) < 1e-12); // halfway: the geometric mean of 4 and 64
  assert.equal(rampedKlWeight(3, 10, 0, 1), 30);

  const config = parseConfig({ finetune: { epochs: 2, stepsPerEpoch: 2, batchSize: 2, klWeight: 2, klWeightRamp: 8, confidenceCap: CAP } });
  const dimensions = 4;
  const target = { control: "c", optimizer: "o", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "k", field: "y" }], 2, dimensions, CAP) };
  const sent = (weights: number[]) => weights.map((w) => Number((-w * dimensions).toPrecision(6)));
  const whole = scriptedWorker([]);
  const run = Run.create(tempDir(), "t", 0);
  await finetune(whole.worker, target, config, run, 0, async () => undefined);
  assert.deepEqual(sent(whole.klWeights), [2, 4, 8, 16]);
  assert.deepEqual(run.readMetrics().filter((m) => m.phase === "finetune").map((m) => Number((m.kl_weight as number).toPrecision(6))), [2, 4, 8, 16]);
  const resumed = scriptedWorker([]);
  await finetune(resumed.worker, target, config, Run.create(tempDir(), "t", 0), 1, async () => undefined);
  assert.deepEqual(sent(resumed.klWeights), [8, 16]);
});

test("klWeightRamp is validated: at least 1, and not with the adaptive weight", () => {
  assert.throws(() => parseConfig({ finetune: { klWeightRamp: 0.5 } }), /finetune\.klWeightRamp/);
  assert.throws(() => parseConfig({ finetune: { klWeightRamp: 10, adaptiveKl: { enabled: true } } }), /exclude each other/);
  // The default ramp (10) too: enabling the adaptive weight alone is refused, with the fix named.
  assert.throws(() => parseConfig({ finetune: { adaptiveKl: { enabled: true } } }), /set the ramp to 1/);
  assert.equal(parseConfig({ finetune: { klWeightRamp: 1, adaptiveKl: { enabled: true } } }).finetune.adaptiveKl.enabled, true);
});
