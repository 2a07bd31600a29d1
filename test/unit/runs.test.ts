import assert from "node:assert/strict";
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { Run } from "../../src/ctrl/runs.js";
import { tempDir } from "../helpers.js";

test("new runs never reuse a folder and latest points at the newest", () => {
  const runs = tempDir();
  const when = new Date("2026-11-26T10:00:00Z");
  const a = Run.create(runs, "compressibility", 0, when);
  writeFileSync(a.path("keep.txt"), "precious");
  const b = Run.create(runs, "compressibility", 0, when);
  assert.notEqual(a.dir, b.dir);
  assert.equal(readFileSync(a.path("keep.txt"), "utf8"), "precious");
  assert.equal(readlinkSync(path.join(runs, "latest")), path.basename(b.dir));
});

test("files are replaced whole and metrics append", () => {
  const run = Run.create(tempDir(), "t", 1);
  run.writeJson("config.json", { a: 1 });
  run.writeJson("config.json", { a: 2 });
  assert.deepEqual(run.readJson("config.json"), { a: 2 });
  run.logMetrics({ step: 1 });
  run.logMetrics({ step: 2 });
  assert.deepEqual(run.readMetrics().map((m) => m.step), [1, 2]);
  assert.equal(Run.open(run.dir).id, run.id);
  assert.throws(() => Run.open(tempDir()), /is not a ctrl run folder/);
});
