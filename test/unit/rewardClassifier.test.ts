import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { trainRewardClassifier } from "../../src/ctrl/classifier.js";
import { parseConfig } from "../../src/ctrl/config.js";
import { Run } from "../../src/ctrl/runs.js";
import type { Worker } from "../../src/worker/worker.js";
import { tempDir } from "../helpers.js";

/**
 * A worker whose classifiers score `accuracyOf(handle)` on every row; it records the calls that
 * create, save, load and train classifiers.
 */
function recordingWorker(accuracyOf: (handle: string) => number) {
  const calls: string[] = [];
  const saved = new Map<string, string>();
  let next = 0;
  const labels = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1];
  const worker = {
    createClassifier: async () => {
      const handle = `classifier/${++next}`;
      calls.push(`create ${handle}`);
      return { handle };
    },
    saveClassifier: async (handle: string, directory: string) => {
      saved.set(directory, handle);
      calls.push(`save ${handle} ${path.basename(directory)}`);
      return [];
    },
    loadClassifier: async (directory: string) => {
      const handle = `classifier/${++next}`;
      calls.push(`load ${handle} from ${saved.has(directory) ? `${saved.get(directory)}'s folder` : "an unsaved folder"}`);
      return { handle };
    },
    trainClassifierStep: async (request: { classifier: string; adversarialEpsilon: number }) => {
      calls.push(`train ${request.classifier}${request.adversarialEpsilon > 0 ? " adversarially" : ""}`);
      return { loss: 1, accuracy: 0.5 };
    },
    classifierLogits: async (request: { classifier: string; indices: number[] }) => {
      const right = Math.round(accuracyOf(request.classifier) * request.indices.length);
      return {
        temperature: 1,
        labels: request.indices.map((i) => labels[i]!),
        logits: request.indices.map((i, k) => (k < right === (labels[i] === 0) ? [1, 0] : [0, 1])),
      };
    },
    calibrateClassifier: async () => ({ temperature: 1, nllBefore: 1, nllAfter: 1 }),
    release: async (handle: string) => {
      calls.push(`release ${handle}`);
    },
  } as unknown as Worker;
  return { worker, calls, data: { dataset: "dataset/1", column: "label", numClasses: 2, labels, imageShape: [3, 8, 8] } };
}

function newRun(): Run {
  const dir = path.join(tempDir("ctrl-runs-"), "run");
  mkdirSync(dir);
  return Run.at(dir);
}

test("the adversarial candidate is the plain classifier fine-tuned for robust.epochs, and the better one is kept", async () => {
  const config = parseConfig({ classifier: { epochs: 3, batchSize: 8, heldOutFraction: 0.2, robust: { epochs: 2 } } });
  // classifier/1 is the plain one; classifier/2 the adversarial candidate loaded from its folder.
  const { worker, calls, data } = recordingWorker((handle) => (handle === "classifier/1" ? 1 : 0.5));
  const report = await trainRewardClassifier(worker, data, config, newRun());
  const trainingCalls = (pattern: RegExp) => calls.filter((call) => pattern.test(call)).length;
  assert.equal(trainingCalls(/^train classifier\/1$/), 3, "one batch per epoch of plain training");
  assert.equal(trainingCalls(/^train classifier\/2 adversarially$/), 2, "robust.epochs of adversarial training");
  assert.deepEqual(
    calls.filter((call) => !call.startsWith("train")),
    ["create classifier/1", "save classifier/1 classifier-plain", "load classifier/2 from classifier/1's folder", "release classifier/2"],
    "the candidate starts from the plain classifier's saved weights; the one that lost by more than maxAccuracyDrop is released",
  );
  assert.equal(report.handle, "classifier/1");
  assert.deepEqual([report.plainAccuracy, report.robustAccuracy], [1, 0.5]);
});

test("without an adversarial radius only the plain classifier is trained", async () => {
  const config = parseConfig({ classifier: { epochs: 1, batchSize: 8, robust: { epsilon: 0 } } });
  const { worker, calls, data } = recordingWorker(() => 1);
  const report = await trainRewardClassifier(worker, data, config, newRun());
  assert.deepEqual(calls, ["create classifier/1", "train classifier/1"]);
  assert.equal(report.robustAccuracy, null);
});
