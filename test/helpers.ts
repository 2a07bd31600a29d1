/** Shared fixtures for the TypeScript tests: tiny backbones made by the worker's own code. */
import { mkdtempSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { defaultPython, WORKER_DIR } from "../src/worker/spawn.js";
import { WorkerCallError } from "../src/worker/errors.js";
import { ConfigError } from "../src/ctrl/config.js";
import assert from "node:assert/strict";

export function tempDir(prefix = "ctrl-test-"): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a random-weight UNet2DModel pipeline with save_pretrained, as users' checkpoints are. */
export async function makeTinyBackbone(folder = path.join(tempDir(), "tiny"), sampleSize = 16, seed = 0): Promise<string> {
  const args = ["-m", "ctrl_worker.tools.testing", "tiny-backbone", folder, "--sample-size", String(sampleSize), "--seed", String(seed)];
  await execa(defaultPython(), args, {
    cwd: WORKER_DIR,
    env: { PYTHONPATH: WORKER_DIR },
  });
  return folder;
}

/** Writes a tiny random Stable-Diffusion-layout pipeline (UNet2DConditionModel, AutoencoderKL,
 * CLIP text encoder and tokenizer): 8x8x4 latents, 16x16 images. */
export async function makeTinyTextToImage(folder = path.join(tempDir(), "tiny-sd")): Promise<string> {
  await execa(defaultPython(), ["-m", "ctrl_worker.tools.testing", "tiny-text-to-image", folder], {
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

/** Writes a user-format dataset: PNGs under images/ plus labels.csv with the given label columns. */
export async function writeDataset(
  folder: string,
  images: { width: number; height: number; pixels: (i: number) => Uint8Array },
  labels: Record<string, number[]>,
): Promise<string> {
  const { mkdirSync, writeFileSync } = await import("node:fs");
  const sharp = (await import("sharp")).default;
  mkdirSync(path.join(folder, "images"), { recursive: true });
  const columns = Object.keys(labels);
  const count = labels[columns[0]!]!.length;
  const rows: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = `images/${i}.png`;
    await sharp(Buffer.from(images.pixels(i)), { raw: { width: images.width, height: images.height, channels: 3 } })
      .png()
      .toFile(path.join(folder, file));
    rows.push([file, ...columns.map((c) => labels[c]![i])].join(","));
  }
  writeFileSync(path.join(folder, "labels.csv"), `file,${columns.join(",")}\n${rows.join("\n")}\n`);
  return folder;
}

/** Flat images whose brightness says their class: an easy dataset for a classifier. */
export function brightnessImages(size: number, classes: number[]): (i: number) => Uint8Array {
  return (i) => new Uint8Array(size * size * 3).fill(40 + 60 * classes[i]! + (i % 7));
}

/** The problems a config parser reports for `input` (it must throw a ConfigError). */
export function configProblems(parse: (input: unknown) => unknown, input: unknown): string[] {
  try {
    parse(input);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}
