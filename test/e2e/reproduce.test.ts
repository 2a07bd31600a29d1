/**
 * `make reproduce` end to end on a tiny random backbone with a few methods: the rows of every
 * experiment, the files, scale 0 reproducing the pre-trained samples, and the output folder rules.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { before, test } from "node:test";
import { type ReproduceInput, parseReproduceConfig } from "../../src/reproduce/config.js";
import { runReproduce } from "../../src/reproduce/reproduce.js";
import type { TableRow } from "../../src/reproduce/table.js";
import { makeTinyBackbone, tempDir } from "../helpers.js";

let backbone: string;

before(async () => {
  backbone = await makeTinyBackbone(undefined, 32);
  process.env.CTRL_CACHE_DIR = tempDir("ctrl-cache-"); // the pool of samples is cached: privately here
});

function tinyConfig(outDir: string): ReproduceInput {
  return {
    backbone,
    outDir,
    device: "cpu",
    threads: 1,
    methods: { single: ["pretrained", "cfg"], multi: ["ctrl"], efficiency: ["cfg"] },
    data: { singleSize: 60, multiSize: 40, efficiencySizes: [40, 60] },
    sampler: { steps: 2, eta: 1, spacing: "trailing" },
    evaluation: { numSamples: 8, seed: 3, batchSize: 0 },
    classifier: { width: 8, epochs: 1, batchSize: 32, learningRate: 1e-3 },
    ctrl: { epochs: 1, stepsPerEpoch: 1, batchSize: 4, gradAccumulation: 1, klWeights: [0.1], truncation: { kind: "random" }, warmupSteps: 0, loraLearningRate: 1e-3, embeddingLearningRate: 1e-2, weightDecay: 0, maxGradNorm: 1 },
    classifierFree: { steps: 2, batchSize: 8, labelDropout: 0.1, scales: [0, 2], efficiencyScale: 2, unconditional: "pretrained", loraLearningRate: 1e-3, embeddingLearningRate: 1e-2, weightDecay: 0, maxGradNorm: 1 },
    reconstruction: { scales: [1] },
    classifierGuidance: { epochs: 1, scales: [1] },
    bestOfN: { n: [2] },
  };
}

test("a reproduction writes every experiment's rows, the tables, the report and the plot", async () => {
  const outDir = path.join(tempDir("ctrl-reproduce-"), "out");
  const { rows } = await runReproduce(parseReproduceConfig(tinyConfig(outDir)), { preset: "test" });
  const key = (r: TableRow) => `${r.experiment}/${r.method}${r.setting ? ` ${r.setting}` : ""}/${r.labelled_images}`;
  assert.deepEqual(rows.map(key), [
    "single-control/pretrained/0",
    "single-control/cfg w = 0/60",
    "single-control/cfg w = 2/60",
    "multi-control/ctrl KL weight 0.1 to 1/80", // the default ramp: the weight rises tenfold
    "sample-efficiency/cfg w = 2/40",
    "sample-efficiency/cfg w = 2/60", // the single-control row, counted again
  ]);
  for (const row of rows) {
    assert.equal(row.n_samples, 8);
    assert.ok(row.peak_rss_mb !== null && row.peak_rss_mb > 50, `${key(row)}: peak ${row.peak_rss_mb}`);
    assert.ok(row.accuracy >= 0 && row.accuracy <= 1 && Number.isFinite(row.quality.value));
  }
  const multi = rows.find((r) => r.experiment === "multi-control")!;
  assert.deepEqual(Object.keys(multi.accuracy_per_control), ["compressibility_2", "brightness_2"]);
  assert.equal(multi.confusion.length, 4);

  // Scale 0 is the pre-trained sampler: the same images, so the same grid, accuracy and no KL.
  const grid = (r: TableRow) => readFileSync(path.join(outDir, r.grid));
  const pretrained = rows[0]!;
  const zero = rows[1]!;
  assert.deepEqual(grid(zero), grid(pretrained));
  assert.equal(zero.accuracy, pretrained.accuracy);
  assert.equal(zero.mean_kl, 0);

  const table = JSON.parse(readFileSync(path.join(outDir, "table.json"), "utf8")) as { rows: TableRow[]; preset: string; seconds: number };
  assert.equal(table.rows.length, rows.length);
  assert.equal(table.preset, "test");
  const markdown = readFileSync(path.join(outDir, "table.md"), "utf8");
  for (const heading of ["## single-control", "## multi-control", "## sample-efficiency"]) assert.ok(markdown.includes(heading), heading);
  const report = readFileSync(path.join(outDir, "report.html"), "utf8");
  assert.match(report, /Sample efficiency/);
  for (const file of ["sample-efficiency.png", "sample-efficiency.svg", "config.json", "data/labels-joint.csv"]) assert.ok(existsSync(path.join(outDir, file)), file);
});

test("an output folder that holds something else is refused before any work", async () => {
  const outDir = tempDir("ctrl-reproduce-");
  mkdirSync(path.join(outDir, "mine"));
  writeFileSync(path.join(outDir, "mine", "notes.txt"), "keep me");
  await assert.rejects(runReproduce(parseReproduceConfig(tinyConfig(outDir))), /outDir: .* is not empty/);
  assert.equal(readFileSync(path.join(outDir, "mine", "notes.txt"), "utf8"), "keep me");
});
