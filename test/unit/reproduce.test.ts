import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bestOfNKlBound } from "../../src/baselines/bestOfN.js";
import { guidanceTerms } from "../../src/baselines/guidance.js";
import { parseConfig } from "../../src/ctrl/config.js";
import { Unconditional } from "../../src/gen/ctrl/v1/worker.js";
import { ctrlReward, rewardTerms } from "../../src/rewards/expression.js";
import { FULL, QUICK, experimentConfig, parseReproduceConfig } from "../../src/reproduce/config.js";
import { poolSize } from "../../src/reproduce/data.js";
import { jointClass, jointTargets } from "../../src/reproduce/evaluate.js";
import { efficiencyCurve } from "../../src/reproduce/outputs.js";
import { type TableRow, markdownTable } from "../../src/reproduce/table.js";
import { configProblems } from "../helpers.js";

const problems = (input: unknown): string[] => configProblems(parseReproduceConfig, input);

describe("reproduce config", () => {
  test("both presets are valid and imply a valid CTRL experiment config", () => {
    for (const preset of [QUICK, FULL]) {
      const config = parseReproduceConfig(preset);
      const experiment = parseConfig(experimentConfig(config));
      assert.equal(experiment.finetune.epochs, config.ctrl.epochs);
      assert.equal(experiment.classifier.epochs, config.classifier.epochs);
      assert.equal(experiment.seed, config.seed);
    }
  });

  test("a reproduce config that leaves out the cap gets CTRL's default cap, not none", () => {
    const { confidenceCap, ...ctrlWithoutCap } = QUICK.ctrl;
    assert.ok(confidenceCap !== undefined, "the preset lists its cap");
    const config = parseReproduceConfig({ ...QUICK, ctrl: ctrlWithoutCap });
    assert.equal(config.ctrl.confidenceCap, parseConfig({}).finetune.confidenceCap);
  });

  test("bad fields are named, one message each", () => {
    const bad = {
      ...QUICK,
      data: { singleSize: 5, multiSize: 100, efficiencySizes: [100, 100] },
      classifierFree: { ...QUICK.classifierFree, labelDropout: 1 },
      surprise: true,
    };
    const found = problems(bad);
    assert.ok(found.some((p) => p.startsWith("data.singleSize:")), found.join("\n"));
    assert.ok(found.some((p) => p.startsWith("classifierFree.labelDropout:")), found.join("\n"));
    assert.ok(found.some((p) => p.includes("surprise")), found.join("\n"));
    assert.deepEqual(problems({ ...QUICK, data: { ...QUICK.data, efficiencySizes: [100, 100] } }), ["data.efficiencySizes: sizes must differ, got 100, 100"]);
    const truncation = problems({ ...QUICK, ctrl: { ...QUICK.ctrl, truncation: { kind: "last", steps: 50 } } });
    assert.deepEqual(truncation, ["ctrl.truncation.steps: must be at most sampler.steps (10), got 50"]);
  });

  test("the pool holds the largest prefix and two disjoint multi-control sets", () => {
    assert.equal(poolSize({ singleSize: 1000, multiSize: 1000, efficiencySizes: [100, 300] }), 2000);
    assert.equal(poolSize({ singleSize: 1000, multiSize: 500, efficiencySizes: [3000] }), 3000);
  });
});

describe("targets and joint classes", () => {
  const compress = { name: "c", numClasses: 2 };
  const bright = { name: "b", numClasses: 2 };

  test("one control: the classes in equal shares, in order", () => {
    assert.deepEqual(jointTargets(6, [{ name: "c", numClasses: 4 }]), { c: [0, 0, 1, 2, 2, 3] });
  });

  test("two controls: every joint class in equal shares, the first control most significant", () => {
    assert.deepEqual(jointTargets(8, [compress, bright]), { c: [0, 0, 0, 0, 1, 1, 1, 1], b: [0, 0, 1, 1, 0, 0, 1, 1] });
    assert.equal(jointClass([1, 0], [compress, bright]), 2);
    assert.equal(jointClass([1, 1], [compress, bright]), 3);
    assert.equal(jointClass([3], [{ numClasses: 4 }]), 3);
  });
});

describe("baselines' building blocks", () => {
  test("guidance becomes the contract's terms", () => {
    const terms = guidanceTerms([
      { kind: "classifier-free", scale: 2, control: "control/1", labels: { c: [0, 1] } },
      { kind: "classifier-free", scale: 1, control: "control/1", labels: { c: [1, 1] }, unconditional: "null-label" },
      { kind: "reconstruction", scale: 3, classifier: "classifier/1", targets: [0, 1] },
      { kind: "classifier", scale: 4, classifier: "classifier/2", targets: [1, 0] },
    ]);
    assert.deepEqual(terms[0], { scale: 2, kind: { $case: "classifierFree", value: { control: "control/1", labels: [{ field: "c", values: [0, 1] }], unconditional: Unconditional.UNCONDITIONAL_PRETRAINED } } });
    assert.equal(terms[1]!.kind?.$case === "classifierFree" && terms[1]!.kind.value.unconditional, Unconditional.UNCONDITIONAL_NULL_LABEL);
    assert.deepEqual(terms[2], { scale: 3, kind: { $case: "reconstruction", value: { classifier: "classifier/1", targets: [0, 1] } } });
    assert.deepEqual(terms[3], { scale: 4, kind: { $case: "noiseAwareClassifier", value: { classifier: "classifier/2", targets: [1, 0] } } });
  });

  test("best-of-N's KL bound is 0 for one candidate and grows like log N", () => {
    assert.equal(bestOfNKlBound(1), 0);
    assert.ok(Math.abs(bestOfNKlBound(4) - (Math.log(4) - 0.75)) < 1e-12);
    assert.ok(bestOfNKlBound(16) > bestOfNKlBound(4));
  });

  test("CTRL's multi-control reward is one log-probability term per control plus the KL penalty", () => {
    const terms = rewardTerms(ctrlReward([{ classifier: "classifier/1", field: "compressibility_2" }, { classifier: "classifier/2", field: "brightness_2" }], 0.1, 10));
    assert.deepEqual(terms, [
      { weight: 1, source: { $case: "classifierLogProb", value: { classifier: "classifier/1", labelField: "compressibility_2", confidenceCap: 0 } } },
      { weight: 1, source: { $case: "classifierLogProb", value: { classifier: "classifier/2", labelField: "brightness_2", confidenceCap: 0 } } },
      { weight: -0.01, source: { $case: "kl", value: {} } },
    ]);
    assert.throws(() => ctrlReward([], 0.1, 10), /at least one control/);
  });
});

function row(method: TableRow["method"], experiment: string, accuracy: number, labelled: number, perControl: Record<string, number> = { c: accuracy }): TableRow {
  return {
    experiment, task: "t", method, setting: method === "cfg" ? "w = 2" : "", accuracy, macro_f1: accuracy / 2, accuracy_per_control: perControl,
    n_samples: 8, mean_kl: method === "pretrained" ? 0 : 12.5, kl_kind: method === "best-of-n" ? "best-of-n bound" : "trajectory",
    quality: { name: "FD", value: 3 }, train_seconds: 75, sample_seconds: 2, seconds: 77, peak_rss_mb: 900.5, labelled_images: labelled,
    joint_labelled_images: null, unet_passes_per_image: 10, seed: 0, evaluation_seed: 42, oracle_means: {}, confusion: [[1]], grid: "g.png",
  };
}

describe("tables and the sample-efficiency curve", () => {
  test("a Markdown table: one line per row, per-control accuracies only with several controls", () => {
    const single = markdownTable([row("pretrained", "single-control", 0.25, 0), row("cfg", "single-control", 0.5, 1000)]);
    const lines = single.split("\n");
    assert.equal(lines.length, 4);
    assert.match(lines[0]!, /^\| method \| setting \| accuracy \| macro-F1 \| mean KL/);
    assert.match(lines[3]!, /^\| cfg \| w = 2 \| 0\.500 \| 0\.250 \| 12\.5 \| 3 \| 1 min 15 s \| 2\.0 s \| 900\.5 \| 1000 \| 10 \|$/);
    const multi = markdownTable([row("ctrl", "multi-control", 0.3, 2000, { c: 0.6, b: 0.5 })]);
    assert.match(multi, /acc\. c \| acc\. b/);
    assert.match(multi, /\| 0\.600 \| 0\.500 \|/);
  });

  test("the curve has CTRL and CFG by dataset size and the pre-trained level", () => {
    const rows = [
      row("ctrl", "sample-efficiency", 0.4, 1000),
      row("ctrl", "sample-efficiency", 0.3, 100),
      row("cfg", "sample-efficiency", 0.35, 100),
      row("pretrained", "single-control", 0.25, 0),
    ];
    const curve = efficiencyCurve(rows);
    assert.deepEqual(curve.series.map((s) => s.name), ["CTRL", "classifier-free guidance (w = 2)", "pre-trained (no labels)"]);
    assert.deepEqual(curve.series[0]!.points, [[100, 0.3], [1000, 0.4]]);
    assert.deepEqual(curve.series[2]!.points, [[100, 0.25], [1000, 0.25]]);
  });
});
