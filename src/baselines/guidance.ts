/**
 * Guided sampling for the baselines, driven from TypeScript one step at a time: the pre-trained
 * model's noise prediction corrected by classifier-free guidance (a control trained with the
 * denoising loss), reconstruction guidance (a clean classifier's gradient through the denoised
 * estimate x0_hat(x_t), DPS-style) or classifier guidance (a noise-aware classifier on x_t). The
 * formulas are in the contract (GuidanceTerm). Every scale 0 gives exactly the pre-trained
 * sampler's images for the same seed.
 */
import { type GuidanceTerm, Unconditional } from "../gen/ctrl/v1/worker.js";
import { type StepLoop, finishTrajectory } from "../sampling/stepwise.js";
import { type Labels, type Samples, type Worker, labelValues } from "../worker/worker.js";

export type Guidance =
  /**
   * w * (eps_control(y) - eps_uncond). `unconditional` "pretrained" (default) makes scale 0 the
   * pre-trained model and scale 1 the fine-tuned conditional model; "null-label" is the textbook
   * eps(null) + w * (eps(y) - eps(null)) of the same control.
   */
  | { kind: "classifier-free"; scale: number; control: string; labels: Labels; unconditional?: "pretrained" | "null-label" }
  /** -s * sqrt(1 - a_t) * grad log p(y | x0_hat(x_t)) under a clean classifier. */
  | { kind: "reconstruction"; scale: number; classifier: string; targets: number[] }
  /** -s * sqrt(1 - a_t) * grad log p_t(y | x_t, t) under a noise-aware classifier. */
  | { kind: "classifier"; scale: number; classifier: string; targets: number[] };

export function guidanceTerms(guidance: readonly Guidance[]): GuidanceTerm[] {
  return guidance.map((g): GuidanceTerm => {
    switch (g.kind) {
      case "classifier-free": {
        const unconditional = g.unconditional === "null-label" ? Unconditional.UNCONDITIONAL_NULL_LABEL : Unconditional.UNCONDITIONAL_PRETRAINED;
        return { scale: g.scale, kind: { $case: "classifierFree", value: { control: g.control, labels: labelValues(g.labels), unconditional } } };
      }
      case "reconstruction":
        return { scale: g.scale, kind: { $case: "reconstruction", value: { classifier: g.classifier, targets: g.targets } } };
      case "classifier":
        return { scale: g.scale, kind: { $case: "noiseAwareClassifier", value: { classifier: g.classifier, targets: g.targets } } };
    }
  });
}

export interface GuidedSampleOptions extends StepLoop {
  backbone: string;
  numSamples: number;
  seed: number;
  guidance: Guidance[];
  /** Also return each sample's KL between the guided and the pre-trained transitions. */
  computeKl?: boolean;
}

export async function sampleGuided(worker: Worker, options: GuidedSampleOptions): Promise<Samples> {
  const computeKl = options.computeKl ?? false;
  const trajectory = await worker.startGuidedTrajectory({
    backbone: options.backbone,
    numSamples: options.numSamples,
    seed: options.seed,
    terms: guidanceTerms(options.guidance),
    computeKl,
  });
  return finishTrajectory(worker, trajectory.handle, options, async () => ({
    ...(await worker.readImages(trajectory.handle)),
    kl: computeKl ? await worker.readTrajectoryKl(trajectory.handle) : undefined,
  }));
}
