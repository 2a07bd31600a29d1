/**
 * Add a control learned from your own labelled images:
 *
 *   node --import tsx experiments/user-dataset.ts DATA_DIR LABEL_COLUMN [BACKBONE]
 *
 * DATA_DIR holds the images and labels.csv (or labels.jsonl): a `file` column with each image's
 * path inside DATA_DIR and integer class columns 0..K-1. The same as
 *   npx ctrl train --data DATA_DIR --label-column LABEL_COLUMN [--backbone BACKBONE]
 * Without an oracle for your labels, samples are judged by the calibrated classifier (said so in
 * the report).
 */
import { runCtrl } from "../src/index.js";

const [folder, labelColumn, backbone = "models/default"] = process.argv.slice(2);
if (!folder || !labelColumn) {
  console.error("usage: node --import tsx experiments/user-dataset.ts DATA_DIR LABEL_COLUMN [BACKBONE]");
  process.exit(2);
}

const { run, results } = await runCtrl({
  task: labelColumn.toLowerCase().replace(/[^a-z0-9-]+/g, "-"),
  backbone,
  dataset: { kind: "folder", path: folder, labelColumn },
});
for (const r of results) console.log(`${r.method}: accuracy ${r.evaluation.accuracy.toFixed(3)} (${r.evaluation.judgedBy})`);
console.log(`report: ${run.path("report.html")}`);
