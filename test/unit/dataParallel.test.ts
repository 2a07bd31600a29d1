import assert from "node:assert/strict";
import { test } from "node:test";
import { DataParallel, ReplicaDivergenceError, shardSlices } from "../../src/ctrl/dataParallel.js";
import { WorkerGroup, autoWorkerCount } from "../../src/worker/group.js";
import type { Worker } from "../../src/worker/worker.js";

test("shardSlices cuts a batch into contiguous slices differing by at most one", () => {
  assert.deepEqual(shardSlices(5, 2), [
    { offset: 0, count: 3 },
    { offset: 3, count: 2 },
  ]);
  assert.deepEqual(
    shardSlices(8, 4).map((s) => s.count),
    [2, 2, 2, 2],
  );
  assert.deepEqual(
    shardSlices(2, 3).map((s) => s.count),
    [1, 1, 0],
  );
});

/** A fake rank that records its requests and answers like a worker would. */
function fakeRank(rank: number, log: { rank: number; method: string; request: unknown }[], checksum = "same") {
  const record = (method: string, request: unknown) => log.push({ rank, method, request });
  return {
    async rollout(request: { numSamples: number }) {
      record("rollout", request);
      return { handle: `rollout-r${rank}`, klPerStep: [rank + 1, 0], klPerSample: Array(request.numSamples).fill(rank), gradStepsKept: 2, seconds: rank, unetCalls: 4 };
    },
    async backward(request: unknown) {
      record("backward", request);
      return { loss: rank === 0 ? 1 : 4, terms: [{ mean: rank === 0 ? -1 : -4, perSample: [rank] }], seconds: 0, nonFinite: false };
    },
    async optimizerStep(optimizer: string, scale: number, options: unknown) {
      record("optimizerStep", { optimizer, scale, options });
      return { gradNorm: 1, steps: 1, skipped: false, parameterChecksum: rank === 0 ? "same" : checksum };
    },
  } as unknown as Worker;
}

function groupOf(workers: Worker[]): WorkerGroup {
  return Object.assign(Object.create(WorkerGroup.prototype) as WorkerGroup, { workers });
}

test("DataParallel shards a rollout, scales each rank's loss by its share and maps handles", async () => {
  const log: { rank: number; method: string; request: unknown }[] = [];
  const parallel = new DataParallel(groupOf([fakeRank(0, log), fakeRank(1, log)]));
  await parallel.replicate("control-0", async () => "control-1");
  await parallel.replicate("classifier-0", async () => "classifier-1");
  await parallel.replicate("optimizer-0", async () => "optimizer-1");
  const rollout = await parallel.rollout({
    control: "control-0",
    numSamples: 4,
    labels: { y: [0, 1, 2, 3] },
    seed: 7,
    text: { prompts: ["a", "b", "c", "d"], guidanceScale: 2 },
  });
  const sent = log.filter((entry) => entry.method === "rollout").map((entry) => entry.request as Record<string, unknown>);
  assert.deepEqual(
    sent.map((r) => [r.control, r.numSamples, r.shardOffset, r.shardTotal, r.seed, (r.labels as { y: number[] }).y, (r.text as { prompts: string[] }).prompts]),
    [
      ["control-0", 2, 0, 4, 7, [0, 1], ["a", "b"]],
      ["control-1", 2, 2, 4, 7, [2, 3], ["c", "d"]],
    ],
  );
  assert.equal(rollout.handle, "rollout-r0");
  assert.deepEqual(rollout.klPerStep, [1.5, 0]);
  assert.deepEqual(rollout.klPerSample, [0, 0, 1, 1]);

  const result = await parallel.backward({
    rollout: rollout.handle,
    terms: [{ weight: 1, source: { $case: "classifierLogProb", value: { classifier: "classifier-0", labelField: "y" } } }],
    lossScale: 0.5,
  });
  const backward = log.filter((entry) => entry.method === "backward").map((entry) => entry.request as { rollout: string; lossScale: number; terms: { source: { value: { classifier: string } } }[] });
  assert.deepEqual(
    backward.map((r) => [r.rollout, r.lossScale, r.terms[0]!.source.value.classifier]),
    [
      ["rollout-r0", 0.25, "classifier-0"],
      ["rollout-r1", 0.25, "classifier-1"],
    ],
  );
  assert.equal(result.loss, 2.5); // (1 + 4) / 2: the batch's mean loss
  assert.equal(result.terms[0]!.mean, -2.5);
  await assert.rejects(parallel.backward({ rollout: rollout.handle, terms: [] }), /no live rollout/);

  const step = await parallel.optimizerStep("optimizer-0", 0.5);
  assert.equal(step.parameterChecksum, "same");
  const steps = log.filter((entry) => entry.method === "optimizerStep").map((entry) => entry.request as { optimizer: string; options: { checksum: boolean } });
  assert.deepEqual(
    steps.map((r) => [r.optimizer, r.options.checksum]),
    [
      ["optimizer-0", true],
      ["optimizer-1", true],
    ],
  );
});

test("DataParallel stops when the ranks' parameters differ after a step", async () => {
  const log: { rank: number; method: string; request: unknown }[] = [];
  const parallel = new DataParallel(groupOf([fakeRank(0, log), fakeRank(1, log, "other")]));
  await parallel.replicate("optimizer-0", async () => "optimizer-1");
  await assert.rejects(parallel.optimizerStep("optimizer-0"), ReplicaDivergenceError);
});

test("DataParallel refuses a rollout smaller than the group and unreplicated handles", async () => {
  const log: { rank: number; method: string; request: unknown }[] = [];
  const parallel = new DataParallel(groupOf([fakeRank(0, log), fakeRank(1, log)]));
  await assert.rejects(parallel.rollout({ control: "c", numSamples: 1, labels: { y: [0] } }), /at least one sample per worker/);
  await assert.rejects(parallel.rollout({ control: "c", numSamples: 2, labels: { y: [0, 1] } }), /not replicated on rank 1/);
});

test("workers auto: 2 CPU workers on 2 or more cores, 1 on a GPU, one per listed device", () => {
  const machine = (cores: number, nvidia: boolean) => ({ cores: () => cores, hasNvidiaDevice: () => nvidia });
  assert.equal(autoWorkerCount("cpu", undefined, 16, machine(2, true)), 2, "device cpu: the CPU even beside a GPU");
  assert.equal(autoWorkerCount("auto", undefined, 16, machine(16, false)), 2, "auto without an NVIDIA device is the CPU");
  assert.equal(autoWorkerCount("auto", undefined, 16, machine(16, true)), 1, "auto with an NVIDIA device: torch's CUDA, one worker");
  assert.equal(autoWorkerCount("cuda", undefined, 16, machine(16, false)), 1);
  assert.equal(autoWorkerCount("cpu", undefined, 16, machine(1, false)), 1, "one core: one worker");
  assert.equal(autoWorkerCount("cpu", undefined, 1, machine(8, false)), 1, "a rollout of one sample cannot be shared");
  assert.equal(autoWorkerCount("cuda", ["cuda:0", "cuda:1", "cuda:2"], 16, machine(16, true)), 3);
});
