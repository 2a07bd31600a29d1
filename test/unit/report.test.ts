import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type ReportData, renderReport, type SummaryRow, writeReport } from "../../src/eval/report.js";

const TASK = "compressibility (jpeg_size, 4 classes)";

function row(method: string, accuracy: number, extra: Partial<SummaryRow> = {}): SummaryRow {
  return {
    task: TASK,
    method,
    accuracy,
    macro_f1: 0.5,
    n_samples: 128,
    mean_kl: method === "pre-trained" ? null : 3.14159,
    quality: { name: "FD (lower is better)", value: 12.3456 },
    seconds: 845.2,
    seed: 0,
    ...extra,
  };
}

function sample(overrides: Partial<ReportData> = {}): ReportData {
  return {
    title: "ctrl: compressibility",
    runId: "run-42",
    createdAt: "2025-01-01T12:00:00.000Z",
    config: { task: "compressibility", finetune: { steps: 100, lr: 0.0003 } },
    summary: [row("pre-trained", 0.25, { macro_f1: 0.1 }), row("ctrl", 0.8125, { macro_f1: 0.79, classifier_accuracy: 0.9 }), row("best-of-n", 0.7)],
    curves: [{ title: "loss", xLabel: "step", yLabel: "loss", series: [{ name: "loss", points: [[0, 1], [1, 0.5]] }] }],
    confusions: [{ title: "ctrl", labels: ["0", "1"], matrix: [[3, 1], [0, 4]] }],
    grids: [{ title: "ctrl, asked for class 3", file: "grids/ctrl 3.png" }],
    notes: ["Beware of <script>alert('x')</script> & co."],
    ...overrides,
  };
}

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

/** The text of each cell of each body row of the results table, tags stripped. */
function tableRows(html: string): string[][] {
  const body = html.slice(html.indexOf("<tbody>"), html.indexOf("</tbody>"));
  return [...body.matchAll(/<tr>(.*?)<\/tr>/g)].map((m) => [...m[1]!.matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1]!.replace(/<[^>]+>/g, "")));
}

test("the summary table has one row per method, formatted, with the best accuracy bolded", () => {
  const html = renderReport(sample());
  const rows = tableRows(html);
  assert.equal(rows.length, 3);
  assert.deepEqual(rows[1], ["ctrl", "0.813", "0.790", "3.142", "12.35", "14 min 05 s", "0.9"]);
  assert.deepEqual(rows[0]!.slice(0, 4), ["pre-trained", "0.250", "0.100", "—"]);
  assert.equal(rows[0]![6], "—", "an extra column a row lacks");
  assert.equal(count(html, /<strong>/g), 1);
  assert.ok(html.includes("<strong>0.813</strong>"));
  assert.ok(html.includes(">FD (lower is better)</th>"), "the quality column is headed by its metric");
  assert.ok(html.includes(">classifier accuracy</th>"), "extra keys become columns");
});

test("columns with one value in every row are said once under the table", () => {
  const html = renderReport(sample());
  assert.ok(!html.includes(">task</th>") && !html.includes(">samples</th>") && !html.includes(">seed</th>"));
  assert.match(html, /In every row: task: <b>compressibility \(jpeg_size, 4 classes\)<\/b> · samples: <b>128<\/b> · seed: <b>0<\/b>/);
  // several tasks: the task column stays, and each task bolds its own best
  const other = [row("pre-trained", 0.5, { task: "brightness" }), row("ctrl", 0.6, { task: "brightness" })];
  const mixed = renderReport(sample({ summary: [...sample().summary, ...other] }));
  assert.ok(mixed.includes(">task</th>"));
  assert.equal(count(mixed, /<strong>/g), 2);
  // a single row keeps every column
  assert.ok(renderReport(sample({ summary: [row("ctrl", 0.5)] })).includes(">seed</th>"));
});

test("the page is self-contained, escapes text and holds every part", () => {
  const html = renderReport(sample({ title: "ctrl <b>bold</b>" }));
  assert.ok(html.startsWith("<!doctype html>"));
  assert.ok(!/<script/i.test(html), "no script element at all");
  assert.ok(html.includes("Beware of &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co."));
  assert.ok(html.includes("<title>ctrl &lt;b&gt;bold&lt;/b&gt;</title>"));
  assert.ok(!/(src|href)="(https?:)?\/\//i.test(html) && !/<link/i.test(html) && !/url\(/i.test(html), "nothing is fetched from elsewhere");
  assert.ok(html.includes('<img src="grids/ctrl%203.png" alt="ctrl, asked for class 3">'));
  assert.ok(html.includes("<figcaption>ctrl, asked for class 3</figcaption>"));
  assert.equal(count(html, /<svg /g), 3, "the accuracy bars, one curve, one heatmap");
  assert.ok(html.includes("Run <code>run-42</code> · 2025-01-01 12:00 UTC"));
  assert.match(html, /<details><summary>[^<]*<\/summary>\n<pre>\{\n {2}&quot;task&quot;: &quot;compressibility&quot;,/);
});

test("empty parts are left out, and a grid must be a relative path", () => {
  const html = renderReport(sample({ curves: [], confusions: [], grids: [], notes: [], summary: [] }));
  for (const heading of ["Training curves", "Confusion matrices", "Samples", "Notes"]) assert.ok(!html.includes(`<h2>${heading}</h2>`), heading);
  assert.ok(html.includes("<p>No results.</p>") && html.includes("<h2>Configuration</h2>"));
  assert.throws(() => renderReport(sample({ grids: [{ title: "x", file: "https://example.com/a.png" }] })), /must be a path relative/);
  assert.throws(() => renderReport(sample({ grids: [{ title: "x", file: "/etc/a.png" }] })), /must be a path relative/);
  assert.ok(renderReport(sample({ config: { big: 10n } })).includes("&quot;big&quot;: &quot;10&quot;"));
});

test("writeReport writes report.html through a temporary file and replaces an old one", async () => {
  const root = await mkdtemp(join(tmpdir(), "ctrl-report-"));
  try {
    const dir = join(root, "runs", "run-42");
    const path = await writeReport(dir, sample());
    assert.equal(path, join(dir, "report.html"));
    assert.equal(await readFile(path, "utf8"), renderReport(sample()));
    await writeReport(dir, sample({ title: "second" }));
    assert.match(await readFile(path, "utf8"), /<h1>second<\/h1>/);
    assert.deepEqual(await readdir(dir), ["report.html"], "no temporary file is left behind");
    // a folder that cannot be made: the error surfaces and nothing is left
    const blocked = join(root, "file");
    await writeFile(blocked, "");
    await assert.rejects(writeReport(join(blocked, "sub"), sample()), /ENOTDIR|EEXIST/);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a report that cannot render writes nothing", async () => {
  const root = await mkdtemp(join(tmpdir(), "ctrl-report-"));
  try {
    await assert.rejects(writeReport(root, sample({ grids: [{ title: "x", file: "/abs.png" }] })), /relative/);
    assert.deepEqual(await readdir(root), []);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
