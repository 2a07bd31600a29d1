import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/ctrl/config.js";
import { type FinetuneWorker, NonFiniteTrainingError, finetune } from "../../src/ctrl/finetune.js";
import { Run } from "../../src/ctrl/runs.js";
import { ctrlReward } from "../../src/rewards/expression.js";
import { tempDir } from "../helpers.js";

/**
 * A worker whose backward reports a NaN loss on the listed optimiser steps (1-based) and whose
 * optimiser skips the listed ones for a non-finite gradient norm; it records what it was asked.
 */
function fakeWorker(nanLossSteps: number[], nanGradientSteps: number[] = []) {
  let step = 1;
  const calls: { step: number; discard: boolean }[] = [];
  const rollouts: number[] = [];
  const worker: FinetuneWorker = {
    rollout: async () => {
      rollouts.push(step);
      return { handle: `rollout/${step}`, gradStepsKept: 2, seconds: 0 } as never;
    },
    backward: async () => {
      const nan = nanLossSteps.includes(step);
      const logProb = nan ? Number.NaN : -1;
      return { loss: nan ? Number.NaN : 1, terms: [{ mean: logProb, perSample: [logProb, logProb] }, { mean: 2, perSample: [2, 2] }], seconds: 0, nonFinite: nan };
    },
    optimizerStep: async (_optimizer, _scale, options = {}) => {
      const discard = options.discard ?? false;
      calls.push({ step, discard });
      const skipped = discard || nanGradientSteps.includes(step);
      step++;
      return { gradNorm: skipped ? Number.POSITIVE_INFINITY : 1, steps: 0, skipped, parameterChecksum: "" };
    },
  };
  return { worker, calls, rollouts };
}

const target = { control: "control/1", optimizer: "optimizer/1", fields: [{ name: "y", weights: [1, 1] }], timesteps: [999, 499], reward: ctrlReward([{ classifier: "c/1", field: "y" }], 1, 4) };

function settings(extra: Record<string, unknown> = {}) {
  return parseConfig({ finetune: { epochs: 2, stepsPerEpoch: 4, batchSize: 2, gradAccumulation: 2, maxSkippedSteps: 3, ...extra } });
}

test("a step with a NaN loss discards its gradients and is logged as skipped; training goes on", async () => {
  const { worker, calls, rollouts } = fakeWorker([2], [5]);
  const run = Run.create(tempDir(), "t", 0);
  await finetune(worker, target, settings(), run, 0, async () => undefined);
  assert.deepEqual(
    calls.map((c) => c.discard),
    [false, true, false, false, false, false, false, false],
  );
  // Two micro-batches per step, but a NaN on step 2's first one ends that step.
  assert.deepEqual(rollouts, [1, 1, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]);
  const metrics = run.readMetrics();
  assert.deepEqual(
    metrics.filter((m) => m.phase === "finetune").map((m) => m.step),
    [1, 3, 4, 6, 7, 8],
  );
  assert.deepEqual(
    metrics.filter((m) => m.phase === "finetune-skipped").map((m) => [m.step, m.reason]),
    [
      [2, "non-finite loss"],
      [5, "non-finite gradient norm"],
    ],
  );
});

test("K non-finite steps in a row stop the run with an error naming the step", async () => {
  const { worker, calls } = fakeWorker([3, 4], [5]);
  const run = Run.create(tempDir(), "t", 0);
  const epochsEnded: number[] = [];
  await assert.rejects(
    finetune(worker, target, settings(), run, 0, async (epoch) => void epochsEnded.push(epoch)),
    (error: unknown) => error instanceof NonFiniteTrainingError && error.step === 5 && error.count === 3 && /3 optimiser steps in a row/.test(error.message),
  );
  assert.equal(calls.length, 5);
  assert.deepEqual(epochsEnded, [1]);
  assert.equal(run.readMetrics().filter((m) => m.phase === "finetune-skipped").length, 3);
});
