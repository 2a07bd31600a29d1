/** The exact oracles a default control is labelled and judged by, and how their values bin. */
import { type BinOrder, binLabels, brightnessValues, jpegSizes } from "../rewards/oracles.js";
import type { ImageBatch } from "../worker/tensors.js";

export type OracleName = "compressibility" | "brightness";

export interface Oracle {
  name: OracleName;
  /** What the raw value is, for tables and plots. */
  unit: string;
  /** Which end of the value range gets the highest class. */
  order: BinOrder;
  measure(batch: ImageBatch): Promise<number[]>;
}

export const ORACLES: Record<OracleName, Oracle> = {
  // The paper's compressibility: class K-1 = the smallest JPEG at quality 95.
  compressibility: { name: "compressibility", unit: "JPEG bytes at quality 95", order: "descending", measure: (b) => jpegSizes(b, 95) },
  brightness: { name: "brightness", unit: "mean Rec.601 luma", order: "ascending", measure: async (b) => brightnessValues(b) },
};

/** Oracle values of a batch and their classes under the given thresholds. */
export async function oracleClasses(oracle: Oracle, batch: ImageBatch, thresholds: number[]): Promise<{ values: number[]; classes: number[] }> {
  const values = await oracle.measure(batch);
  return { values, classes: binLabels(values, thresholds, oracle.order) };
}
