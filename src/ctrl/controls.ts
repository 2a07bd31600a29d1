/**
 * Trained controls on disk, for sampling: where a control's checkpoint is, and which labels a
 * user asked for on the command line.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import type { Labels } from "../worker/worker.js";

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
