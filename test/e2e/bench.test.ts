/**
 * `make bench` in CPU mode, shrunk to seconds: the four variants (data parallel over 2 workers too) run and the JSON line has their
 * figures. Timings are not checked here (they belong to the benchmark's own output).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { execa } from "execa";
import { PROJECT_ROOT } from "../../src/worker/spawn.js";

test("the benchmark prints one JSON line with the four variants (CPU mode)", async () => {
  const args = ["--import", "tsx", "scripts/bench.ts", "--steps", "2", "--batch", "2", "--iterations", "1", "--warmup", "0", "--threads", "1"];
  const { stdout } = await execa("node", args, { cwd: PROJECT_ROOT });
  const lines = stdout.trim().split("\n");
  assert.equal(lines.length, 1, "exactly one line on stdout");
  const report = JSON.parse(lines[0]!);
  assert.equal(report.mode, "cpu");
  assert.match(report.note, /no GPU: CPU mode on the embedded default backbone/);
  for (const variant of ["ts", "pytorch", "official", "dp"]) {
    const result = report.variants[variant];
    assert.ok(result.samples_per_second > 0, `${variant}: samples per second`);
    assert.ok(result.peak_memory_bytes > 0, `${variant}: peak memory`);
  }
  assert.equal(report.variants.ts.unet_calls_per_iteration, 2, "fused: one call per step");
  assert.ok(report.variants.official.unet_calls_per_iteration > 2, "official: separate calls for the model and its frozen copy");
  assert.ok(report.ratios.ts_over_official_speed > 0);
  assert.equal(report.variants.dp.workers, 2);
  assert.ok(report.ratios.dp_scaling_efficiency > 0);
});
