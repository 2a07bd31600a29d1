import { learningRateScale } from "../../src/ctrl/finetune.js";
import assert from "node:assert/strict";
import { test } from "node:test";
import { Random, deriveSeed, stratifiedSplit } from "../../src/ctrl/random.js";
import { gradientMask } from "../../src/ctrl/truncation.js";

test("derived seeds are deterministic, distinct by purpose and safe integers", () => {
  assert.equal(deriveSeed(0, "rollout", 3), deriveSeed(0, "rollout", 3));
  assert.notEqual(deriveSeed(0, "rollout", 3), deriveSeed(0, "rollout", 4));
  assert.notEqual(deriveSeed(0, "a", 12), deriveSeed(0, "a1", 2));
  assert.ok(Number.isSafeInteger(deriveSeed(2 ** 53 - 1, "x")));
});

test("the generator repeats for a seed and its categorical draws follow the weights", () => {
  const a = new Random(5);
  const b = new Random(5);
  assert.deepEqual([a.next(), a.next()], [b.next(), b.next()]);
  const random = new Random(1);
  const counts = [0, 0, 0];
  for (let i = 0; i < 30_000; i++) counts[random.categorical([1, 2, 0])]!++;
  assert.equal(counts[2], 0);
  assert.ok(Math.abs(counts[1]! / counts[0]! - 2) < 0.1, String(counts));
});

test("a stratified split keeps every class on both sides and loses no row", () => {
  const labels = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2];
  const { train, heldOut } = stratifiedSplit(labels, 0.25, new Random(0));
  assert.deepEqual([...train, ...heldOut].sort((x, y) => x - y), labels.map((_, i) => i));
  for (const c of [0, 1, 2]) {
    assert.ok(train.some((i) => labels[i] === c) && heldOut.some((i) => labels[i] === c), `class ${c}`);
  }
});

test("random truncation keeps step i with probability (i + 1) / (n + 1), and never none", () => {
  const n = 10;
  const kept = Array.from({ length: n }, () => 0);
  const random = new Random(3);
  const trials = 20_000;
  for (let t = 0; t < trials; t++) {
    const mask = gradientMask({ kind: "random" }, n, random);
    assert.ok(mask.includes(true));
    mask.forEach((k, i) => (kept[i]! += k ? 1 : 0));
  }
  kept.forEach((count, i) => assert.ok(Math.abs(count / trials - (i + 1) / (n + 1)) < 0.02, `step ${i}: ${count / trials}`));
  assert.deepEqual(gradientMask({ kind: "last", steps: 2 }, 4, random), [false, false, true, true]);
  assert.deepEqual(gradientMask({ kind: "none" }, 2, random), [true, true]);
});

test("the learning-rate schedule: a linear warm-up, then constant or a cosine decay", () => {
  assert.deepEqual([0, 1, 2, 3, 10].map((step) => learningRateScale(step, 20, 4, "constant")), [0.25, 0.5, 0.75, 1, 1]);
  assert.equal(learningRateScale(0, 20, 0, "constant"), 1);
  // cosine after the ramp: 1 at its start, 1/2 half way, towards 0 at the end
  assert.deepEqual([0, 3, 4, 12].map((step) => learningRateScale(step, 20, 4, "cosine")), [0.25, 1, 1, 0.5]);
  assert.ok(learningRateScale(19, 20, 4, "cosine") < 0.01);
});
