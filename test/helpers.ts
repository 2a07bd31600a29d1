/** Shared fixtures for the TypeScript tests: tiny backbones made by the worker's own code. */
import { type Dirent, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { defaultPython, WORKER_DIR } from "../src/worker/spawn.js";
import { WorkerCallError } from "../src/worker/errors.js";
import type { Worker } from "../src/worker/worker.js";
import { ConfigError } from "../src/ctrl/config.js";
import assert from "node:assert/strict";

const madeDirs: string[] = [];
process.once("exit", () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder under the system's temporary folder, removed when the test process exits. */
export function tempDir(prefix = "ctrl-test-"): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
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

/** The float32 tensors of a .safetensors file (8-byte header length, JSON header, raw data), by name. */
export function readSafetensors(file: string): Map<string, Float32Array> {
  const bytes = readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8")) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const tensors = new Map<string, Float32Array>();
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    assert.equal(entry.dtype, "F32", `${file}: ${name} is ${entry.dtype}`);
    const [start, end] = entry.data_offsets;
    const data = bytes.subarray(8 + headerLength + start, 8 + headerLength + end);
    tensors.set(name, new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)));
  }
  return tensors;
}

/** Every file under `dir`, as sorted paths relative to it. */
export function listFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as Dirent[])
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

/** metrics.jsonl's records so far, while a run may still be writing it (a partial last line is skipped). */
export function readMetricsWhileWritten(file: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return []; // a line being written
      }
    });
}

/** The last fine-tuning step logged (0 before the first). */
export function lastFinetuneStep(metrics: Record<string, unknown>[]): number {
  return Math.max(0, ...metrics.filter((m) => m.phase === "finetune").map((m) => Number(m.step)));
}

/**
 * Kills (SIGKILL) the n-th worker started as `rank` once `when[n]` holds for the latest run's
 * metrics in `runsDir` (polled every 20 ms); pass `onWorkerStarted` to runCtrl. `kills` says
 * which start was killed and the last fine-tuning step logged then.
 */
export function killer(runsDir: string, when: ((metrics: Record<string, unknown>[]) => boolean)[], rank = 0) {
  let started = 0;
  const kills: { worker: number; step: number }[] = [];
  const onWorkerStarted = (worker: Worker, workerRank: number) => {
    if (workerRank !== rank) return;
    const n = ++started;
    const trigger = when[n - 1];
    if (!trigger) return;
    const timer = setInterval(() => {
      const metrics = readMetricsWhileWritten(path.join(runsDir, "latest", "metrics.jsonl"));
      if (!trigger(metrics)) return;
      clearInterval(timer);
      kills.push({ worker: n, step: lastFinetuneStep(metrics) });
      process.kill(worker.pid, "SIGKILL");
    }, 20);
    void worker.exited.then(() => clearInterval(timer));
  };
  return { onWorkerStarted, kills };
}
