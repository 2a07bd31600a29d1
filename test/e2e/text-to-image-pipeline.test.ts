/**
 * The CTRL pipeline on a tiny text-to-image backbone: prompts as the condition, guidance in the
 * rollouts and the evaluation, images decoded by the VAE for the classifier and the oracle.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { ConfigError, type ConfigInput } from "../../src/ctrl/config.js";
import { runCtrl } from "../../src/ctrl/pipeline.js";
import { makeTinyBackbone, makeTinyTextToImage, tempDir } from "../helpers.js";

function config(backbone: string, runsDir: string): ConfigInput {
  return {
    backbone,
    runsDir,
    device: "cpu",
    threads: 1,
    workers: 1, // one worker, whatever "auto" would pick on this machine (test/e2e/dataParallel.test.ts runs two)
    text: { prompts: ["a red square", "a blue circle"], evaluationPrompts: ["a green triangle"], guidanceScale: 3 },
    dataset: { kind: "default", images: "samples", numImages: 48, thresholdsFrom: "dataset" },
    sampler: { steps: 3 },
    classifier: { epochs: 1, width: 8, batchSize: 16 },
    control: { loraTargets: ["to_q", "to_k", "to_v", "to_out.0"], loraPerLabel: false }, // the LoRA diffusers loads
    finetune: { epochs: 1, stepsPerEpoch: 1, batchSize: 2, gradAccumulation: 1, checkpointEvery: 1, checkpointing: true },
    evaluation: { numSamples: 8, batchSize: 0 },
  };
}

test("a run on a text-to-image backbone trains and evaluates with prompts", async () => {
  const runsDir = tempDir("ctrl-runs-");
  const { run } = await runCtrl(config(await makeTinyTextToImage(), runsDir));
  const summary = JSON.parse(readFileSync(run.path("summary.json"), "utf8")) as Record<string, unknown>[];
  assert.deepEqual(summary.map((row) => row.method), ["pretrained", "ctrl"]);
  assert.ok((summary[1]!.mean_kl as number) > 0);
  assert.ok(existsSync(run.path("checkpoints", "epoch-0001", "pytorch_lora_weights.safetensors")));
  const saved = JSON.parse(readFileSync(run.path("config.json"), "utf8")) as { text: { guidanceScale: number } };
  assert.equal(saved.text.guidanceScale, 3);
});

test("prompts for a pixel backbone, or 32x32 synthetic data for a larger one, are refused up front", async () => {
  const runsDir = tempDir("ctrl-runs-");
  await assert.rejects(runCtrl(config(await makeTinyBackbone(undefined, 16), runsDir)), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.match(error.message, /text: .* is an unconditional UNet2DModel; prompts need a text-to-image backbone/);
    return true;
  });
  const synthetic = { ...config(await makeTinyTextToImage(), runsDir), dataset: { kind: "default" as const, images: "synthetic" as const } };
  await assert.rejects(runCtrl(synthetic), /dataset\.images: the synthetic images are 32x32 RGB/);
  assert.ok(!existsSync(`${runsDir}/latest`), "nothing was written");
});
