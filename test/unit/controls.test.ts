import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { labelsFromFlags, resolveControlDirectory } from "../../src/ctrl/controls.js";
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
