import assert from "node:assert/strict";
import { test } from "node:test";
import { createOptimizer } from "../../src/ctrl/augment.js";
import { parseConfig } from "../../src/ctrl/config.js";
import type { CreateOptimizerRequest } from "../../src/gen/ctrl/v1/worker.js";
import type { Worker } from "../../src/worker/worker.js";

/** A worker that only records the optimiser it was asked for. */
function recordingWorker() {
  const requests: Partial<CreateOptimizerRequest>[] = [];
  const worker = {
    createOptimizer: async (request: Partial<CreateOptimizerRequest>) => {
      requests.push(request);
      return { handle: "optimizer/1", description: "" };
    },
  } as unknown as Worker;
  return { worker, requests };
}

test("createOptimizer sends the config's AdamW settings, and Adam's defaults where a baseline has none", async () => {
  const { worker, requests } = recordingWorker();
  const { finetune } = parseConfig({ finetune: { adamBeta2: 0.99, adamEpsilon: 1e-6, loraLearningRate: 1e-3 } });
  await createOptimizer(worker, "control/1", finetune);
  await createOptimizer(worker, "control/1", { loraLearningRate: 1e-4, embeddingLearningRate: 1e-3, weightDecay: 0, maxGradNorm: 1 });
  assert.deepEqual(
    requests.map((r) => [r.beta1, r.beta2, r.eps, r.groups?.[0]?.learningRate]),
    [
      [0.9, 0.99, 1e-6, 1e-3],
      [0.9, 0.999, 1e-8, 1e-4],
    ],
  );
});
