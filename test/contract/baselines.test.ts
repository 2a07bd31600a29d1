/**
 * Contract tests for the baselines' RPCs against a real worker: guided trajectories (every scale 0
 * is exactly the pre-trained sampler), the denoising loss of classifier-free guidance, the
 * noise-aware classifier, best-of-N, and CTRL's multi-control reward.
 */
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { bestOfN } from "../../src/baselines/bestOfN.js";
import { trainClassifierFree } from "../../src/baselines/classifierFree.js";
import { type Guidance, sampleGuided } from "../../src/baselines/guidance.js";
import { addControl, createOptimizer } from "../../src/ctrl/augment.js";
import { trainClassifier } from "../../src/ctrl/classifier.js";
import { parseConfig } from "../../src/ctrl/config.js";
import { Run } from "../../src/ctrl/runs.js";
import { logSoftmax } from "../../src/eval/metrics.js";
import { ctrlReward, rewardTerms } from "../../src/rewards/expression.js";
import { ddimTimesteps } from "../../src/sampling/schedules.js";
import { uint8Tensor } from "../../src/worker/tensors.js";
import { Worker } from "../../src/worker/worker.js";
import { brightnessImages, makeTinyBackbone, rejectsWith, tempDir, writeDataset } from "../helpers.js";

let worker: Worker;
let backbone: string;
let dataset: string;
const levels = Array.from({ length: 24 }, (_, i) => i % 3);
const parity = levels.map((_, i) => i % 2);
const timesteps = ddimTimesteps({ numTrainTimesteps: 1000, steps: 4 });
const N = 6;
const targets = [0, 1, 2, 0, 1, 2];
const loop = { timesteps, eta: 1 };
const settings = { loraLearningRate: 1e-2, embeddingLearningRate: 1e-1, weightDecay: 0, maxGradNorm: 1 };
const control = { loraRank: 4, loraAlpha: 4, loraTargets: ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"], timestepBands: 1, loraPerLabel: false };

before(async () => {
  const modelDir = await makeTinyBackbone(undefined, 16);
  const datasetDir = await writeDataset(path.join(tempDir(), "data"), { width: 16, height: 16, pixels: brightnessImages(16, levels) }, { a: levels, b: parity });
  worker = await Worker.start({ device: "cpu", watchdog: false, telemetry: false, threads: 1 });
  backbone = (await worker.loadBackbone(modelDir)).handle;
  dataset = (await worker.loadDataset(datasetDir)).handle;
});

after(async () => {
  await worker?.close();
});

async function classifier(column: "a" | "b", numClasses: number, architecture = "convnet"): Promise<string> {
  const created = await worker.createClassifier({ inputShape: [3, 16, 16], numClasses, architecture, width: 8, seed: 1, learningRate: 1e-2 });
  await worker.trainClassifierStep({ classifier: created.handle, dataset, labelColumn: column, indices: levels.map((_, i) => i), seed: 0 });
  return created.handle;
}

/** A control trained a little with the denoising loss, so that it is no longer the backbone. */
async function trainedControl(): Promise<string> {
  const added = await addControl(worker, backbone, [{ name: "a", numClasses: 3 }, { name: "b", numClasses: 2 }], control, 0);
  const optimizer = await createOptimizer(worker, added.handle, settings);
  const report = await trainClassifierFree(
    worker,
    { control: added.handle, optimizer: optimizer.handle, numTrainTimesteps: 1000 },
    { dataset, labels: { a: levels, b: parity } },
    { ...settings, steps: 3, batchSize: 8, labelDropout: 0.2 },
    0,
  );
  assert.ok(Number.isFinite(report.firstLoss) && Number.isFinite(report.lastLoss) && report.steps === 3);
  return added.handle;
}

describe("guided sampling", () => {
  let plain: Uint8Array;
  let guidance: (scale: number) => Record<string, Guidance[]>;

  before(async () => {
    plain = (await worker.sample({ model: backbone, numSamples: N, timesteps, eta: 1, seed: 7 })).data;
    const clean = await classifier("a", 3);
    const noisy = await classifier("a", 3, "noise-aware-resnet");
    const cfgControl = await trainedControl();
    const labels = { a: targets, b: targets.map((t) => t % 2) };
    guidance = (scale) => {
      const cfg: Guidance = { kind: "classifier-free", scale, control: cfgControl, labels };
      const reconstruction: Guidance = { kind: "reconstruction", scale, classifier: clean, targets };
      const classifierGuidance: Guidance = { kind: "classifier", scale, classifier: noisy, targets };
      return { cfg: [cfg], reconstruction: [reconstruction], classifier: [classifierGuidance], all: [cfg, reconstruction, classifierGuidance] };
    };
  });

  after(async () => {
    for (const handle of (await worker.listHandles()).filter((h) => h.kind === "control")) await worker.release(handle.handle);
  });

  test("every guidance baseline at scale 0 gives exactly the pre-trained sampler's images for the same seed", async () => {
    for (const [name, terms] of Object.entries(guidance(0))) {
      const samples = await sampleGuided(worker, { ...loop, backbone, numSamples: N, seed: 7, guidance: terms, computeKl: true });
      assert.deepEqual(samples.data, plain, `${name} at scale 0`);
      assert.deepEqual(samples.kl, Array(N).fill(0), `${name} at scale 0 has no KL`);
    }
  });

  test("a positive scale moves the samples away from the pre-trained ones, at a KL cost", async () => {
    const scales: Record<string, number> = { cfg: 3, reconstruction: 200, classifier: 200, all: 3 };
    for (const [name, terms] of Object.entries(guidance(1))) {
      const scaled = terms.map((t) => ({ ...t, scale: scales[name]! }));
      const samples = await sampleGuided(worker, { ...loop, backbone, numSamples: N, seed: 7, guidance: scaled, computeKl: true });
      assert.notDeepEqual(samples.data, plain, name);
      assert.ok(samples.kl!.every((kl) => kl > 0), `${name}: KL ${samples.kl}`);
    }
  });

  test("bad guidance is refused naming the field, and a KL needs computeKl", async () => {
    const reconstruction = guidance(1).reconstruction![0] as Extract<Guidance, { kind: "reconstruction" }>;
    const noisy = guidance(1).classifier![0] as Extract<Guidance, { kind: "classifier" }>;
    const start = (terms: Guidance[]) => sampleGuided(worker, { ...loop, backbone, numSamples: N, seed: 7, guidance: terms });
    await rejectsWith(start([{ ...reconstruction, scale: -1 }]), "INVALID_ARGUMENT", /^terms\[0\]\.scale/);
    await rejectsWith(start([{ ...reconstruction, targets: [0, 1] }]), "INVALID_ARGUMENT", /^terms\[0\]\.reconstruction\.targets/);
    await rejectsWith(start([{ ...noisy, classifier: reconstruction.classifier }]), "INVALID_ARGUMENT", /noise-aware-resnet/);
    const trajectory = await worker.startGuidedTrajectory({ backbone, numSamples: 2, seed: 0, terms: [] });
    await rejectsWith(worker.readTrajectoryKl(trajectory.handle), "FAILED_PRECONDITION", /compute_kl/);
    await worker.release(trajectory.handle);
  });
});

describe("training the baselines", () => {
  test("the denoising loss checks its rows, labels and timesteps by field", async () => {
    const added = await addControl(worker, backbone, [{ name: "a", numClasses: 3 }], control, 0);
    try {
      const request = { control: added.handle, dataset, indices: [0, 1], labels: { a: [0, -1] }, timesteps: [10, 900], seed: 0, lossScale: 1 };
      const result = await worker.denoisingLoss(request);
      assert.ok(result.loss > 0 && Number.isFinite(result.loss));
      await rejectsWith(worker.denoisingLoss({ ...request, labels: { a: [0] } }), "INVALID_ARGUMENT", /^labels\[0\]\.values/);
      await rejectsWith(worker.denoisingLoss({ ...request, timesteps: [10] }), "INVALID_ARGUMENT", /^timesteps/);
      await rejectsWith(worker.denoisingLoss({ ...request, indices: [0, 99] }), "INVALID_ARGUMENT", /^indices\[1\]/);
      await rejectsWith(worker.denoisingLoss({ ...request, lossScale: 0 }), "INVALID_ARGUMENT", /^loss_scale/);
    } finally {
      await worker.release(added.handle);
    }
  });

  test("a noise-aware classifier trains on noised rows through the classifier loop", async () => {
    const config = parseConfig({ classifier: { epochs: 2, batchSize: 8, width: 8 } });
    const report = await trainClassifier(
      worker,
      { dataset, column: "a", numClasses: 3, labels: levels, imageShape: [3, 16, 16] },
      config,
      Run.at(tempDir()),
      { noise: { backbone, timesteps }, phase: "noisy-classifier" },
    );
    assert.equal(report.temperature, 1);
    assert.ok(report.heldOutAccuracy >= 0 && report.heldOutAccuracy <= 1);
    const plainClassifier = await classifier("a", 3);
    const step = { classifier: plainClassifier, backbone, dataset, labelColumn: "a", indices: [0, 1], timesteps: [5, 500], seed: 0 };
    await rejectsWith(worker.trainNoisyClassifierStep(step), "INVALID_ARGUMENT", /^classifier: .*noise-aware-resnet/);
  });
});

describe("best-of-N and the multi-control reward", () => {
  test("best-of-N keeps, per image, the candidate its classifier scores highest; N = 1 is the pre-trained sampler", async () => {
    const scorer = { classifier: await classifier("a", 3), targets };
    const sample = (seed: number) => worker.sample({ model: backbone, numSamples: N, timesteps, eta: 1, seed });
    const one = await bestOfN(worker, { n: 1, scorers: [scorer], sample, seed: 7 });
    assert.deepEqual(one.images.data, (await sample(7)).data);
    const four = await bestOfN(worker, { n: 4, scorers: [scorer], sample, seed: 7 });
    assert.equal(four.candidatesPerImage, 4);
    four.scores.forEach((score, i) => assert.ok(score >= one.scores[i]!, `image ${i}: ${score} < ${one.scores[i]}`));
    await assert.rejects(bestOfN(worker, { n: 0, scorers: [scorer], sample, seed: 7 }), /n must be a positive integer/);
  });

  test("the multi-control reward equals the sum of the two classifiers' log-probabilities", async () => {
    const [first, second] = [await classifier("a", 3), await classifier("b", 2)];
    const added = await addControl(worker, backbone, [{ name: "a", numClasses: 3 }, { name: "b", numClasses: 2 }], control, 0);
    try {
      const labels = { a: targets, b: targets.map((t) => (t + 1) % 2) };
      const reward = ctrlReward([{ classifier: first, field: "a" }, { classifier: second, field: "b" }], 0, 1);
      const rollout = await worker.rollout({ control: added.handle, numSamples: N, labels, timesteps, eta: 1, seed: 11, gradSteps: [false, false, false, true] });
      const result = await worker.backward({ rollout: rollout.handle, terms: rewardTerms(reward), lossScale: 1 });
      const [a, b] = [result.terms[0]!.perSample, result.terms[1]!.perSample];
      const rewards = a.map((value, i) => value + b[i]!);
      assert.ok(Math.abs(result.loss + rewards.reduce((x, y) => x + y, 0) / N) < 1e-5, `loss ${result.loss} vs sum ${rewards}`);
      // A fresh control samples like its backbone: the classifiers' own log-probabilities of those images.
      const images = uint8Tensor(await worker.sample({ model: backbone, numSamples: N, timesteps, eta: 1, seed: 11 }));
      for (const [handle, values, field] of [[first, a, "a"], [second, b, "b"]] as const) {
        const scores = await worker.classifierLogits({ classifier: handle, images });
        scores.logits.forEach((row, i) => {
          const expected = logSoftmax(Array.from(row), scores.temperature)[labels[field][i]!]!;
          assert.ok(Math.abs(values[i]! - expected) < 0.05, `${field}[${i}]: ${values[i]} vs ${expected}`);
        });
      }
    } finally {
      await worker.release(added.handle);
    }
  });
});
