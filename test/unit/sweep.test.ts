import assert from "node:assert/strict";
import { test } from "node:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { configProblems, tempDir } from "../helpers.js";
import { parseSweep, product } from "../../src/sweep/config.js";
import { collectSweep, groupByCombination, sweepTable, type SweepResult } from "../../src/sweep/run.js";

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
    diversity: [1, accuracy / 2], thumbnailDiversity: null,
  });
  const results = [result(0.1, 0, 0.9), result(0.1, 1, 0.8), result(1, 0, 0.5), result(1, 1, 0.5)];
  assert.equal(groupByCombination(results).length, 2);
  const table = sweepTable(sweep, results).split("\n");
  assert.equal(table.length, 4);
  assert.match(table[2]!, /^\| 0\.1 \| 2 \| 0\.850 \(0\.800–0\.900\) \| 0\.850 \(0\.800–0\.900\) \| 10 \| 0\.425 \(0\.400–0\.450\) \|  \|/);
});

test("finished runs are collected into a sweep by the values in their configs", async () => {
  const dir = tempDir("ctrl-sweep-");
  const runAt = (name: string, klWeight: number, accuracy: number, finished = true) => {
    const run = path.join(dir, name);
    mkdirSync(run);
    writeFileSync(path.join(run, "config.json"), JSON.stringify({ seed: 3, finetune: { klWeight } }));
    const rows = [{ method: "pretrained", accuracy: 0.25, macro_f1: 0.25, mean_kl: 0 }];
    if (finished) rows.push({ method: "ctrl", accuracy, macro_f1: accuracy, mean_kl: 40, seconds: 120, diversity_vs_pretrained: [0.9, 0.6] } as never);
    writeFileSync(path.join(run, "summary.json"), JSON.stringify(rows));
    writeFileSync(path.join(run, "metrics.jsonl"), `${JSON.stringify({ phase: "checkpoint-eval", step: 8, accuracy: 0.5 })}\n`);
    return run;
  };
  const sweep = parseSweep({ name: "kl", grid: { "finetune.klWeight": [1, 100] } });
  const out = path.join(dir, "out");
  const results = await collectSweep(sweep, [runAt("a", 1, 0.99), runAt("b", 100, 0.97)], out);
  assert.deepEqual(results.map((r) => [r.values["finetune.klWeight"], r.seed, r.accuracy, r.seconds, r.curve]), [[1, 3, 0.99, 120, [[8, 0.5]]], [100, 3, 0.97, 120, [[8, 0.5]]]]);
  assert.match(readFileSync(path.join(out, "sweep.md"), "utf8"), /\| 100 \| 1 \| 0\.97 \| 0\.97 \| 40 \| 0\.6 \|  \| 0\.25 \|/);
  assert.ok(existsSync(path.join(out, "diversity-vs-finetune-klWeight.png")));
  await assert.rejects(collectSweep(sweep, [runAt("c", 1, 0, false)], out), /summary\.json has no ctrl row: is the run finished\?/);
  const bandsSweep = parseSweep({ name: "bands", grid: { "control.timestepBands": [1, 5] } });
  await assert.rejects(collectSweep(bandsSweep, [path.join(dir, "a")], out), /control\.timestepBands is missing \(the run predates it\?\)/);
});
