import assert from "node:assert/strict";
import { test } from "node:test";
import { constant, ctrlReward, describeReward, klPenalty, klPenaltyPerDimension, logProb, rewardTerms } from "../../src/rewards/expression.js";

test("CTRL's reward becomes the contract's terms", () => {
  const terms = rewardTerms([logProb("classifier/1", "compressibility"), klPenalty(0.1)]);
  assert.deepEqual(terms, [
    { weight: 1, source: { $case: "classifierLogProb", value: { classifier: "classifier/1", labelField: "compressibility", confidenceCap: 0 } } },
    { weight: -0.1, source: { $case: "kl", value: {} } },
  ]);
});

test("multi-control rewards add their classifiers' log-probabilities and read as formulas", () => {
  const parts = [logProb("c/1", "compressibility", 2), logProb("c/2", "brightness"), klPenalty(1), constant([0.5, 1])];
  assert.equal(describeReward(parts), "2 * log p(compressibility | x0) + log p(brightness | x0) - KL + constant");
  assert.throws(() => klPenalty(-1), /alpha must be >= 0/);
});

test("the per-dimension KL weight divides by the sample's dimensions (the official code's mean KL)", () => {
  assert.deepEqual(klPenaltyPerDimension(0.1, 3072), klPenalty(0.1 / 3072));
  assert.equal(describeReward([logProb("c/1", "y"), klPenaltyPerDimension(0.3, 3072)]), "log p(y | x0) - 0.00009766 * KL");
  assert.throws(() => klPenaltyPerDimension(0.1, 0), /dimensions must be a positive integer/);
  assert.throws(() => klPenaltyPerDimension(-1, 10), /weight must be >= 0/);
});

test("a confidence cap travels with its term and reads as log min(p, cap); 1 is no cap", () => {
  const [capped, kl] = rewardTerms(ctrlReward([{ classifier: "c/1", field: "y" }], 3, 3072, 0.9));
  assert.deepEqual(capped!.source, { $case: "classifierLogProb", value: { classifier: "c/1", labelField: "y", confidenceCap: 0.9 } });
  assert.deepEqual(kl!.source, { $case: "kl", value: {} });
  assert.equal(describeReward(ctrlReward([{ classifier: "c/1", field: "y" }], 3, 3072, 0.9)), "log min(p(y | x0), 0.9) - 0.0009766 * KL");
  assert.deepEqual(logProb("c/1", "y", 1, 1), logProb("c/1", "y"));
  for (const bad of [0, -0.5, 1.5, Number.NaN]) assert.throws(() => logProb("c/1", "y", 1, bad), /confidenceCap must be in \(0, 1\]/);
});
