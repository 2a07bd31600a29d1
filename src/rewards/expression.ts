/**
 * Reward expressions, composed in TypeScript and evaluated differentiably by the worker:
 * reward(x0) = sum of weight * term, with terms such as log p(y | x0) under a calibrated classifier,
 * the KL to the pre-trained model along the trajectory, or per-sample constants.
 *
 *   const reward = [logProb(classifier, "compressibility"), klPenalty(0.1)];
 *
 * is CTRL's objective log p(y|x0) - alpha * KL. Several controls add their classifiers' terms:
 * under y1 ⊥ y2 | x, log p(y1, y2 | x) = log p(y1 | x) + log p(y2 | x).
 */
import type { RewardTerm } from "../gen/ctrl/v1/worker.js";

export type RewardPart =
  | { kind: "logProb"; weight: number; classifier: string; field: string; confidenceCap?: number }
  | { kind: "kl"; weight: number }
  | { kind: "constant"; weight: number; values: number[] };

/**
 * log p(field | x0) under the classifier; with `confidenceCap` c in (0, 1), log min(p, c): a
 * sample the classifier already puts in its class with probability c gets no further push.
 */
export function logProb(classifier: string, field: string, weight = 1, confidenceCap?: number): RewardPart {
  if (confidenceCap !== undefined && !(confidenceCap > 0 && confidenceCap <= 1)) {
    throw new RangeError(`logProb: confidenceCap must be in (0, 1], got ${confidenceCap}`);
  }
  return { kind: "logProb", weight, classifier, field, ...(confidenceCap !== undefined && confidenceCap < 1 ? { confidenceCap } : {}) };
}

/** -alpha * KL(fine-tuned || pre-trained), the KL summed over dimensions and steps. */
export function klPenalty(alpha: number): RewardPart {
  if (!(alpha >= 0)) throw new RangeError(`klPenalty: alpha must be >= 0, got ${alpha}`);
  return { kind: "kl", weight: -alpha };
}

/**
 * -weight * KL / dimensions: the KL weight on the official code's scale, where the KL is averaged
 * over a sample's dimensions (and summed over steps) before it is weighed. The official
 * compressibility run's weight is 0.1 (kl_weight 0.01 over loss_coeff 0.1). Per dimension, the
 * same weight penalises the same per-pixel change equally at any resolution or latent size.
 */
export function klPenaltyPerDimension(weight: number, dimensions: number): RewardPart {
  if (!(weight >= 0)) throw new RangeError(`klPenaltyPerDimension: weight must be >= 0, got ${weight}`);
  if (!Number.isInteger(dimensions) || dimensions < 1) throw new RangeError(`klPenaltyPerDimension: dimensions must be a positive integer, got ${dimensions}`);
  return klPenalty(weight / dimensions);
}

/**
 * CTRL's reward for one or several controls, each with the classifier learned from its own
 * dataset: under y1 ⊥ y2 | x, log p(y1, y2 | x) = log p(y1 | x) + log p(y2 | x), so the reward is
 * the sum of the classifiers' log-probabilities (each capped at `confidenceCap` when given),
 * minus the KL weighed per dimension.
 */
export function ctrlReward(
  controls: readonly { classifier: string; field: string }[],
  klWeight: number,
  dimensions: number,
  confidenceCap?: number,
): RewardPart[] {
  if (controls.length === 0) throw new RangeError("ctrlReward: at least one control is required");
  return [...controls.map((c) => logProb(c.classifier, c.field, 1, confidenceCap)), klPenaltyPerDimension(klWeight, dimensions)];
}

export function constant(values: number[], weight = 1): RewardPart {
  return { kind: "constant", weight, values };
}

/** The contract's form of an expression. */
export function rewardTerms(parts: readonly RewardPart[]): RewardTerm[] {
  return parts.map((part): RewardTerm => {
    switch (part.kind) {
      case "logProb":
        return {
          weight: part.weight,
          source: { $case: "classifierLogProb", value: { classifier: part.classifier, labelField: part.field, confidenceCap: part.confidenceCap ?? 0 } },
        };
      case "kl":
        return { weight: part.weight, source: { $case: "kl", value: {} } };
      case "constant":
        return { weight: part.weight, source: { $case: "constant", value: { values: part.values } } };
    }
  });
}

/** A human-readable formula, e.g. "log p(compressibility | x0) - 0.1 * KL". */
export function describeReward(parts: readonly RewardPart[]): string {
  return parts
    .map((part, i) => {
      const name =
        part.kind === "logProb"
          ? part.confidenceCap === undefined
            ? `log p(${part.field} | x0)`
            : `log min(p(${part.field} | x0), ${part.confidenceCap})`
          : part.kind === "kl"
            ? "KL"
            : "constant";
      const magnitude = Math.abs(part.weight);
      const sign = part.weight < 0 ? "-" : i === 0 ? "" : "+";
      const scaled = magnitude === 1 ? name : `${Number(magnitude.toPrecision(4))} * ${name}`; // 0.3 / 3072, not 0.00009765624999999999
      return `${i === 0 ? sign : ` ${sign} `}${scaled}`;
    })
    .join("");
}
