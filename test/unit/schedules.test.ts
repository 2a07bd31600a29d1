import assert from "node:assert/strict";
import { test } from "node:test";
import { ddimTimesteps, ddpmTimesteps, nextTimestep, samplerTimesteps } from "../../src/sampling/schedules.js";

test("DDIM leading spacing with offset 1 gives the paper's 981, 961, ..., 1 for 50 steps", () => {
  const t = ddimTimesteps({ numTrainTimesteps: 1000, steps: 50, offset: 1 });
  assert.equal(t.length, 50);
  assert.deepEqual([t[0], t[1], t.at(-1)], [981, 961, 1]);
});

test("DDIM without offset ends at 0; DDPM walks every timestep", () => {
  assert.deepEqual(ddimTimesteps({ numTrainTimesteps: 1000, steps: 4 }), [750, 500, 250, 0]);
  const ddpm = ddpmTimesteps(1000);
  assert.equal(ddpm.length, 1000);
  assert.deepEqual([ddpm[0], ddpm.at(-1)], [999, 0]);
});

test("trailing spacing ends one grid step above 0, as diffusers' timestep_spacing='trailing'", () => {
  assert.deepEqual(ddimTimesteps({ numTrainTimesteps: 1000, steps: 10, spacing: "trailing" }), [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  const fifty = ddimTimesteps({ numTrainTimesteps: 1000, steps: 50, spacing: "trailing" });
  assert.deepEqual([fifty[0], fifty[1], fifty.at(-1)], [999, 979, 19]); // np.round(np.arange(1000, 0, -20)) - 1
  assert.throws(() => ddimTimesteps({ numTrainTimesteps: 1000, steps: 10, spacing: "trailing", offset: 1 }), /"trailing" spacing takes no offset/);
});

test("a sampler config's timesteps: leading spacing takes the backbone's steps_offset unless the config sets one", () => {
  const sd = { numTrainTimesteps: 1000, stepsOffset: 1 };
  assert.equal(samplerTimesteps({ steps: 50, spacing: "leading" }, sd).at(-1), 1);
  assert.equal(samplerTimesteps({ steps: 50, spacing: "leading", offset: 0 }, sd).at(-1), 0);
  assert.equal(samplerTimesteps({ steps: 50, spacing: "trailing" }, sd).at(-1), 19);
});

test("nextTimestep is -1 after the last step", () => {
  assert.equal(nextTimestep([9, 5, 1], 0), 5);
  assert.equal(nextTimestep([9, 5, 1], 2), -1);
});

test("bad schedules are refused with the field's name", () => {
  assert.throws(() => ddimTimesteps({ numTrainTimesteps: 1000, steps: 0 }), /steps must be an integer in \[1, 1000\]/);
  assert.throws(() => ddimTimesteps({ numTrainTimesteps: 1000, steps: 1001 }), /steps must be/);
  assert.throws(() => ddimTimesteps({ numTrainTimesteps: 0, steps: 1 }), /numTrainTimesteps must be a positive integer/);
  assert.throws(() => ddimTimesteps({ numTrainTimesteps: 1000, steps: 50, offset: 20 }), /offset 20 puts timesteps outside/);
});
