/**
 * Trained controls on disk, for sampling: where a control's checkpoint is, and which labels a
 * user asked for on the command line.
 */
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Labels } from "../worker/worker.js";

/**
 * How a control was trained to be sampled: its checkpoint keeps it in sampler.json, and
 * `ctrl sample --control` uses it unless told otherwise (a control trained with 10 DDIM steps is
 * a different sampler at 50).
 */
export interface SamplerRecord {
  steps: number;
  eta: number;
  /** Added to every DDIM timestep (the scheduler's steps_offset unless the config set one). */
  offset: number;
  /** Classifier-free guidance scale of the prompts (text-to-image backbones only). */
  guidanceScale?: number;
}

export const SAMPLER_FILE = "sampler.json";

export function writeSamplerRecord(checkpoint: string, record: SamplerRecord): void {
  const file = path.join(checkpoint, SAMPLER_FILE);
  writeFileSync(`${file}.tmp-${process.pid}`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${file}.tmp-${process.pid}`, file);
}

/** The checkpoint's sampler.json, checked field by field; undefined when there is none (older checkpoints). */
export function readSamplerRecord(checkpoint: string): SamplerRecord | undefined {
  const file = path.join(checkpoint, SAMPLER_FILE);
  if (!existsSync(file)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: not readable JSON (${(error as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new Error(`${file}: expected a JSON object`);
  const record = raw as Record<string, unknown>;
  const check = (name: string, ok: (v: unknown) => boolean, expected: string) => {
    if (!ok(record[name])) throw new Error(`${file}: '${name}' must be ${expected}, got ${JSON.stringify(record[name])}`);
  };
  const isInt = (min: number) => (v: unknown) => typeof v === "number" && Number.isInteger(v) && v >= min && v <= 10_000;
  check("steps", isInt(1), "an integer in [1, 10000]");
  check("eta", (v) => typeof v === "number" && v >= 0 && v <= 1, "a number in [0, 1]");
  check("offset", isInt(0), "an integer in [0, 10000]");
  if (record.guidanceScale !== undefined) check("guidanceScale", (v) => typeof v === "number" && v >= 0 && v <= 100, "a number in [0, 100]");
  return {
    steps: record.steps as number,
    eta: record.eta as number,
    offset: record.offset as number,
    ...(record.guidanceScale !== undefined ? { guidanceScale: record.guidanceScale as number } : {}),
  };
}

/**
 * The checkpoint folder of `directory`: itself when it holds control.json, else the latest
 * checkpoint of a run folder (state.json's `checkpoint`, else the highest checkpoints/epoch-N).
 */
export function resolveControlDirectory(directory: string, flag = "--control"): string {
  if (existsSync(path.join(directory, "control.json"))) return directory;
  const stateFile = path.join(directory, "state.json");
  if (existsSync(stateFile)) {
    const checkpoint = (JSON.parse(readFileSync(stateFile, "utf8")) as { checkpoint?: unknown }).checkpoint;
    if (typeof checkpoint === "string" && existsSync(path.join(directory, checkpoint, "control.json"))) {
      return path.join(directory, checkpoint);
    }
  }
  const checkpoints = path.join(directory, "checkpoints");
  const epochs = existsSync(checkpoints)
    ? readdirSync(checkpoints)
        .filter((name) => /^epoch-\d+$/.test(name) && existsSync(path.join(checkpoints, name, "control.json")))
        .sort()
    : [];
  if (epochs.length) return path.join(checkpoints, epochs.at(-1)!);
  throw new Error(`${flag}: ${directory} is neither a control checkpoint (control.json) nor a run folder with checkpoints/`);
}

export interface FieldSpec {
  name: string;
  numClasses: number;
}

/**
 * `--label` values ("K" for a one-field control, "field=K" for any) -> the same labels for each of
 * `count` samples. Every field needs a value; K must be a class of its field.
 */
export function labelsFromFlags(values: readonly string[], fields: readonly FieldSpec[], count: number, flag = "--label"): Labels {
  const names = fields.map((f) => `${f.name} (${f.numClasses} classes)`).join(", ");
  const chosen = new Map<string, number>();
  for (const value of values) {
    const match = /^(?:([A-Za-z0-9_-]+)=)?(-?\d+)$/.exec(value.trim());
    if (!match) throw new Error(`${flag}: expected K or FIELD=K, got ${JSON.stringify(value)}`);
    const fieldName = match[1] ?? (fields.length === 1 ? fields[0]!.name : undefined);
    if (fieldName === undefined) throw new Error(`${flag}: this control has several fields (${names}); write FIELD=K`);
    const field = fields.find((f) => f.name === fieldName);
    if (!field) throw new Error(`${flag}: no label field ${JSON.stringify(fieldName)}; the control has ${names}`);
    const k = Number(match[2]);
    if (k < -1 || k >= field.numClasses) throw new Error(`${flag}: ${field.name} takes a class in [0, ${field.numClasses}) or -1 (null), got ${k}`);
    if (chosen.has(field.name)) throw new Error(`${flag}: ${field.name} is given twice`);
    chosen.set(field.name, k);
  }
  const missing = fields.filter((f) => !chosen.has(f.name)).map((f) => f.name);
  if (missing.length) throw new Error(`${flag}: give a class for ${missing.join(", ")} (the control has ${names})`);
  return Object.fromEntries(fields.map((f) => [f.name, Array.from({ length: count }, () => chosen.get(f.name)!)]));
}
