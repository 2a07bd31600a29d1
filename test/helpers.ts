/** Shared fixtures for the TypeScript tests: tiny backbones made by the worker's own code. */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { defaultPython, WORKER_DIR } from "../src/worker/spawn.js";
import { WorkerCallError } from "../src/worker/errors.js";
import assert from "node:assert/strict";

export function tempDir(prefix = "ctrl-test-"): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a random-weight UNet2DModel pipeline with save_pretrained, as users' checkpoints are. */
export async function makeTinyBackbone(folder = path.join(tempDir(), "tiny"), sampleSize = 16): Promise<string> {
  await execa(defaultPython(), ["-m", "ctrl_worker.testing", "tiny-backbone", folder, "--sample-size", String(sampleSize)], {
    cwd: WORKER_DIR,
    env: { PYTHONPATH: WORKER_DIR },
  });
  return folder;
}

/** Asserts that `promise` fails with a WorkerCallError of `codeName` whose message matches. */
export async function rejectsWith(promise: Promise<unknown>, codeName: string, message: RegExp): Promise<WorkerCallError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof WorkerCallError, `expected a WorkerCallError, got ${String(error)}`);
    assert.equal(error.codeName, codeName, error.message);
    assert.match(error.details, message);
    return error;
  }
  assert.fail(`expected ${codeName} matching ${message}, but the call succeeded`);
}
