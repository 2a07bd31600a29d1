/**
 * The CTRL pipeline end to end on a tiny random backbone: the run folder's files, resume, and
 * bad input refused before any work with nothing in runs/ touched.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import type { ConfigInput } from "../../src/ctrl/config.js";
import { readSamplerRecord } from "../../src/ctrl/controls.js";
import { runCtrl } from "../../src/ctrl/pipeline.js";
import { brightnessImages, makeTinyBackbone, tempDir, writeDataset } from "../helpers.js";

let backbone: string;

before(async () => {
  backbone = await makeTinyBackbone(undefined, 32);
  process.env.CTRL_CACHE_DIR = tempDir("ctrl-cache-"); // the offline samples' cache, private to this test
});

function tinyConfig(runsDir: string): ConfigInput {
  return {
    backbone,
    runsDir,
    device: "cpu",
    workers: 1, // one worker, whatever "auto" would pick on this machine (test/e2e/dataParallel.test.ts runs two)
    dataset: { kind: "default", numImages: 96, thresholdsFrom: "dataset" },
    sampler: { steps: 3 },
    classifier: { epochs: 1, width: 8, batchSize: 32, robust: { epochs: 1 } },
    finetune: { epochs: 2, stepsPerEpoch: 1, batchSize: 4, gradAccumulation: 1, checkpointEvery: 1 },
    evaluation: { numSamples: 16, batchSize: 0 },
  };
}

test("a run writes config, metrics, checkpoints, summary and report, and resumes", async () => {
  const runsDir = tempDir("ctrl-runs-");
  const { run, results } = await runCtrl(tinyConfig(runsDir));
  assert.equal(readFileSync(path.join(runsDir, "latest", "config.json"), "utf8"), readFileSync(run.path("config.json"), "utf8"));
  const summary = JSON.parse(readFileSync(run.path("summary.json"), "utf8")) as Record<string, unknown>[];
  assert.deepEqual(summary.map((row) => row.method), ["pretrained", "ctrl"]);
  for (const row of summary) {
    for (const key of ["task", "method", "accuracy", "macro_f1", "n_samples", "mean_kl", "seconds", "seed"]) assert.ok(key in row, `${key} in summary`);
    assert.equal(row.n_samples, 16);
  }
  assert.equal(summary[0]!.mean_kl, 0);
  assert.equal((summary[1]!.grain_vs_pretrained as number[]).length, 4, "fine grain per class against the pre-trained samples");
  assert.ok((summary[1]!.mean_kl as number) > 0, "the fine-tuned model moved away from the pre-trained one");
  assert.match(String(summary[0]!.judged_by), /oracle: compressibility/);
  const metrics = readFileSync(run.path("metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { phase: string });
  assert.equal(metrics.filter((m) => m.phase === "finetune").length, 2);
  // The reward classifier: a plain and an adversarially trained candidate, one of them chosen by held-out accuracy.
  const choice = metrics.find((m) => m.phase === "classifier-choice") as unknown as { chosen: string; plain_accuracy: number; robust_accuracy: number; max_accuracy_drop: number };
  assert.ok(choice, "metrics.jsonl records the classifier choice");
  assert.equal(choice.chosen, choice.robust_accuracy >= choice.plain_accuracy - choice.max_accuracy_drop ? "robust" : "plain");
  assert.equal(metrics.filter((m) => m.phase === "classifier-robust").length, 1, "one epoch of adversarial training");
  assert.ok(existsSync(run.path("classifier-plain", "classifier.json")), "the plain classifier the adversarial candidate started from");
  assert.deepEqual(readdirSync(run.path("checkpoints")).sort(), ["epoch-0001", "epoch-0002"]);
  for (const file of ["label_lora_weights.safetensors", "label_embeddings.safetensors", "control.json", "optimizer.safetensors", "sampler.json"]) {
    assert.ok(existsSync(run.path("checkpoints", "epoch-0002", file)), file);
  }
  assert.deepEqual(readSamplerRecord(run.path("checkpoints", "epoch-0002")), { steps: 3, eta: 0.5, offset: 332 }, "the control remembers its sampler (trailing: 998, 665, 332)");
  assert.equal(readdirSync(path.join(process.env.CTRL_CACHE_DIR!, "samples")).length, 1, "the offline samples were cached once");
  const report = readFileSync(run.path("report.html"), "utf8");
  assert.match(report, /<svg/);
  assert.match(report, /grids\/ctrl-compressibility-0\.png/);
  assert.match(report, /Reward classifier: (adversarially trained|plain)/);
  assert.equal(results[1]!.evaluation.targets.length, 16);

  // Resume from the first checkpoint: the second epoch is redone and gives the same model.
  const state = JSON.parse(readFileSync(run.path("state.json"), "utf8")) as Record<string, unknown>;
  writeFileSync(run.path("state.json"), JSON.stringify({ ...state, completedEpochs: 1, checkpoint: "checkpoints/epoch-0001" }));
  const resumed = await runCtrl({}, { resume: run.dir });
  assert.equal(resumed.run.dir, run.dir);
  assert.deepEqual(resumed.results[1]!.evaluation.judged, results[1]!.evaluation.judged);
  assert.ok(Math.abs(resumed.results[1]!.meanKl! - results[1]!.meanKl!) < 1e-3 * Math.max(1, results[1]!.meanKl!));
});

test("a second run with the same backbone, sampler and seed reads its offline samples from the cache", async () => {
  const [first, second] = [tempDir("ctrl-runs-"), tempDir("ctrl-runs-")];
  const config = (runsDir: string): ConfigInput => ({ ...tinyConfig(runsDir), finetune: { epochs: 1, stepsPerEpoch: 1, batchSize: 2, gradAccumulation: 1, checkpointEvery: 1 } });
  const a = await runCtrl(config(first));
  const entries = readdirSync(path.join(process.env.CTRL_CACHE_DIR!, "samples")).sort();
  const b = await runCtrl(config(second));
  assert.deepEqual(readdirSync(path.join(process.env.CTRL_CACHE_DIR!, "samples")).sort(), entries, "no new entry");
  assert.equal(readFileSync(b.run.path("dataset", "labels.csv"), "utf8"), readFileSync(a.run.path("dataset", "labels.csv"), "utf8"));
  const pngA = readFileSync(a.run.path("dataset", "images", "000007.png"));
  assert.ok(pngA.equals(readFileSync(b.run.path("dataset", "images", "000007.png"))), "the same images, byte for byte");
});

test("bad input is refused before any work and leaves runs/ as it was", async () => {
  const runsDir = tempDir("ctrl-runs-");
  writeFileSync(path.join(runsDir, "precious.txt"), "keep");
  const single = await writeDataset(path.join(tempDir(), "single"), { width: 32, height: 32, pixels: brightnessImages(32, [0, 0, 0]) }, { level: [0, 0, 0] });
  const wrongSize = await writeDataset(path.join(tempDir(), "small"), { width: 16, height: 16, pixels: brightnessImages(16, [0, 1]) }, { level: [0, 1] });
  const cases: [ConfigInput, RegExp][] = [
    [{ ...tinyConfig(runsDir), dataset: { kind: "folder", path: single, labelColumn: "level" } }, /at least two classes/],
    [{ ...tinyConfig(runsDir), dataset: { kind: "folder", path: wrongSize, labelColumn: "level" } }, /images are \[3, 16, 16\].*backbone makes \[3, 32, 32\]/],
    [{ ...tinyConfig(runsDir), dataset: { kind: "folder", path: "/no/such/data", labelColumn: "level" } }, /dataset\.path: no folder/],
    [{ ...tinyConfig(runsDir), sampler: { steps: -1 }, finetune: { klWeight: -1 } }, /sampler\.steps[\s\S]*finetune\.klWeight/],
    [{ ...tinyConfig(runsDir), backbone: path.join(tempDir(), "missing-model") }, /source: no directory/],
  ];
  for (const [config, message] of cases) await assert.rejects(runCtrl(config), message);
  assert.deepEqual(readdirSync(runsDir), ["precious.txt"]);
});
