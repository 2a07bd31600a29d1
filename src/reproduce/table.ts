/** The comparison's table: one row per method and setting, as JSON and as Markdown. */
import { formatNumber } from "../eval/charts.js";
import type { KlKind, MethodName } from "./methods.js";

export interface TableRow {
  experiment: string;
  task: string;
  method: MethodName;
  setting: string;
  /** Joint accuracy against the exact oracles (every control right). */
  accuracy: number;
  macro_f1: number;
  accuracy_per_control: Record<string, number>;
  n_samples: number;
  mean_kl: number | null;
  kl_kind: KlKind;
  quality: { name: string; value: number };
  /** Training of everything the method needs (its classifiers included), in seconds. */
  train_seconds: number;
  /** Sampling the evaluation images, in seconds. */
  sample_seconds: number;
  seconds: number;
  /** Peak resident memory of the method's worker process (its own process), MiB. */
  peak_rss_mb: number | null;
  labelled_images: number;
  joint_labelled_images: number | null;
  unet_passes_per_image: number;
  seed: number;
  evaluation_seed: number;
  /** Per control, the mean oracle value of the samples asked for each class. */
  oracle_means: Record<string, number[]>;
  confusion: number[][];
  /** The sample grid, relative to the output folder. */
  grid: string;
}

export const QUALITY_NAME = "FD to held-out offline images (judge classifier's features; lower is better)";

const KL_NOTE: Record<KlKind, string> = { trajectory: "", "best-of-n bound": " (bound)", none: "" };

function cell(value: number | null, digits = 3): string {
  return value === null || !Number.isFinite(value) ? "—" : formatNumber(value, digits);
}

function duration(seconds: number): string {
  return seconds < 60 ? `${seconds.toFixed(1)} s` : `${Math.floor(seconds / 60)} min ${String(Math.round(seconds % 60)).padStart(2, "0")} s`;
}

/** The rows of one experiment as a Markdown table. */
export function markdownTable(rows: TableRow[]): string {
  const controls = [...new Set(rows.flatMap((r) => Object.keys(r.accuracy_per_control)))];
  const perControl = controls.length > 1 ? controls.map((c) => `acc. ${c}`) : [];
  const header = ["method", "setting", "accuracy", ...perControl, "macro-F1", "mean KL", "FD", "train", "sample", "peak RSS (MiB)", "labelled images", "UNet passes / image"];
  const lines = rows.map((r) => [
    r.method,
    r.setting || "—",
    r.accuracy.toFixed(3),
    ...(controls.length > 1 ? controls.map((c) => (r.accuracy_per_control[c] ?? NaN).toFixed(3)) : []),
    r.macro_f1.toFixed(3),
    `${cell(r.mean_kl)}${KL_NOTE[r.kl_kind]}`,
    cell(r.quality.value),
    duration(r.train_seconds),
    duration(r.sample_seconds),
    cell(r.peak_rss_mb, 4),
    r.joint_labelled_images === null ? String(r.labelled_images) : `${r.labelled_images} (${r.joint_labelled_images} joint)`,
    String(r.unet_passes_per_image),
  ]);
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...lines.map(line)].join("\n");
}

/** Every experiment's table under its heading, the sample counts and seeds beside them. */
export function markdownReport(rows: TableRow[], intro: string[]): string {
  const experiments = [...new Set(rows.map((r) => r.experiment))];
  const sections = experiments.map((experiment) => {
    const own = rows.filter((r) => r.experiment === experiment);
    const first = own[0]!;
    return [`## ${experiment}: ${first.task}`, "", `${first.n_samples} samples per row (seed ${first.evaluation_seed}), run seed ${first.seed}.`, "", markdownTable(own)].join("\n");
  });
  return [...intro, "", ...sections.flatMap((s) => [s, ""])].join("\n");
}
