/**
 * Dependency-free SVG charts as strings, for self-contained HTML reports: line charts (training
 * curves), grouped bar charts (a value per method) and confusion heatmaps.
 */

/** Tableau 10: distinct, and tolerable for colour-blind readers. */
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
/** Past ten series the colours repeat with a dash pattern, so that lines stay distinct. */
const DASHES = ["", "6 3", "2 2", "8 3 2 3"];
const FONT = 12;
const TITLE_FONT = 14;
const LINE_HEIGHT = 16;

/** Rough width of text in the sans-serif font, for layout without measuring (wide side). */
function textWidth(content: string, size = FONT, bold = false): number {
  return content.length * size * (bold ? 0.64 : 0.56);
}

export interface SeriesStyle {
  colour: string;
  dash: string;
}

export function seriesStyle(index: number): SeriesStyle {
  return { colour: PALETTE[index % PALETTE.length]!, dash: DASHES[Math.floor(index / PALETTE.length) % DASHES.length]! };
}

// Control characters other than tab and newlines are not allowed in XML 1.0 at all.
// eslint-disable-next-line no-control-regex
const INVALID_XML = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g;

/** Text made safe for XML/HTML content and quoted attributes. */
export function escapeXml(text: string): string {
  return text
    .replace(INVALID_XML, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&#39;");
}

/** A number in at most `digits` significant digits, without float noise like 0.30000000000000004. */
export function formatNumber(value: number, digits = 4): string {
  if (Number.isNaN(value)) return "n/a";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : "-∞";
  if (value === 0) return "0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6 || magnitude < 1e-4) return value.toExponential(digits - 1).replace(/\.?0+e/, "e").replace("e+", "e");
  return String(Number(value.toPrecision(digits)));
}

/** Heckbert's nice numbers: 1, 2, 5 or 10 times a power of ten. */
function niceNumber(x: number, round: boolean): number {
  const power = 10 ** Math.floor(Math.log10(x));
  const fraction = x / power;
  const nice = round
    ? fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
    : fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10;
  return nice * power;
}

/** About `count` round tick values covering [min, max]; the first and last bound the axis. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) [min, max] = min === 0 ? [0, 1] : [min - Math.abs(min) / 2, max + Math.abs(max) / 2];
  const step = niceNumber(niceNumber(max - min, false) / (count - 1), true);
  const first = Math.floor(min / step);
  const last = Math.ceil(max / step);
  // Multiples of the step, rounded to its decimals: 0.1 * 3 must print as 0.3.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  return Array.from({ length: last - first + 1 }, (_, i) => Number(((first + i) * step).toFixed(decimals)));
}

/** Powers of ten covering [min, max] (both > 0), with 2 and 5 between them over few decades. */
function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const top = Math.max(lo + 1, Math.ceil(Math.log10(max)));
  const stride = Math.ceil((top - lo) / 6);
  const hi = lo + stride * Math.ceil((top - lo) / stride); // the last tick at or above max
  const ticks: number[] = [];
  for (let k = lo; k <= hi; k += stride) {
    ticks.push(10 ** k);
    if (hi - lo <= 2 && k < hi) ticks.push(2 * 10 ** k, 5 * 10 ** k);
  }
  return ticks.map((t) => Number(t.toPrecision(12)));
}

/** Splits a title into lines of at most about `width` pixels, at spaces. */
function wrapTitle(text: string, width: number): string[] {
  const limit = Math.max(8, Math.floor(width / textWidth("x", TITLE_FONT, true)));
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > limit) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  return [...lines, line];
}

const px = (value: number): number => Number(value.toFixed(2));

interface TextOptions {
  anchor?: "start" | "middle" | "end";
  size?: number;
  weight?: "bold" | "normal";
  fill?: string;
  rotate?: number;
  baseline?: "middle" | "auto";
}

function text(x: number, y: number, content: string, options: TextOptions = {}): string {
  const { anchor = "start", size = FONT, weight = "normal", fill = "#222", rotate, baseline = "auto" } = options;
  const transform = rotate ? ` transform="rotate(${rotate} ${px(x)} ${px(y)})"` : "";
  const middle = baseline === "middle" ? ` dominant-baseline="middle"` : "";
  const bold = weight === "bold" ? ` font-weight="bold"` : "";
  return `<text x="${px(x)}" y="${px(y)}" text-anchor="${anchor}" font-size="${size}" fill="${fill}"${bold}${middle}${transform}>${escapeXml(content)}</text>`;
}

/** The <svg> element around a chart, with its title wrapped on top. */
function frame(width: number, height: number, titleLines: string[], body: string[]): string {
  const title = titleLines.map((line, i) => text(width / 2, 18 + i * LINE_HEIGHT, line, { anchor: "middle", size: TITLE_FONT, weight: "bold" }));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${px(height)}" viewBox="0 0 ${px(width)} ${px(height)}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" role="img">`,
    `<title>${escapeXml(titleLines.join(" "))}</title>`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    ...title,
    ...body,
    `</svg>`,
  ].join("\n");
}

/** Where the data goes inside the chart, in pixels. */
interface Plot {
  left: number;
  top: number;
  width: number;
  height: number;
}

interface Axis {
  ticks: number[];
  /** Data value to pixel. */
  at: (value: number) => number;
  label: (tick: number) => string;
}

function linearAxis(ticks: number[], from: number, to: number): Axis {
  const [lo, hi] = [ticks[0]!, ticks[ticks.length - 1]!];
  return { ticks, at: (value) => from + ((value - lo) / (hi - lo)) * (to - from), label: (tick) => formatNumber(tick) };
}

/** Decades past 1000 (or under 0.001) are labelled 1e4, 1e5, ... alike, not 10000 beside 1e6. */
function logLabel(tick: number): string {
  return tick >= 1e4 || tick < 1e-3 ? tick.toExponential(0).replace("e+", "e") : formatNumber(tick);
}

function logAxis(ticks: number[], from: number, to: number): Axis {
  const [lo, hi] = [Math.log10(ticks[0]!), Math.log10(ticks[ticks.length - 1]!)];
  return { ticks, at: (value) => from + ((Math.log10(value) - lo) / (hi - lo)) * (to - from), label: logLabel };
}

/** Horizontal grid lines with tick labels on the left, the axis label rotated beside them. */
function yAxisMarks(plot: Plot, axis: Axis, label: string): string[] {
  const right = plot.left + plot.width;
  const marks = axis.ticks.flatMap((tick) => {
    const y = px(axis.at(tick));
    return [`<line x1="${plot.left}" x2="${px(right)}" y1="${y}" y2="${y}" stroke="#e4e4e4"/>`, text(plot.left - 6, y, axis.label(tick), { anchor: "end", baseline: "middle", size: 11 })];
  });
  const middle = plot.top + plot.height / 2;
  return [...marks, text(16, middle, label, { anchor: "middle", rotate: -90, baseline: "middle" })];
}

function axisLines(plot: Plot): string {
  const [bottom, right] = [px(plot.top + plot.height), px(plot.left + plot.width)];
  return `<path d="M${plot.left} ${plot.top} V${bottom} H${right}" fill="none" stroke="#555"/>`;
}

interface LegendLayout {
  marks: string[];
  height: number;
}

/** Legend entries laid out in rows under the plot, each a colour swatch and a name. */
function legend(names: string[], left: number, top: number, width: number): LegendLayout {
  const marks: string[] = [];
  let [x, y] = [left, top];
  names.forEach((name, i) => {
    const itemWidth = 28 + textWidth(name, 11) + 16;
    if (x > left && x + itemWidth > left + width) [x, y] = [left, y + LINE_HEIGHT + 2];
    const { colour, dash } = seriesStyle(i);
    const dashed = dash ? ` stroke-dasharray="${dash}"` : "";
    marks.push(`<line x1="${px(x)}" x2="${px(x + 22)}" y1="${px(y)}" y2="${px(y)}" stroke="${colour}" stroke-width="3"${dashed}/>`);
    marks.push(text(x + 28, y, name, { baseline: "middle", size: 11 }));
    x += itemWidth;
  });
  return { marks, height: names.length === 0 ? 0 : y - top + LINE_HEIGHT };
}

export interface LineSeries {
  name: string;
  points: [number, number][];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  width?: number;
  height?: number;
  /** Log-scaled y axis; values <= 0 are left out. */
  logY?: boolean;
  /** Log-scaled x axis (e.g. dataset sizes); values <= 0 are left out. */
  logX?: boolean;
}

/** Runs of consecutive drawable points: a missing value breaks the line instead of bridging it. */
function segments(points: [number, number][], drawable: (p: [number, number]) => boolean): [number, number][][] {
  const runs: [number, number][][] = [[]];
  for (const point of points) {
    if (drawable(point)) runs[runs.length - 1]!.push(point);
    else if (runs[runs.length - 1]!.length > 0) runs.push([]);
  }
  return runs.filter((run) => run.length > 0);
}

function extent(values: number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

/** One polyline per unbroken run, dots where a run is short or the series is sparse. */
function seriesMarks(runs: [number, number][][], x: Axis, y: Axis, style: SeriesStyle): string[] {
  const dashed = style.dash ? ` stroke-dasharray="${style.dash}"` : "";
  const sparse = runs.reduce((n, run) => n + run.length, 0) <= 40;
  return runs.flatMap((run) => {
    const at = run.map(([a, b]) => [px(x.at(a)), px(y.at(b))] as const);
    const line = run.length > 1 ? [`<polyline points="${at.map(([cx, cy]) => `${cx},${cy}`).join(" ")}" fill="none" stroke="${style.colour}" stroke-width="2"${dashed}/>`] : [];
    const dots = sparse || run.length === 1 ? at.map(([cx, cy]) => `<circle cx="${cx}" cy="${cy}" r="2.5" fill="${style.colour}"/>`) : [];
    return [...line, ...dots];
  });
}

export function lineChart(options: LineChartOptions): string {
  const { title, xLabel, yLabel, series, width = 640, height = 360, logY = false, logX = false } = options;
  const drawable = ([a, b]: [number, number]) => Number.isFinite(a) && Number.isFinite(b) && (!logY || b > 0) && (!logX || a > 0);
  const runs = series.map((s) => segments(s.points, drawable));
  const points = runs.flat(2);
  const titleLines = wrapTitle(title, width - 24);
  const legendWidth = width - 80;
  const { height: legendHeight } = legend(series.map((s) => s.name), 0, 0, legendWidth);
  const plot: Plot = { left: 68, top: 16 + titleLines.length * LINE_HEIGHT, width: width - 68 - 20, height: 0 };
  plot.height = height - plot.top - 48 - legendHeight;
  const [xMin, xMax] = points.length ? extent(points.map((p) => p[0])) : [0, 1];
  const [yMin, yMax] = points.length ? extent(points.map((p) => p[1])) : [0, 1];
  const x = logX && points.length ? logAxis(logTicks(xMin, xMax), plot.left, plot.left + plot.width) : linearAxis(niceTicks(xMin, xMax), plot.left, plot.left + plot.width);
  const yTicks = logY && points.length ? logTicks(yMin, yMax) : niceTicks(yMin, yMax);
  const y = (logY && points.length ? logAxis : linearAxis)(yTicks, plot.top + plot.height, plot.top);
  const bottom = plot.top + plot.height;
  const xMarks = x.ticks.flatMap((tick) => {
    const at = px(x.at(tick));
    return [`<line x1="${at}" x2="${at}" y1="${px(bottom)}" y2="${px(bottom + 4)}" stroke="#555"/>`, text(at, bottom + 17, x.label(tick), { anchor: "middle", size: 11 })];
  });
  const empty = points.length === 0 ? [text(plot.left + plot.width / 2, plot.top + plot.height / 2, "no data", { anchor: "middle", fill: "#888" })] : [];
  return frame(width, height, titleLines, [
    ...yAxisMarks(plot, y, yLabel),
    ...xMarks,
    axisLines(plot),
    text(plot.left + plot.width / 2, bottom + 34, xLabel, { anchor: "middle" }),
    ...runs.flatMap((r, i) => seriesMarks(r, x, y, seriesStyle(i))),
    ...empty,
    ...legend(series.map((s) => s.name), plot.left, bottom + 50, legendWidth).marks,
  ]);
}

export interface BarSeries {
  name: string;
  /** One value per category; NaN for a missing one. */
  values: number[];
}

export interface BarChartOptions {
  title: string;
  yLabel: string;
  /** The groups along the x axis, e.g. methods. */
  categories: string[];
  /** Bars inside each group, e.g. tasks; one series gives a plain bar chart. */
  series: BarSeries[];
  width?: number;
  height?: number;
}

/** Grouped bars with their values printed on top; a legend when there is more than one series. */
export function barChart(options: BarChartOptions): string {
  const { title, yLabel, categories, series, width = 640, height = 360 } = options;
  series.forEach((s) => {
    if (s.values.length !== categories.length) {
      throw new RangeError(`barChart: series "${s.name}" has ${s.values.length} values for ${categories.length} categories`);
    }
  });
  const titleLines = wrapTitle(title, width - 24);
  const names = series.length > 1 ? series.map((s) => s.name) : [];
  const legendWidth = width - 80;
  const { height: legendHeight } = legend(names, 0, 0, legendWidth);
  const plot: Plot = { left: 68, top: 20 + titleLines.length * LINE_HEIGHT, width: width - 68 - 20, height: 0 };
  const group = plot.width / Math.max(1, categories.length);
  const longest = Math.max(0, ...categories.map((c) => textWidth(c, 11)));
  const slanted = longest > group - 8;
  // Labels slanted by 35 degrees take sin(35°) of their length in height.
  const labelSpace = slanted ? Math.min(140, longest * 0.58 + 8) : 22;
  const legendSpace = names.length ? 12 + legendHeight : 0;
  plot.height = height - plot.top - labelSpace - legendSpace - 8;
  const values = series.flatMap((s) => s.values).filter(Number.isFinite);
  const y = linearAxis(niceTicks(Math.min(0, ...values), Math.max(0, ...values)), plot.top + plot.height, plot.top);
  const barWidth = (group * 0.8) / Math.max(1, series.length);
  const zero = y.at(0);
  const bars = categories.flatMap((_, c) =>
    series.flatMap((s, k) => {
      const value = s.values[c]!;
      const left = plot.left + c * group + group * 0.1 + k * barWidth;
      const centre = left + barWidth / 2;
      if (!Number.isFinite(value)) return [text(centre, zero - 4, "n/a", { anchor: "middle", size: 10, fill: "#888" })];
      const top = Math.min(zero, y.at(value));
      const label = barWidth >= 22 ? [text(centre, value >= 0 ? top - 4 : top + Math.abs(y.at(value) - zero) + 12, formatNumber(value, 3), { anchor: "middle", size: 10 })] : [];
      return [`<rect x="${px(left + 1)}" y="${px(top)}" width="${px(Math.max(1, barWidth - 2))}" height="${px(Math.abs(y.at(value) - zero))}" fill="${seriesStyle(k).colour}"><title>${escapeXml(`${s.name}, ${categories[c]}: ${formatNumber(value)}`)}</title></rect>`, ...label];
    }),
  );
  const bottom = plot.top + plot.height;
  const categoryLabels = categories.map((category, c) => {
    const centre = plot.left + (c + 0.5) * group;
    return slanted ? text(centre + 4, bottom + 14, category, { anchor: "end", rotate: -35, size: 11 }) : text(centre, bottom + 16, category, { anchor: "middle", size: 11 });
  });
  return frame(width, height, titleLines, [
    ...yAxisMarks(plot, y, yLabel),
    ...bars,
    axisLines(plot),
    ...categoryLabels,
    ...legend(names, plot.left, bottom + labelSpace + 20, legendWidth).marks,
  ]);
}

export interface HeatmapOptions {
  title: string;
  /** Class names, for rows and columns alike. */
  labels: string[];
  /** matrix[row][column] counts. */
  matrix: number[][];
  rowTitle?: string;
  columnTitle?: string;
}

function checkMatrix(labels: string[], matrix: number[][]): void {
  const n = labels.length;
  if (n === 0) throw new RangeError("confusionHeatmap: no labels");
  if (matrix.length !== n) throw new RangeError(`confusionHeatmap: ${matrix.length} rows for ${n} labels`);
  matrix.forEach((row, i) => {
    if (row.length !== n) throw new RangeError(`confusionHeatmap: row ${i} has ${row.length} cells for ${n} labels`);
    if (!row.every((v) => Number.isFinite(v) && v >= 0)) throw new RangeError(`confusionHeatmap: row ${i} holds a count that is negative or not finite`);
  });
}

/** White to deep blue by the share of the row. */
function shade(share: number): string {
  const mix = (from: number, to: number) => Math.round(from + (to - from) * share);
  return `rgb(${mix(255, 33)},${mix(255, 82)},${mix(255, 140)})`;
}

/** Counts in a grid, each cell shaded by its share of its row (rows are the asked-for labels). */
export function confusionHeatmap(options: HeatmapOptions): string {
  const { title, labels, matrix, rowTitle = "conditioning label", columnTitle = "oracle label" } = options;
  checkMatrix(labels, matrix);
  const n = labels.length;
  const cell = Math.max(34, Math.min(64, 300 / n));
  const widest = Math.min(120, Math.max(...labels.map((l) => textWidth(l, 11))));
  // Column labels wider than a cell are slanted by 45 degrees: room above the grid and right of it.
  const slanted = widest > cell - 6;
  const columnLabelSpace = slanted ? widest * 0.72 + 12 : 16;
  const right = slanted ? Math.max(16, widest * 0.72 - cell / 2) : 16;
  const width = Math.max(240, 36 + widest + 10 + n * cell + right);
  const titleLines = wrapTitle(title, width - 24);
  const left = width - right - n * cell;
  const top = 22 + titleLines.length * LINE_HEIGHT + 20 + columnLabelSpace;
  const cells = matrix.flatMap((row, i) => {
    const sum = row.reduce((a, b) => a + b, 0);
    return row.flatMap((count, j) => {
      const share = sum === 0 ? 0 : count / sum;
      const [x, y] = [left + j * cell, top + i * cell];
      return [
        `<rect x="${px(x)}" y="${px(y)}" width="${px(cell)}" height="${px(cell)}" fill="${shade(share)}" stroke="#dfe3e8"><title>${escapeXml(`${labels[i]} → ${labels[j]}: ${count} (${(share * 100).toFixed(1)}% of the row)`)}</title></rect>`,
        text(x + cell / 2, y + cell / 2, formatNumber(count), { anchor: "middle", baseline: "middle", fill: share > 0.55 ? "#fff" : "#222", weight: i === j ? "bold" : "normal" }),
      ];
    });
  });
  const columnLabels = labels.map((l, j) =>
    text(left + (j + 0.5) * cell, top - 8, l, slanted ? { anchor: "start", size: 11, rotate: -45 } : { anchor: "middle", size: 11 }),
  );
  const rowLabels = labels.map((l, i) => text(left - 8, top + (i + 0.5) * cell, l, { anchor: "end", baseline: "middle", size: 11 }));
  const bottom = top + n * cell;
  return frame(width, bottom + 16, titleLines, [
    text(left + (n * cell) / 2, top - columnLabelSpace - 12, columnTitle, { anchor: "middle" }),
    text(16, top + (n * cell) / 2, rowTitle, { anchor: "middle", rotate: -90, baseline: "middle" }),
    ...columnLabels,
    ...rowLabels,
    ...cells,
  ]);
}
