/**
 * A sweep: one base experiment config, a grid of values for some of its fields (named by dotted
 * paths such as "finetune.klWeight") and a list of seeds. Every combination is a complete CTRL
 * run. The whole grid is validated before the first run starts: a typo in a path, or a value the
 * experiment config refuses, fails at once, naming the grid entry.
 */
import { z } from "zod";
import { type ConfigInput, ConfigError, type ExperimentConfig, parseConfig, parseWithSchema } from "../ctrl/config.js";

const scalar = z.union([z.number(), z.string(), z.boolean()]);

export const sweepSchema = z
  .object({
    /** Names the sweep's folder and its runs' task. */
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, "lowercase letters, digits and dashes"),
    /** Laid under every combination; fields not given take the experiment config's defaults. */
    base: z.record(z.string(), z.unknown()).default({}),
    /** Dotted config path -> the values to try; combinations are the product of all entries. */
    grid: z.record(z.string().min(1), z.array(scalar).min(1).max(64)).refine((g) => Object.keys(g).length > 0, "name at least one field to vary"),
    seeds: z.array(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)).min(1).max(32).default([0]),
  })
  .strict();

export type SweepInput = z.input<typeof sweepSchema>;

export interface SweepPoint {
  /** The grid values of this combination, by path. */
  values: Record<string, string | number | boolean>;
  seed: number;
  config: ExperimentConfig;
}

export interface Sweep {
  name: string;
  paths: string[];
  points: SweepPoint[];
}

/** Parses a sweep and expands it into validated experiment configs (one per combination and seed). */
export function parseSweep(input: unknown): Sweep {
  const sweep = parseWithSchema(sweepSchema, input);
  const paths = Object.keys(sweep.grid);
  const defaults = parseConfig({}) as unknown as Record<string, unknown>;
  const problems: string[] = [];
  for (const path of paths) {
    if (path === "seed") problems.push(`grid.seed: give seeds in "seeds", not in the grid`);
    else if (!hasPath(defaults, path)) problems.push(`grid.${path}: no such field in the experiment config (src/ctrl/config.ts)`);
  }
  if (problems.length) throw new ConfigError(problems);

  const points: SweepPoint[] = [];
  for (const values of product(sweep.grid)) {
    const base = structuredClone(sweep.base) as Record<string, unknown>;
    for (const [path, value] of Object.entries(values)) setPath(base, path, value);
    for (const seed of sweep.seeds) {
      try {
        points.push({ values, seed, config: parseConfig({ ...base, seed, task: sweep.name } as ConfigInput) });
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        const where = Object.entries(values).map(([p, v]) => `${p}=${JSON.stringify(v)}`).join(", ");
        problems.push(...error.problems.map((p) => `combination ${where}: ${p}`));
      }
    }
  }
  if (problems.length) throw new ConfigError([...new Set(problems)]);
  return { name: sweep.name, paths, points };
}

/** Every combination of the grid's values, in the grid's order (the last path varies fastest). */
export function product(grid: Record<string, readonly (string | number | boolean)[]>): Record<string, string | number | boolean>[] {
  return Object.entries(grid).reduce<Record<string, string | number | boolean>[]>(
    (combinations, [path, values]) => combinations.flatMap((c) => values.map((v) => ({ ...c, [path]: v }))),
    [{}],
  );
}

function hasPath(object: Record<string, unknown>, path: string): boolean {
  let node: unknown = object;
  for (const key of path.split(".")) {
    if (typeof node !== "object" || node === null || !(key in node)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return true;
}

function setPath(object: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split(".");
  let node = object;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== "object" || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys.at(-1)!] = value;
}
