/**
 * Which sampler steps keep their parameter gradient (truncated back-propagation). Decided in
 * TypeScript, sent to the worker as one flag per timestep.
 */
import type { Random } from "./random.js";

export type Truncation =
  /** The official code: at every step i (0-based, in sampling order) draw K ~ U{0..n}; keep if i >= K. */
  | { kind: "random" }
  /** Keep only the last `steps` steps (the official code's unused alternative). */
  | { kind: "last"; steps: number }
  /** Keep every step. */
  | { kind: "none" };

export function gradientMask(truncation: Truncation, numSteps: number, random: Random): boolean[] {
  switch (truncation.kind) {
    case "none":
      return Array.from({ length: numSteps }, () => true);
    case "last":
      return Array.from({ length: numSteps }, (_, i) => i >= numSteps - truncation.steps);
    case "random": {
      // P(keep step i) = (i + 1) / (n + 1): late, low-noise steps are favoured.
      const mask = Array.from({ length: numSteps }, (_, i) => i >= random.int(numSteps + 1));
      // A rollout with no kept step teaches nothing; keep the last one then (rare: < 1/n! chance).
      if (!mask.includes(true)) mask[numSteps - 1] = true;
      return mask;
    }
  }
}
