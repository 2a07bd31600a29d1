/**
 * Best-of-N: for each requested image, N samples of the pre-trained model; keep the one the
 * classifiers score highest for its label (the sum of their calibrated log-probabilities, one
 * classifier per control). No training; the price is N times the sampling.
 */
import { deriveSeed } from "../ctrl/random.js";
import { logSoftmax } from "../eval/metrics.js";
import { type ImageBatch, imageAt, uint8Tensor } from "../worker/tensors.js";
import type { Worker } from "../worker/worker.js";

/** A classifier and the class each requested image should have under it. */
export interface Scorer {
  classifier: string;
  targets: number[];
}

export interface BestOfNOptions {
  n: number;
  scorers: Scorer[];
  /** Draws the candidates of one round: one image per requested image, from the seed. */
  sample: (seed: number) => Promise<ImageBatch>;
  /** Round 0 uses this seed (so N = 1 is the pre-trained sampler), later rounds seeds derived from it. */
  seed: number;
}

export interface BestOfNResult {
  images: ImageBatch;
  /** The chosen candidates' scores (sum of log-probabilities). */
  scores: number[];
  candidatesPerImage: number;
}

/**
 * KL(best-of-N || pre-trained) <= log N - (N - 1) / N for continuous scores (Beirami et al. 2024):
 * the nearest equivalent of the other methods' KL (a bound on the final samples' KL rather than
 * the trajectory's).
 */
export function bestOfNKlBound(n: number): number {
  return Math.log(n) - (n - 1) / n;
}

export async function bestOfN(worker: Worker, options: BestOfNOptions): Promise<BestOfNResult> {
  if (!Number.isInteger(options.n) || options.n < 1) throw new RangeError(`bestOfN: n must be a positive integer, got ${options.n}`);
  let best: ImageBatch | undefined;
  let scores: number[] = [];
  for (let round = 0; round < options.n; round++) {
    const candidates = await options.sample(round === 0 ? options.seed : deriveSeed(options.seed, "best-of-n", round));
    const candidateScores = await score(worker, candidates, options.scorers);
    if (!best) {
      best = { ...candidates, data: new Uint8Array(candidates.data) };
      scores = candidateScores;
      continue;
    }
    const size = candidates.height * candidates.width * candidates.channels;
    candidateScores.forEach((value, i) => {
      if (value > scores[i]!) {
        scores[i] = value;
        best!.data.set(imageAt(candidates, i), i * size);
      }
    });
  }
  return { images: best!, scores, candidatesPerImage: options.n };
}

/** Per image, the sum over scorers of log p(target | image) at the classifier's temperature. */
async function score(worker: Worker, images: ImageBatch, scorers: Scorer[]): Promise<number[]> {
  const totals = new Array<number>(images.count).fill(0);
  for (const scorer of scorers) {
    if (scorer.targets.length !== images.count) throw new RangeError(`bestOfN: ${scorer.targets.length} targets for ${images.count} images`);
    const result = await worker.classifierLogits({ classifier: scorer.classifier, images: uint8Tensor(images) });
    result.logits.forEach((row, i) => {
      totals[i]! += logSoftmax(Array.from(row), result.temperature)[scorer.targets[i]!]!;
    });
  }
  return totals;
}
