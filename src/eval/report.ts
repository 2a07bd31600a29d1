/**
 * A run's report: one self-contained HTML page (inline CSS and SVG, no scripts, nothing fetched
 * but the run's own PNG grids beside it) with the results table, charts, samples and config.
 */
import { randomBytes } from "node:crypto";
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { barChart, confusionHeatmap, escapeXml, formatNumber, lineChart } from "./charts.js";

export interface SummaryRow {
  task: string;
  method: string;
  accuracy: number;
  macro_f1: number;
  n_samples: number;
  mean_kl: number | null;
  quality: { name: string; value: number } | null;
  seconds: number;
  seed: number;
  [extra: string]: unknown;
}

export interface Curve {
  title: string;
  xLabel: string;
  yLabel: string;
  logX?: boolean;
  series: { name: string; points: [number, number][] }[];
}

export interface ReportData {
  title: string;
  runId: string;
  createdAt: string;
  /** Shown as pretty JSON in a collapsible <details>. */
  config: unknown;
  /** The results table, one row per method (the pre-trained reference included). */
  summary: SummaryRow[];
  /** Training curves. */
  curves: Curve[];
  /** Grouped bar charts, one value per category and series (e.g. diversity per class and method). */
  bars?: { title: string; yLabel: string; categories: string[]; series: { name: string; values: number[] }[] }[];
  confusions: { title: string; labels: string[]; matrix: number[][] }[];
  /** PNG files relative to the report's folder, shown as <img>. */
  grids: { title: string; file: string }[];
  /** Paragraphs of plain text. */
  notes: string[];
}

const STYLE = `
body { margin: 0; background: #f6f7f9; color: #1d2433; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
main { max-width: 1280px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 32px 0 12px; font-size: 19px; border-bottom: 1px solid #d9dde3; padding-bottom: 4px; }
.meta { margin: 0; color: #5b6473; }
.table { overflow-x: auto; background: #fff; border: 1px solid #d9dde3; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { padding: 6px 10px; text-align: left; white-space: nowrap; border-bottom: 1px solid #eceef2; }
th { background: #eef1f5; font-weight: 600; white-space: normal; min-width: 7ch; max-width: 24ch; vertical-align: bottom; }
tbody tr:last-child td { border-bottom: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts, .grids { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.charts > figure, .grids > figure { margin: 0; background: #fff; border: 1px solid #d9dde3; border-radius: 6px; padding: 8px; max-width: 100%; overflow-x: auto; }
.grids img { display: block; max-width: 100%; image-rendering: pixelated; }
figcaption { margin-top: 6px; font-size: 13px; color: #3b4456; }
pre { background: #fff; border: 1px solid #d9dde3; border-radius: 6px; padding: 12px; overflow-x: auto; font-size: 13px; }
summary { cursor: pointer; color: #3b4456; }
.notes p { max-width: 80ch; }
.same { margin: 8px 0 0; font-size: 14px; color: #3b4456; }
`;

/** The fixed columns of a summary row; any other key of a row becomes an extra column. */
const FIXED_KEYS = new Set(["task", "method", "accuracy", "macro_f1", "n_samples", "mean_kl", "quality", "seconds", "seed"]);

function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return "n/a";
  if (seconds < 60) return `${formatNumber(seconds, 3)} s`;
  const whole = Math.round(seconds);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (whole < 3600) return `${Math.floor(whole / 60)} min ${pad(whole % 60)} s`;
  return `${Math.floor(whole / 3600)} h ${pad(Math.floor((whole % 3600) / 60))} min`;
}

const fixed3 = (value: number): string => (Number.isFinite(value) ? value.toFixed(3) : "n/a");

/** Any cell value as escaped HTML text. */
function formatValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (typeof value === "string") return escapeXml(value);
  return escapeXml(toJson(value, 0));
}

/** JSON that does not throw on bigint values. */
function toJson(value: unknown, indent: number): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v), indent) ?? "null";
}

interface Column {
  header: string;
  numeric: boolean;
  /** Whether a column with one value in every row may move out of the table, into a line below it. */
  foldable: boolean;
  cell: (row: SummaryRow) => string;
}

/** The quality column is headed by its metric's name when every row reports the same one. */
function qualityHeader(summary: SummaryRow[]): string {
  const names = new Set(summary.flatMap((row) => (row.quality ? [row.quality.name] : [])));
  return names.size === 1 ? [...names][0]! : "quality";
}

function columns(summary: SummaryRow[]): Column[] {
  const qualityName = qualityHeader(summary);
  const extras = [...new Set(summary.flatMap((row) => Object.keys(row)))].filter((key) => !FIXED_KEYS.has(key));
  const column = (header: string, numeric: boolean, foldable: boolean, cell: Column["cell"]): Column => ({ header, numeric, foldable, cell });
  return [
    column("task", false, true, (r) => escapeXml(r.task)),
    column("method", false, false, (r) => escapeXml(r.method)),
    column("accuracy", true, false, (r) => fixed3(r.accuracy)),
    column("macro F1", true, false, (r) => fixed3(r.macro_f1)),
    column("samples", true, true, (r) => String(r.n_samples)),
    column("mean KL", true, false, (r) => formatValue(r.mean_kl)),
    column(qualityName, true, false, (r) =>
      r.quality === null ? "—" : `${r.quality.name === qualityName ? "" : `${escapeXml(r.quality.name)}: `}${formatNumber(r.quality.value)}`,
    ),
    column("time", true, false, (r) => formatSeconds(r.seconds)),
    column("seed", true, true, (r) => String(r.seed)),
    ...extras.map((key) => column(key.replace(/_/g, " "), summary.some((r) => typeof r[key] === "number"), true, (r) => formatValue(r[key]))),
  ];
}

/** The best accuracy of each task: those cells are bolded. */
function bestAccuracies(summary: SummaryRow[]): Map<string, number> {
  const best = new Map<string, number>();
  for (const row of summary) {
    if (Number.isFinite(row.accuracy) && row.accuracy > (best.get(row.task) ?? -Infinity)) best.set(row.task, row.accuracy);
  }
  return best;
}

/**
 * The results table. Columns with one value in every row (task, samples, seeds, ...) are said
 * once under it, which keeps the table narrow enough to read without scrolling.
 */
function summaryTable(summary: SummaryRow[]): string {
  const uniform = (c: Column) => summary.length > 1 && c.foldable && summary.every((row) => c.cell(row) === c.cell(summary[0]!));
  const [shown, folded] = [columns(summary).filter((c) => !uniform(c)), columns(summary).filter(uniform)];
  const best = bestAccuracies(summary);
  const className = (c: Column) => (c.numeric ? ` class="num"` : "");
  const head = shown.map((c) => `<th${className(c)}>${escapeXml(c.header)}</th>`).join("");
  const body = summary.map((row) => {
    const cells = shown.map((c) => {
      const content = c.cell(row);
      const bold = c.header === "accuracy" && row.accuracy === best.get(row.task);
      return `<td${className(c)}>${bold ? `<strong>${content}</strong>` : content}</td>`;
    });
    return `<tr>${cells.join("")}</tr>`;
  });
  const same = folded.map((c) => `${escapeXml(c.header)}: <b>${c.cell(summary[0]!)}</b>`).join(" · ");
  const table = `<div class="table"><table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body.join("\n")}\n</tbody>\n</table></div>`;
  return folded.length ? `${table}\n<p class="same">In every row: ${same}</p>` : table;
}

/** Accuracy per method, one bar per task within each method. */
function accuracyChart(summary: SummaryRow[]): string {
  const methods = [...new Set(summary.map((r) => r.method))];
  const tasks = [...new Set(summary.map((r) => r.task))];
  const series = tasks.map((task) => ({
    name: task,
    values: methods.map((method) => summary.find((r) => r.task === task && r.method === method)?.accuracy ?? NaN),
  }));
  const width = Math.min(1000, Math.max(560, 160 + methods.length * tasks.length * 64));
  return barChart({ title: "Accuracy per method (the oracle agrees with the asked-for label)", yLabel: "accuracy", categories: methods, series, width, height: 340 });
}

function figure(content: string, caption?: string): string {
  return `<figure>${content}${caption === undefined ? "" : `<figcaption>${escapeXml(caption)}</figcaption>`}</figure>`;
}

/** A URL for a file relative to the report; anything else would reach outside the page's folder. */
function relativeUrl(file: string): string {
  if (/^[a-z][a-z0-9+.-]*:/i.test(file) || file.startsWith("/") || file.startsWith("\\")) {
    throw new RangeError(`renderReport: grid file "${file}" must be a path relative to the report's folder`);
  }
  return file.split("/").map(encodeURIComponent).join("/");
}

function section(title: string, body: string): string {
  return `<section>\n<h2>${escapeXml(title)}</h2>\n${body}\n</section>`;
}

function readableDate(createdAt: string): string {
  const date = new Date(createdAt);
  return Number.isNaN(date.getTime()) ? createdAt : `${date.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

/** The whole page as one HTML string. */
export function renderReport(data: ReportData): string {
  const sections = [
    section("Results", data.summary.length ? `${summaryTable(data.summary)}\n<div class="charts" style="margin-top:16px">${figure(accuracyChart(data.summary))}</div>` : "<p>No results.</p>"),
    data.curves.length ? section("Training curves", `<div class="charts">${data.curves.map((c) => figure(lineChart({ ...c, width: 560, height: 340 }))).join("\n")}</div>`) : "",
    data.bars?.length ? section("Per class", `<div class="charts">${data.bars.map((b) => figure(barChart({ ...b, width: 560, height: 340 }))).join("\n")}</div>`) : "",
    data.confusions.length ? section("Confusion matrices", `<div class="charts">${data.confusions.map((c) => figure(confusionHeatmap(c))).join("\n")}</div>`) : "",
    data.grids.length
      ? section("Samples", `<div class="grids">${data.grids.map((g) => figure(`<img src="${escapeXml(relativeUrl(g.file))}" alt="${escapeXml(g.title)}">`, g.title)).join("\n")}</div>`)
      : "",
    data.notes.length ? section("Notes", `<div class="notes">${data.notes.map((n) => `<p>${escapeXml(n)}</p>`).join("\n")}</div>`) : "",
    section("Configuration", `<details><summary>The run's configuration (JSON)</summary>\n<pre>${escapeXml(toJson(data.config, 2))}</pre></details>`),
  ];
  return [
    "<!doctype html>",
    `<html lang="en">`,
    `<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>${escapeXml(data.title)}</title>\n<style>${STYLE}</style>\n</head>`,
    "<body>\n<main>",
    `<header>\n<h1>${escapeXml(data.title)}</h1>\n<p class="meta">Run <code>${escapeXml(data.runId)}</code> · ${escapeXml(readableDate(data.createdAt))}</p>\n</header>`,
    ...sections.filter(Boolean),
    "</main>\n</body>\n</html>\n",
  ].join("\n");
}

/**
 * Writes `report.html` in `dir` atomically: a reader (or a crash) never sees half a page, because
 * the page is written to a temporary file beside it and renamed over it.
 */
export async function writeReport(dir: string, data: ReportData): Promise<string> {
  const html = renderReport(data);
  await mkdir(dir, { recursive: true });
  const target = join(dir, "report.html");
  const temporary = join(dir, `.report.html.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await writeFile(temporary, html, "utf8");
    await rename(temporary, target);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return target;
}
