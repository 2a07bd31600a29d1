/**
 * The offline data of the comparison: one pool of the pre-trained model's own samples (the
 * paper's recipe, drawn with the comparison's sampler), each labelled by the exact oracles,
 * written once as PNGs.
 * Each experiment reads its rows through its own labels file in the user format:
 * - single-control and sample efficiency: compressibility in 4 classes, nested prefixes of the pool;
 * - multi-control: compressibility (2 classes) on rows [0, M), brightness (2 classes) on the
 *   disjoint rows [M, 2M) for CTRL's two classifiers; both labels on rows [0, M) for
 *   classifier-free guidance, which needs jointly labelled images.
 * Class thresholds are the pool's quantiles.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { writePngs } from "../ctrl/datasets.js";
import { ORACLES, type OracleName } from "../ctrl/oracle.js";
import { binLabels, quantileThresholds } from "../rewards/oracles.js";
import type { ImageBatch } from "../worker/tensors.js";

export interface LabelColumn {
  name: string;
  oracle: OracleName;
  numClasses: number;
  thresholds: number[];
  /** One label per pool row. */
  labels: number[];
}

/** The label columns: name -> (oracle, classes). */
export const COLUMNS = {
  compressibility: { oracle: "compressibility", numClasses: 4 },
  compressibility_2: { oracle: "compressibility", numClasses: 2 },
  brightness_2: { oracle: "brightness", numClasses: 2 },
} as const satisfies Record<string, { oracle: OracleName; numClasses: number }>;

export type ColumnName = keyof typeof COLUMNS;

/** A labels file inside the data folder and what it holds. */
export interface Subset {
  labelsFile: string;
  columns: ColumnName[];
  rows: number[];
}

export interface OfflineData {
  folder: string;
  poolSize: number;
  columns: Record<ColumnName, LabelColumn>;
  single: (size: number) => Subset;
  multiA: Subset;
  multiB: Subset;
  joint: Subset;
}

export interface DataSizes {
  singleSize: number;
  multiSize: number;
  efficiencySizes: number[];
}

/** Pool rows needed: the largest prefix, and two disjoint multi-control sets. */
export function poolSize(sizes: DataSizes): number {
  return Math.max(sizes.singleSize, ...sizes.efficiencySizes, 2 * sizes.multiSize);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Labels the pool by every column's oracle, writes the images and each subset's labels file. */
export async function writeOfflineData(folder: string, pool: ImageBatch, sizes: DataSizes): Promise<OfflineData> {
  const values = {
    compressibility: await ORACLES.compressibility.measure(pool),
    brightness: await ORACLES.brightness.measure(pool),
  };
  const columns = Object.fromEntries(
    (Object.keys(COLUMNS) as ColumnName[]).map((name) => {
      const { oracle, numClasses } = COLUMNS[name];
      const thresholds = quantileThresholds(values[oracle], numClasses);
      return [name, { name, oracle, numClasses, thresholds, labels: binLabels(values[oracle], thresholds, ORACLES[oracle].order) }];
    }),
  ) as Record<ColumnName, LabelColumn>;
  mkdirSync(path.join(folder, "images"), { recursive: true });
  const files = Array.from({ length: pool.count }, (_, i) => `images/${String(i).padStart(6, "0")}.png`);
  await writePngs(folder, files, pool);
  writeLabels(folder, "labels-all.csv", range(0, pool.count), Object.keys(COLUMNS) as ColumnName[], files, columns, values);

  const subset = (labelsFile: string, names: ColumnName[], rows: number[]): Subset => {
    writeLabels(folder, labelsFile, rows, names, files, columns);
    return { labelsFile, columns: names, rows };
  };
  const singles = new Map<number, Subset>();
  for (const size of new Set([sizes.singleSize, ...sizes.efficiencySizes])) {
    singles.set(size, subset(`labels-single-${size}.csv`, ["compressibility"], range(0, size)));
  }
  const m = sizes.multiSize;
  return {
    folder,
    poolSize: pool.count,
    columns,
    single: (size) => {
      const found = singles.get(size);
      if (!found) throw new RangeError(`no single-control subset of ${size} rows`);
      return found;
    },
    multiA: subset("labels-multi-a.csv", ["compressibility_2"], range(0, m)),
    multiB: subset("labels-multi-b.csv", ["brightness_2"], range(m, 2 * m)),
    joint: subset("labels-joint.csv", ["compressibility_2", "brightness_2"], range(0, m)),
  };
}

function writeLabels(
  folder: string,
  labelsFile: string,
  rows: number[],
  names: ColumnName[],
  files: string[],
  columns: Record<ColumnName, LabelColumn>,
  values?: Record<OracleName, number[]>,
): void {
  const extra = values ? (["compressibility", "brightness"] as OracleName[]) : [];
  const header = ["file", ...names, ...extra.map((o) => `${o}_value`)].join(",");
  const lines = rows.map((row) => [files[row], ...names.map((n) => columns[n].labels[row]), ...extra.map((o) => values![o][row])].join(","));
  writeFileSync(path.join(folder, labelsFile), `${header}\n${lines.join("\n")}\n`);
}
