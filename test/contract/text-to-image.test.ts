/**
 * Contract tests for latent text-to-image backbones (the Stable Diffusion layout) over the real
 * RPC path, on a tiny pipeline built from configs: loading, prompts with classifier-free guidance,
 * a CTRL training step, the exported control and `ctrl sample --control --prompt`.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, test } from "node:test";
import { execa } from "execa";
import sharp from "sharp";
import { klPenalty, logProb, rewardTerms } from "../../src/rewards/expression.js";
import { sampleStepwise } from "../../src/sampling/stepwise.js";
import { ddimTimesteps } from "../../src/sampling/schedules.js";
import { PROJECT_ROOT } from "../../src/worker/spawn.js";
import { Worker } from "../../src/worker/worker.js";
import { makeTinyBackbone, makeTinyTextToImage, rejectsWith, tempDir } from "../helpers.js";

let worker: Worker;
let modelDir: string;
const timesteps = ddimTimesteps({ numTrainTimesteps: 1000, steps: 4, offset: 1 });
const text = { prompts: ["a red square", "a blue circle"], guidanceScale: 7.5 };

before(async () => {
  modelDir = await makeTinyTextToImage();
  worker = await Worker.start({ device: "cpu", watchdog: false, telemetry: false, threads: 1 });
});

after(async () => {
  await worker?.close();
});

test("a Stable-Diffusion-layout folder loads as a latent text-to-image backbone", async () => {
  const backbone = await worker.loadBackbone(modelDir);
  assert.equal(backbone.modelClass, "UNet2DConditionModel");
  assert.equal(backbone.textToImage, true);
  assert.deepEqual(backbone.sampleShape, [4, 8, 8]);
  assert.deepEqual(backbone.imageShape, [3, 16, 16]);
  assert.equal(backbone.stepsOffset, 1);
  await worker.release(backbone.handle);
});

test("prompts guide sampling; fused and stepwise sampling decode the same images", async () => {
  const backbone = await worker.loadBackbone(modelDir);
  const request = { model: backbone.handle, numSamples: 2, timesteps, eta: 1, seed: 3, text };
  const fused = await worker.sample(request);
  assert.equal(fused.width, 16);
  assert.equal(fused.count, 2);
  const stepwise = await sampleStepwise(worker, request);
  assert.deepEqual(Buffer.from(stepwise.data), Buffer.from(fused.data));
  const otherPrompt = await worker.sample({ ...request, text: { prompts: ["something else entirely"] } });
  assert.notDeepEqual(Buffer.from(otherPrompt.data), Buffer.from(fused.data));
  await rejectsWith(worker.sample({ ...request, text: { prompts: ["a", "b", "c"] } }), "INVALID_ARGUMENT", /^text\.prompts: give one prompt/);
  await rejectsWith(worker.sample({ ...request, text: { guidanceScale: -2 } }), "INVALID_ARGUMENT", /^text\.guidance_scale: must be in/);
  await worker.release(backbone.handle);
});

test("a pixel-space backbone refuses prompts, naming the field", async () => {
  const pixel = await worker.loadBackbone(await makeTinyBackbone());
  await rejectsWith(
    worker.sample({ model: pixel.handle, numSamples: 1, timesteps, eta: 1, seed: 0, text: { prompts: ["a cat"] } }),
    "INVALID_ARGUMENT",
    /^text\.prompts: UNet2DModel is an unconditional pixel-space model/,
  );
  await worker.release(pixel.handle);
});

test("a CTRL step with guidance in the rollout, then sampling the exported control from the CLI", async () => {
  const backbone = await worker.loadBackbone(modelDir);
  const control = await worker.addControl({
    backbone: backbone.handle,
    fields: [{ name: "compressibility", numClasses: 4 }],
    loraRank: 4,
    loraAlpha: 4,
    loraTargetModules: ["to_q", "to_k", "to_v", "to_out.0"],
    seed: 0,
  });
  const optimizer = await worker.createOptimizer({
    control: control.handle,
    groups: [
      { name: "lora", learningRate: 1e-2 },
      { name: "embedding", learningRate: 1e-1 },
    ],
    maxGradNorm: 5,
  });
  const classifier = await worker.createClassifier({ inputShape: backbone.imageShape, numClasses: 4, architecture: "convnet", width: 8, seed: 0, learningRate: 1e-3 });
  const labels = { compressibility: [1, 3] };
  const rolloutRequest = { control: control.handle, numSamples: 2, labels, timesteps, eta: 1, seed: 5, gradSteps: [false, true, false, true], checkpointing: true, text };
  const fresh = await worker.rollout(rolloutRequest);
  assert.equal(fresh.unetCalls, timesteps.length, "one fused UNet call per step for the four branches");
  assert.deepEqual(fresh.klPerSample, [0, 0], "a fresh control is its backbone");
  const terms = rewardTerms([logProb(classifier.handle, "compressibility"), klPenalty(0.01)]);
  await worker.backward({ rollout: fresh.handle, terms, lossScale: 1 });
  const step = await worker.optimizerStep(optimizer.handle);
  assert.ok(step.gradNorm > 0);

  const separate = await worker.rollout({ ...rolloutRequest, separateUnetCalls: true });
  assert.ok(separate.unetCalls > 3 * timesteps.length, "the official layout: one call per branch");
  assert.ok(separate.klPerSample.every((kl) => kl > 0), "after a step the control differs from the backbone");
  const fused = await worker.rollout(rolloutRequest);
  fused.klPerSample.forEach((kl, i) => assert.ok(Math.abs(kl - separate.klPerSample[i]!) <= 1e-3 * Math.max(1, kl)));
  await worker.release(fused.handle);
  await worker.release(separate.handle);

  const saved = path.join(tempDir(), "control");
  await worker.saveControl(control.handle, saved);
  assert.ok(existsSync(path.join(saved, "pytorch_lora_weights.safetensors")));
  await worker.release(backbone.handle);

  const out = path.join(tempDir(), "grid.png");
  const cli = ["bin/ctrl.js", "sample", "--model", modelDir, "--control", saved, "--label", "2", "--prompt", "a cat", "--n", "2", "--steps", "3", "--out", out, "--device", "cpu"];
  await execa("node", cli, { cwd: PROJECT_ROOT });
  const meta = await sharp(readFileSync(out)).metadata();
  assert.ok(meta.height! >= 16 && meta.height! < 32, `one row of 16x16 images, got height ${meta.height}`);
  const missingLabel = await execa("node", cli.filter((_, i) => i !== 6 && i !== 7), { cwd: PROJECT_ROOT, reject: false });
  assert.notEqual(missingLabel.exitCode, 0);
  assert.match(missingLabel.stderr, /--label: give a class for compressibility/);
});
