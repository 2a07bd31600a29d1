import assert from "node:assert/strict";
import { test } from "node:test";
import { configProblems } from "../helpers.js";
import { parseSweep, product } from "../../src/sweep/config.js";
import { groupByCombination, sweepTable, type SweepResult } from "../../src/sweep/run.js";

const problems = (input: unknown): string[] => configProblems(parseSweep, input);

test("a sweep expands into one validated config per combination and seed", () => {
  const sweep = parseSweep({
    name: "kl",
    base: { finetune: { epochs: 3 } },
    grid: { "finetune.klWeight": [0.01, 0.1], "sampler.steps": [5, 10] },
    seeds: [0, 1],
  });
  assert.equal(sweep.points.length, 8);
  assert.deepEqual(sweep.paths, ["finetune.klWeight", "sampler.steps"]);
  const first = sweep.points[0]!;
  assert.deepEqual(first.values, { "finetune.klWeight": 0.01, "sampler.steps": 5 });
  assert.equal(first.config.finetune.klWeight, 0.01);
  assert.equal(first.config.finetune.epochs, 3, "the base is kept under the grid's values");
  assert.equal(first.config.task, "kl");
  assert.deepEqual(sweep.points.map((p) => p.seed).slice(0, 2), [0, 1]);
});

test("bad sweeps fail before any run, naming the field or combination", () => {
  assert.match(problems({ name: "x", grid: { "finetune.klWieght": [1] } })[0]!, /^grid\.finetune\.klWieght: no such field/);
  assert.match(problems({ name: "x", grid: { seed: [1, 2] } })[0]!, /give seeds in "seeds"/);
  assert.match(problems({ name: "x", grid: { "finetune.klWeight": [0.1, -1] } })[0]!, /^combination finetune\.klWeight=-1: finetune\.klWeight:/);
  assert.match(problems({ name: "x", grid: { "sampler.steps": [10] }, base: { sampler: { eta: 3 } } })[0]!, /sampler\.eta/);
  const shape = problems({ name: "Bad Name", grid: {}, seeds: [], extra: 1 });
  for (const field of ["name", "grid", "seeds"]) assert.ok(shape.some((p) => p.startsWith(`${field}:`)), `${field} in ${JSON.stringify(shape)}`);
  assert.ok(shape.some((p) => p.includes("extra")));
  assert.ok(problems({ name: "x", grid: { "finetune.klWeight": [] } }).some((p) => p.startsWith("grid.finetune.klWeight:")));
});

test("the grid's product varies the last field fastest", () => {
  assert.deepEqual(product({ a: [1, 2], b: ["x", "y"] }), [{ a: 1, b: "x" }, { a: 1, b: "y" }, { a: 2, b: "x" }, { a: 2, b: "y" }]);
});

test("the table shows each combination's mean and range over seeds", () => {
  const sweep = parseSweep({ name: "kl", grid: { "finetune.klWeight": [0.1, 1] }, seeds: [0, 1] });
  const result = (klWeight: number, seed: number, accuracy: number): SweepResult => ({
    values: { "finetune.klWeight": klWeight }, seed, run: "r", accuracy, macroF1: accuracy, meanKl: 10, pretrainedAccuracy: 0.25, curve: [], seconds: 60,
  });
  const results = [result(0.1, 0, 0.9), result(0.1, 1, 0.8), result(1, 0, 0.5), result(1, 1, 0.5)];
  assert.equal(groupByCombination(results).length, 2);
  const table = sweepTable(sweep, results).split("\n");
  assert.equal(table.length, 4);
  assert.match(table[2]!, /^\| 0\.1 \| 2 \| 0\.850 \(0\.800–0\.900\) \|/);
});
