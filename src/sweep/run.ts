/**
 * Runs a sweep (one CTRL run per combination and seed, each a normal run folder under
 * <out>/runs/) and writes what it found: sweep.json (every run's figures), sweep.md (a table,
 * mean and range over seeds) and plots: accuracy and KL against each numeric grid field, and
 * accuracy against optimiser steps (from evaluation.checkpointSamples, when the runs measured it).
 * Each result is read back from its run folder (summary.json, metrics.jsonl), so finished runs made
 * elsewhere can be collected into the same outputs (`collectSweep`).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import sharp from "sharp";
import { formatNumber, lineChart } from "../eval/charts.js";
import { mean } from "../eval/metrics.js";
import { runCtrl } from "../ctrl/pipeline.js";
import { Run } from "../ctrl/runs.js";
import type { SummaryRow } from "../eval/report.js";
import type { Sweep, SweepPoint } from "./config.js";

export interface SweepResult {
  values: SweepPoint["values"];
  seed: number;
  run: string;
  accuracy: number;
  macroF1: number;
  meanKl: number | null;
  pretrainedAccuracy: number;
  /** [optimiser step, accuracy] at each evaluated checkpoint. */
  curve: [number, number][];
  seconds: number;
  /** Per asked class, CTRL's diversity over the pre-trained samples' (classifier features), if measured. */
  diversity: number[] | null;
  /** The same between 8x8 thumbnails. */
  thumbnailDiversity: number[] | null;
}

export interface SweepOptions {
  out: string;
  python?: string;
  verbose?: boolean;
  log?: (line: string) => void;
}

export async function runSweep(sweep: Sweep, options: SweepOptions): Promise<SweepResult[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(`sweep: ${line}\n`));
  mkdirSync(options.out, { recursive: true });
  const results: SweepResult[] = [];
  for (const [i, point] of sweep.points.entries()) {
    log(`${i + 1}/${sweep.points.length}: ${describe(point.values)}, seed ${point.seed}`);
    const started = performance.now();
    const config = { ...point.config, runsDir: path.join(options.out, "runs") };
    const { run } = await runCtrl(config, { python: options.python, verbose: options.verbose });
    const result = resultFromRun(run, point.values, point.seed, options.out, (performance.now() - started) / 1000);
    results.push(result);
    log(`  accuracy ${result.accuracy.toFixed(3)}, macro-F1 ${result.macroF1.toFixed(3)}, mean KL ${formatNumber(result.meanKl ?? Number.NaN)}`);
    await writeSweepOutputs(options.out, sweep, results); // after every run: a stopped sweep keeps what it measured
  }
  return results;
}

/** A finished run's figures, read from its folder; `seconds` defaults to CTRL's own time in summary.json. */
export function resultFromRun(run: Run, values: SweepPoint["values"], seed: number, out: string, seconds?: number): SweepResult {
  const summary = run.readJson<SummaryRow[]>("summary.json");
  const row = (method: string) => {
    const found = summary.find((r) => r.method === method);
    if (!found) throw new Error(`${run.path("summary.json")} has no ${method} row: is the run finished?`);
    return found as SummaryRow & Record<string, unknown>;
  };
  const ctrl = row("ctrl");
  const ratios = (key: string) => (Array.isArray(ctrl[key]) ? (ctrl[key] as number[]) : null);
  const curve = run
    .readMetrics()
    .filter((m) => m.phase === "checkpoint-eval")
    .map((m) => [Number(m.step), Number(m.accuracy)] as [number, number]);
  return {
    values,
    seed,
    run: path.relative(out, run.dir),
    accuracy: ctrl.accuracy,
    macroF1: ctrl.macro_f1,
    meanKl: typeof ctrl.mean_kl === "number" ? ctrl.mean_kl : null,
    pretrainedAccuracy: row("pretrained").accuracy,
    curve,
    seconds: seconds ?? Number(ctrl.seconds),
    diversity: ratios("diversity_vs_pretrained"),
    thumbnailDiversity: ratios("thumbnail_diversity_vs_pretrained"),
  };
}

/**
 * The outputs of a sweep from finished run folders (e.g. runs continued with other settings by
 * `ctrl train --resume`): each run's grid values are read from its config.json (the resolved config)
 * at the sweep's paths. A field the run predates is an error, not today's default: the run did not use it.
 */
export async function collectSweep(sweep: Sweep, runDirs: string[], out: string): Promise<SweepResult[]> {
  mkdirSync(out, { recursive: true });
  const results = runDirs.map((dir) => {
    const run = Run.open(dir);
    const config = run.readJson<Record<string, unknown>>("config.json");
    const values = Object.fromEntries(sweep.paths.map((p) => [p, valueAt(config, p, run.path("config.json"))]));
    return resultFromRun(run, values, Number(config.seed), out);
  });
  await writeSweepOutputs(out, sweep, results);
  return results;
}

function valueAt(config: Record<string, unknown>, dotted: string, where: string): string | number | boolean {
  let node: unknown = config;
  for (const key of dotted.split(".")) node = typeof node === "object" && node !== null ? (node as Record<string, unknown>)[key] : undefined;
  if (typeof node !== "string" && typeof node !== "number" && typeof node !== "boolean") {
    throw new Error(`${where}: ${dotted} is ${node === undefined ? "missing (the run predates it?)" : JSON.stringify(node)}, not a value the sweep's grid can hold`);
  }
  return node;
}

function describe(values: SweepPoint["values"]): string {
  return Object.entries(values).map(([p, v]) => `${p} = ${v}`).join(", ");
}

interface Group {
  values: SweepPoint["values"];
  results: SweepResult[];
}

/** Results grouped by combination (seeds together), in the sweep's order. */
export function groupByCombination(results: SweepResult[]): Group[] {
  const groups = new Map<string, Group>();
  for (const r of results) {
    const key = JSON.stringify(r.values);
    if (!groups.has(key)) groups.set(key, { values: r.values, results: [] });
    groups.get(key)!.results.push(r);
  }
  return [...groups.values()];
}

function spread(values: number[]): string {
  if (values.length === 1) return formatNumber(values[0]!, 3);
  return `${mean(values).toFixed(3)} (${Math.min(...values).toFixed(3)}–${Math.max(...values).toFixed(3)})`;
}

export function sweepTable(sweep: Sweep, results: SweepResult[]): string {
  const header = [
    ...sweep.paths,
    "seeds",
    "accuracy",
    "macro-F1",
    "mean KL",
    "lowest class diversity: features",
    "thumbnails",
    "pre-trained accuracy",
    "minutes per run",
  ];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`];
  for (const group of groupByCombination(results)) {
    const rs = group.results;
    const kls = rs.map((r) => r.meanKl ?? Number.NaN);
    lines.push(
      `| ${[
        ...sweep.paths.map((p) => String(group.values[p])),
        String(rs.length),
        spread(rs.map((r) => r.accuracy)),
        spread(rs.map((r) => r.macroF1)),
        formatNumber(mean(kls), 3),
        lowestDiversity(rs, (r) => r.diversity),
        lowestDiversity(rs, (r) => r.thumbnailDiversity),
        spread(rs.map((r) => r.pretrainedAccuracy)),
        (mean(rs.map((r) => r.seconds)) / 60).toFixed(1),
      ].join(" | ")} |`,
    );
  }
  return lines.join("\n");
}

/** The least varied class's diversity ratio per run, as mean (range) over seeds; "" if not measured. */
function lowestDiversity(results: SweepResult[], ratios: (r: SweepResult) => number[] | null): string {
  const lowest = results.map(ratios).filter((r): r is number[] => r !== null && r.length > 0).map((r) => Math.min(...r));
  return lowest.length === results.length ? spread(lowest) : "";
}

/** Accuracy and KL against one numeric field (one series per combination of the other fields). */
function againstField(sweep: Sweep, results: SweepResult[], field: string): { accuracy: string; kl: string; diversity?: string } | undefined {
  const groups = groupByCombination(results);
  if (!groups.every((g) => typeof g.values[field] === "number")) return undefined;
  const others = sweep.paths.filter((p) => p !== field);
  const bySeries = new Map<string, Group[]>();
  for (const g of groups) {
    const name = others.map((p) => `${p} = ${g.values[p]}`).join(", ") || "CTRL";
    bySeries.set(name, [...(bySeries.get(name) ?? []), g]);
  }
  const xs = groups.map((g) => g.values[field] as number);
  const logX = xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) >= 10;
  const line = (y: (r: SweepResult) => number) =>
    [...bySeries].map(([name, gs]) => ({
      name,
      points: gs.map((g) => [g.values[field] as number, mean(g.results.map(y))] as [number, number]).sort((a, b) => a[0] - b[0]),
    }));
  const xLabel = `${field}${logX ? " (log scale)" : ""}`;
  const seeds = `mean over ${Math.max(...groups.map((g) => g.results.length))} seed(s)`;
  return {
    accuracy: lineChart({ title: `${sweep.name}: accuracy (oracle) against ${field}, ${seeds}`, xLabel, yLabel: "accuracy", logX, series: line((r) => r.accuracy) }),
    kl: lineChart({ title: `${sweep.name}: mean KL to the pre-trained model against ${field}`, xLabel, yLabel: "mean KL (summed over pixels and steps)", logX, logY: true, series: line((r) => r.meanKl ?? Number.NaN) }),
    ...(results.every((r) => r.diversity?.length)
      ? {
          diversity: lineChart({
            title: `${sweep.name}: the least varied class's diversity against ${field} (classifier features, over the pre-trained samples')`,
            xLabel,
            yLabel: "lowest diversity ratio over classes",
            logX,
            series: line((r) => Math.min(...r.diversity!)),
          }),
        }
      : {}),
  };
}

/** Accuracy at each checkpoint, one series per combination (mean over seeds at each step). */
function againstSteps(sweep: Sweep, results: SweepResult[]): string | undefined {
  const groups = groupByCombination(results).filter((g) => g.results.some((r) => r.curve.length));
  if (!groups.length) return undefined;
  const series = groups.map((g) => {
    const steps = [...new Set(g.results.flatMap((r) => r.curve.map(([s]) => s)))].sort((a, b) => a - b);
    const points = steps.map((s) => [s, mean(g.results.flatMap((r) => r.curve.filter(([t]) => t === s).map(([, a]) => a)))] as [number, number]);
    return { name: describe(g.values), points };
  });
  return lineChart({ title: `${sweep.name}: accuracy (oracle) against optimiser steps`, xLabel: "optimiser step", yLabel: "accuracy", series });
}

export async function writeSweepOutputs(out: string, sweep: Sweep, results: SweepResult[]): Promise<string[]> {
  const machine = { cpus: os.cpus().length, cpu: os.cpus()[0]?.model ?? "unknown", platform: `${os.platform()} ${os.release()}` };
  writeFileSync(path.join(out, "sweep.json"), `${JSON.stringify({ name: sweep.name, paths: sweep.paths, machine, results }, null, 2)}\n`);
  writeFileSync(path.join(out, "sweep.md"), `# Sweep ${sweep.name}\n\n${sweepTable(sweep, results)}\n`);
  const charts: [string, string][] = [];
  for (const field of sweep.paths) {
    const plots = againstField(sweep, results, field);
    if (plots) charts.push([`accuracy-vs-${slug(field)}`, plots.accuracy], [`kl-vs-${slug(field)}`, plots.kl]);
    if (plots?.diversity) charts.push([`diversity-vs-${slug(field)}`, plots.diversity]);
  }
  const steps = againstSteps(sweep, results);
  if (steps) charts.push(["accuracy-vs-steps", steps]);
  const files: string[] = [];
  for (const [name, svg] of charts) {
    writeFileSync(path.join(out, `${name}.svg`), svg);
    await sharp(Buffer.from(svg)).png().toFile(path.join(out, `${name}.png`));
    files.push(`${name}.png`);
  }
  return files;
}

function slug(field: string): string {
  return field.replace(/[^A-Za-z0-9]+/g, "-");
}

/** A sweep file (JSON) as given on the command line. */
export function readSweepFile(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`--config: could not read ${file} as JSON: ${(error as Error).message}`);
  }
}
