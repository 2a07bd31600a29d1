/** Timestep schedules, computed in TypeScript so that experiments own them. */

export interface DdimScheduleOptions {
  /** Training timesteps of the backbone, usually 1000. */
  numTrainTimesteps: number;
  /** Sampling steps, e.g. 50. */
  steps: number;
  /**
   * Added to every timestep. Stable Diffusion's scheduler uses 1 (giving 981, 961, ..., 1 for 50
   * steps, as in the CTRL paper); pixel DDPMs use 0.
   */
  offset?: number;
  /**
   * diffusers' `timestep_spacing`. "leading" (the default): floor(i * T / steps) + offset, ending
   * at the offset (0 for pixel DDPMs); "trailing": the same grid shifted to end at T / steps - 1
   * (999, 899, ..., 99 for 10 of 1000), so the last step jumps to the clean sample from a
   * visible noise level and no step lands near t = 0 (Lin et al. 2024). Trailing takes no offset.
   */
  spacing?: TimestepSpacing;
}

export type TimestepSpacing = "leading" | "trailing";

/** DDIM timesteps, largest first, in diffusers' "leading" or "trailing" spacing. */
export function ddimTimesteps({ numTrainTimesteps, steps, offset, spacing = "leading" }: DdimScheduleOptions): number[] {
  if (!Number.isInteger(numTrainTimesteps) || numTrainTimesteps < 1) {
    throw new RangeError(`numTrainTimesteps must be a positive integer, got ${numTrainTimesteps}`);
  }
  if (!Number.isInteger(steps) || steps < 1 || steps > numTrainTimesteps) {
    throw new RangeError(`steps must be an integer in [1, ${numTrainTimesteps}], got ${steps}`);
  }
  const ratio = Math.floor(numTrainTimesteps / steps);
  if (spacing === "trailing" && offset !== undefined) {
    throw new RangeError(`offset ${offset}: "trailing" spacing takes no offset (it ends at ${ratio - 1})`);
  }
  const start = spacing === "trailing" ? ratio - 1 : (offset ?? 0);
  const timesteps = Array.from({ length: steps }, (_, i) => (steps - 1 - i) * ratio + start);
  if (!Number.isInteger(start) || timesteps[0]! >= numTrainTimesteps || start < 0) {
    throw new RangeError(`offset ${start} puts timesteps outside [0, ${numTrainTimesteps})`);
  }
  return timesteps;
}

/**
 * The timesteps of a sampler config (`sampler` in the experiment config) on a backbone: with
 * "leading" spacing the offset defaults to the backbone scheduler's steps_offset.
 */
export function samplerTimesteps(
  sampler: { steps: number; spacing: TimestepSpacing; offset?: number | undefined },
  backbone: { numTrainTimesteps: number; stepsOffset: number },
): number[] {
  const { numTrainTimesteps, stepsOffset } = backbone;
  return sampler.spacing === "trailing"
    ? ddimTimesteps({ numTrainTimesteps, steps: sampler.steps, spacing: "trailing" })
    : ddimTimesteps({ numTrainTimesteps, steps: sampler.steps, offset: sampler.offset ?? stepsOffset });
}

/** Every training timestep, T-1 down to 0: with eta = 1 this is DDPM's ancestral sampler. */
export function ddpmTimesteps(numTrainTimesteps: number): number[] {
  return ddimTimesteps({ numTrainTimesteps, steps: numTrainTimesteps });
}

/** The timestep after `timesteps[i]`, or -1 after the last one (the clean sample). */
export function nextTimestep(timesteps: readonly number[], i: number): number {
  return i + 1 < timesteps.length ? timesteps[i + 1]! : -1;
}
