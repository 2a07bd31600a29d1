import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/ctrl/config.js";
import { configProblems } from "../helpers.js";

const problems = (input: unknown): string[] => configProblems(parseConfig, input);

test("an empty config resolves to the embedded default", () => {
  const config = parseConfig({});
  assert.equal(config.backbone, "models/default");
  assert.equal(config.dataset.kind, "default");
  assert.equal(config.sampler.eta, 0.5);
  assert.deepEqual(config.finetune.truncation, { kind: "none" });
  assert.equal(config.dataset.kind === "default" && config.dataset.images, "samples", "the paper's recipe: the model's own samples");
  assert.equal(config.classifier.architecture, "stats-convnet");
  assert.deepEqual(config.classifier.robust, { epsilon: 0.036, steps: 3, epochs: 5, maxAccuracyDrop: 0.1 });
  assert.equal(config.control.timestepBands, 5);
  assert.equal(config.control.loraPerLabel, true);
  assert.equal(config.finetune.loraLearningRate, 1e-2);
  assert.equal(config.finetune.embeddingLearningRate, 1e-2);
  assert.equal(config.finetune.klWeight, 3);
  assert.equal(config.finetune.confidenceCap, 0.97);
  assert.equal(config.finetune.klWeightRamp, 10);
  assert.equal(config.finetune.adaptiveKl.enabled, false);
  assert.equal(config.finetune.adamBeta2, 0.999);
});

test("each bad field gets its own message naming it", () => {
  const found = problems({
    seed: -1,
    sampler: { steps: -5, eta: 1.5 },
    finetune: { klWeight: -0.1, batchSize: 0, confidenceCap: 1.5, adamBeta2: 1 },
    evaluation: { numSamples: 0 },
    classifier: { robust: { epsilon: 2, steps: 0 } },
    surprise: true,
  });
  const fields = found.map((p) => p.split(":")[0]);
  for (const field of ["seed", "sampler.steps", "sampler.eta", "finetune.klWeight", "finetune.batchSize", "finetune.confidenceCap", "finetune.adamBeta2", "evaluation.numSamples", "classifier.robust.epsilon", "classifier.robust.steps"]) {
    assert.ok(fields.includes(field), `no message for ${field} in ${JSON.stringify(found)}`);
  }
  assert.ok(found.some((p) => p.includes("surprise")), "unknown keys are reported");
});

test("cross-field checks: truncation longer than the sampler, label weights per class", () => {
  assert.match(problems({ sampler: { steps: 10 }, finetune: { truncation: { kind: "last", steps: 20 } } })[0]!, /^finetune\.truncation\.steps: must be at most sampler\.steps \(10\)/);
  assert.match(problems({ finetune: { labelWeights: [1, 1] } })[0]!, /^finetune\.labelWeights: expected 4 weights/);
  assert.match(problems({ sampler: { offset: 1 } })[0]!, /^sampler\.offset: only with sampler\.spacing "leading"/);
  assert.equal(parseConfig({ sampler: { spacing: "leading", offset: 1 } }).sampler.offset, 1);
  assert.match(problems({ finetune: { labelWeights: [0, 0, 0, 0] } })[0]!, /at least one weight must be positive/);
});

test("control.timestepBands: one embedding per label unless asked, at most 64 bands", () => {
  assert.equal(parseConfig({ control: { timestepBands: 5 } }).control.timestepBands, 5);
  assert.match(problems({ control: { timestepBands: 0 } })[0]!, /^control\.timestepBands: Too small/);
  assert.match(problems({ control: { timestepBands: 65 } })[0]!, /^control\.timestepBands: Too big/);
  assert.match(problems({ control: { timestepBands: 2.5 } })[0]!, /^control\.timestepBands: /);
});

test("a folder dataset needs its path and label column", () => {
  const found = problems({ dataset: { kind: "folder" } });
  assert.ok(found.some((p) => p.startsWith("dataset.path")));
  assert.ok(found.some((p) => p.startsWith("dataset.labelColumn")));
  assert.ok(problems({ dataset: { kind: "mystery" } })[0]!.startsWith("dataset.kind"));
});

test("a label out of range, by its field", () => {
  assert.match(problems({ dataset: { kind: "default", numClasses: 1 } })[0]!, /^dataset\.numClasses/);
});

test("data parallel: workers, one device per worker, a batch that feeds every worker", () => {
  assert.equal(parseConfig({}).workers, "auto");
  assert.equal(parseConfig({ workers: 3 }).workers, 3);
  assert.deepEqual(parseConfig({ workers: 2, devices: ["cuda:0", "cuda:1"] }).devices, ["cuda:0", "cuda:1"]);
  assert.deepEqual(problems({ workers: 0 }), ["workers: Too small: expected number to be >0"]);
  assert.deepEqual(problems({ workers: 2, devices: ["cuda:0"] }), ["devices: expected one device per worker (workers: 2), got 1"]);
  assert.match(problems({ devices: ["tpu"] })[0]!, /^devices\.0: auto, cpu, cuda or cuda:N/);
  assert.deepEqual(problems({ workers: 4, finetune: { batchSize: 2 } }), [
    "finetune.batchSize: each of the 4 workers needs at least one sample of every rollout, got 2",
  ]);
});
