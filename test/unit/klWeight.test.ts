import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/ctrl/config.js";
import { type FinetuneWorker, finetune } from "../../src/ctrl/finetune.js";
import { nextKlWeight, rampedKlWeight, shareAtCap } from "../../src/ctrl/klWeight.js";
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
  assert.throws(() => shareAtCap([]), /at least one classifier term/);
  assert.throws(() => shareAtCap([{ values: [AT_CAP], confidenceCap: CAP }, { values: [AT_CAP, AT_CAP], confidenceCap: CAP }]), /same, non-zero number of samples/);
});

test("the weight rises by the factor at the target share, falls below it, within [floor, max]", () => {
  const settings = { target: 0.9, factor: 2, max: 20 };
  assert.equal(nextKlWeight(3, 0.9, settings, 3), 6);
  assert.equal(nextKlWeight(12, 0.5, settings, 3), 6);
  assert.equal(nextKlWeight(4, 0, settings, 3), 3, "never below the configured weight");
  assert.equal(nextKlWeight(16, 1, settings, 3), 20, "never above max");
});

test("adaptiveKl is validated: it needs a cap, and the starting weight within its range", () => {
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 1, adaptiveKl: { enabled: true } } }), /finetune\.adaptiveKl\.enabled: needs finetune\.confidenceCap below 1/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, klWeight: 0, adaptiveKl: { enabled: true } } }), /finetune\.klWeight: the adaptive weight starts here/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, adaptiveKl: { enabled: true, factor: 1 } } }), /finetune\.adaptiveKl\.factor/);
  assert.throws(() => parseConfig({ finetune: { confidenceCap: 0.9, adaptiveKl: { enabled: true, target: 1.5 } } }), /finetune\.adaptiveKl\.target/);
});

/** A worker whose samples are at the cap on the listed optimiser steps (1-based); it records the KL term's weight of each backward. */
function scriptedWorker(atCapSteps: number[]) {
  let step = 1;
  const klWeights: number[] = [];
  const worker: FinetuneWorker = {
    rollout: async () => ({ handle: `rollout/${step}`, gradStepsKept: 2, seconds: 0 }) as never,
    backward: async (request: BackwardRequest) => {
      klWeights.push(request.terms.find((t) => t.source?.$case === "kl")!.weight);
      const value = atCapSteps.includes(step) ? AT_CAP : -2;
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
  const config = parseConfig({ finetune: { epochs: 2, stepsPerEpoch: 3, batchSize: 2, klWeight: 2, confidenceCap: CAP, adaptiveKl: { enabled: true, factor: 2 } } });
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

test("an adaptive weight refuses a reward whose classifier term has no cap", async () => {
  const config = parseConfig({ finetune: { epochs: 1, stepsPerEpoch: 1, batchSize: 2, confidenceCap: CAP, adaptiveKl: { enabled: true } } });
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
  assert.equal(parseConfig({ finetune: { klWeightRamp: 1, adaptiveKl: { enabled: true } } }).finetune.adaptiveKl.enabled, true);
});
