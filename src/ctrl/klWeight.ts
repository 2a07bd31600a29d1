/**
 * The KL weight of each optimiser step when `finetune.adaptiveKl` is on. Fixed, one weight sets
 * one trade-off for every control, yet brightness must move its samples far (hundreds of nats) to
 * reach its classes while JPEG size reaches them cheaply and then, at the same small weight, pays
 * almost nothing for collapsing a class onto one texture. Adapted, the weight follows the
 * constraint "most samples sit at the confidence cap": it is multiplied by a factor after a step
 * where at least `target` of the batch sat at the cap (pulling the model back towards the
 * pre-trained one, where the samples' variety is) and divided by it otherwise, as PPO's adaptive
 * KL controller moves its weight towards a KL target. Measured (README, "What holds the variety back"):
 * at x1.15 up to 1000 the weight stayed near klWeight and gained nothing; at x1.3 up to 100 it
 * kept more variety on seed 0 and cost JPEG size its accuracy on seed 1, hence off by default.
 */

export interface AdaptiveKlSettings {
  /** The share of each batch that should sit at the confidence cap. */
  target: number;
  /** The weight's factor per optimiser step: times it above the target, divided by it below. */
  factor: number;
  max: number;
}

/** One classifier term's per-sample values and the cap it was clamped at. */
export interface CappedTerm {
  values: readonly number[];
  confidenceCap: number;
}

/** The share of samples at which every classifier term reached its cap, log(confidenceCap). */
export function shareAtCap(terms: readonly CappedTerm[]): number {
  if (terms.length === 0) throw new RangeError("shareAtCap: at least one classifier term is required");
  const count = terms[0]!.values.length;
  if (count === 0 || terms.some((term) => term.values.length !== count)) {
    throw new RangeError("shareAtCap: every term needs the same, non-zero number of samples");
  }
  // The worker clamps in float32: a sample at the cap reads log(cap) to within float rounding.
  const atCap = terms.map((term) => Math.log(term.confidenceCap) - 1e-5);
  let hits = 0;
  for (let j = 0; j < count; j++) if (terms.every((term, k) => term.values[j]! >= atCap[k]!)) hits++;
  return hits / count;
}

/**
 * One step of the controller: weight * factor when the batch's share at the cap reached the
 * target, weight / factor when not, kept within [floor, max]; the floor is the configured
 * klWeight, which reaches every class (the weight only rises above it to buy back variety).
 */
export function nextKlWeight(weight: number, share: number, settings: AdaptiveKlSettings, floor: number): number {
  const next = share >= settings.target ? weight * settings.factor : weight / settings.factor;
  return Math.min(settings.max, Math.max(floor, next));
}

/**
 * `finetune.klWeightRamp`: the weight of optimiser step `step` (0-based) of `totalSteps`, rising
 * geometrically from `start` at the first step to `start * ramp` at the last. A continuation: the
 * small weight reaches the classes, the large one then pulls the model back towards the
 * pre-trained one, while the capped target barely moves between them (README: "What holds the
 * variety back").
 */
export function rampedKlWeight(start: number, ramp: number, step: number, totalSteps: number): number {
  if (totalSteps <= 1) return start * ramp;
  return start * ramp ** (step / (totalSteps - 1));
}
