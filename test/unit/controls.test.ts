import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { labelsFromFlags, readSamplerRecord, resolveControlDirectory, writeSamplerRecord } from "../../src/ctrl/controls.js";
import { tempDir } from "../helpers.js";

function checkpoint(folder: string): string {
  mkdirSync(folder, { recursive: true });
  writeFileSync(path.join(folder, "control.json"), "{}");
  return folder;
}

test("a control is found as a checkpoint folder, by a run's state.json, or as its latest epoch", () => {
  const run = tempDir();
  checkpoint(path.join(run, "checkpoints", "epoch-0004"));
  const latest = checkpoint(path.join(run, "checkpoints", "epoch-0012"));
  assert.equal(resolveControlDirectory(latest), latest);
  assert.equal(resolveControlDirectory(run), latest);
  writeFileSync(path.join(run, "state.json"), JSON.stringify({ checkpoint: "checkpoints/epoch-0004" }));
  assert.equal(resolveControlDirectory(run), path.join(run, "checkpoints", "epoch-0004"));
  assert.throws(() => resolveControlDirectory(tempDir()), /^Error: --control: .* is neither a control checkpoint/);
});

test("--label values become per-sample labels, with clear errors", () => {
  const one = [{ name: "compressibility", numClasses: 4 }];
  const two = [...one, { name: "brightness", numClasses: 2 }];
  assert.deepEqual(labelsFromFlags(["3"], one, 2), { compressibility: [3, 3] });
  assert.deepEqual(labelsFromFlags(["brightness=1", "compressibility=-1"], two, 1), { compressibility: [-1], brightness: [1] });
  assert.throws(() => labelsFromFlags(["4"], one, 1), /--label: compressibility takes a class in \[0, 4\) or -1/);
  assert.throws(() => labelsFromFlags(["1"], two, 1), /several fields .* write FIELD=K/);
  assert.throws(() => labelsFromFlags(["size=1"], one, 1), /no label field "size"/);
  assert.throws(() => labelsFromFlags(["x"], one, 1), /expected K or FIELD=K/);
  assert.throws(() => labelsFromFlags(["brightness=1"], two, 1), /give a class for compressibility/);
  assert.throws(() => labelsFromFlags(["1", "2"], one, 1), /compressibility is given twice/);
});

test("a checkpoint's sampler.json round-trips, is optional, and is checked field by field", () => {
  const folder = checkpoint(path.join(tempDir(), "c"));
  assert.equal(readSamplerRecord(folder), undefined, "older checkpoints have none");
  writeSamplerRecord(folder, { steps: 10, eta: 0.5, offset: 0 });
  assert.deepEqual(readSamplerRecord(folder), { steps: 10, eta: 0.5, offset: 0 });
  writeSamplerRecord(folder, { steps: 50, eta: 1, offset: 1, guidanceScale: 7.5 });
  assert.deepEqual(readSamplerRecord(folder), { steps: 50, eta: 1, offset: 1, guidanceScale: 7.5 });
  for (const [content, pattern] of [
    ["{oops", /not readable JSON/],
    ["[1]", /expected a JSON object/],
    [JSON.stringify({ steps: 0, eta: 1, offset: 0 }), /'steps' must be an integer in \[1, 10000\], got 0/],
    [JSON.stringify({ steps: 10, eta: 2, offset: 0 }), /'eta' must be a number in \[0, 1\], got 2/],
    [JSON.stringify({ steps: 10, eta: 1 }), /'offset' must be an integer/],
    [JSON.stringify({ steps: 10, eta: 1, offset: 0, guidanceScale: "high" }), /'guidanceScale' must be a number/],
  ] as const) {
    writeFileSync(path.join(folder, "sampler.json"), content);
    assert.throws(() => readSamplerRecord(folder), pattern);
  }
});
