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
  /** The weight's largest factor per optimiser step: times it above the target, divided by it below. */
  factor: number;
  max: number;
  /**
   * The controller follows an exponential moving average of the share with this coefficient
   * (0: each batch's own share). A share counted on 16 samples moves by 0.1 from one step to
   * the next by chance alone.
   */
  smoothing: number;
  /**
   * How far from the target the followed share must be for the full factor: the weight moves
   * by factor^clamp((share - target) / tolerance, -1, 1). 0: the full factor at any distance.
   */
  tolerance: number;
  /**
   * The classifier probability a sample must reach, on every classifier term, to count towards
   * the share; absent: each term's confidence cap. Below the cap it counts samples the
   * classifier names the asked class for, whether or not the reward has stopped pulling them.
   */
  confidence?: number | undefined;
}

/** The share the controller follows after a step whose batch had `share` at the cap. */
export function followedShare(previous: number | undefined, share: number, smoothing: number): number {
  return previous === undefined ? share : smoothing * previous + (1 - smoothing) * share;
}

/** One classifier term's per-sample values and the cap it was clamped at. */
export interface CappedTerm {
  values: readonly number[];
  confidenceCap: number;
}

/** The share of samples at which every classifier term reached `probability` (default: its cap). */
export function shareAtCap(terms: readonly CappedTerm[], probability?: number): number {
  if (terms.length === 0) throw new RangeError("shareAtCap: at least one classifier term is required");
  const count = terms[0]!.values.length;
  if (count === 0 || terms.some((term) => term.values.length !== count)) {
    throw new RangeError("shareAtCap: every term needs the same, non-zero number of samples");
  }
  // The worker clamps in float32: a sample at the cap reads log(cap) to within float rounding.
  const atCap = terms.map((term) => Math.log(Math.min(probability ?? 1, term.confidenceCap)) - 1e-5);
  let hits = 0;
  for (let j = 0; j < count; j++) if (terms.every((term, k) => term.values[j]! >= atCap[k]!)) hits++;
  return hits / count;
}

/**
 * One step of the controller: the weight times factor^clamp((share - target) / tolerance, -1, 1)
 * (with tolerance 0: times the factor when the followed share reached the target, divided by it
 * when not), kept within [floor, max]; the floor is the configured klWeight, which reaches every
 * class (the weight only rises above it to buy back variety).
 */
export function nextKlWeight(weight: number, share: number, settings: AdaptiveKlSettings, floor: number): number {
  const { target, factor, tolerance } = settings;
  const exponent = tolerance > 0 ? Math.min(1, Math.max(-1, (share - target) / tolerance)) : share >= target ? 1 : -1;
  return Math.min(settings.max, Math.max(floor, weight * factor ** exponent));
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
