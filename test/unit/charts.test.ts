import assert from "node:assert/strict";
import { test } from "node:test";
import { barChart, confusionHeatmap, escapeXml, formatNumber, lineChart, niceTicks } from "../../src/eval/charts.js";

/**
 * A small XML well-formedness check: tags nest and close, attributes are quoted, and text holds
 * no raw '<' and only the five predefined entities (or numeric ones).
 */
function assertWellFormed(xml: string): void {
  const open: string[] = [];
  const token = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|([^<]+)|(<)/g;
  for (const m of xml.matchAll(token)) {
    const [, closing, name, , selfClosing, textContent, stray] = m;
    if (stray) assert.fail(`a raw '<' or a malformed tag at ${m.index}: ${xml.slice(m.index, m.index + 40)}`);
    if (textContent !== undefined) {
      const entities = textContent.match(/&[^;\s]*;?/g) ?? [];
      for (const e of entities) assert.match(e, /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);$/i, `a bad entity ${e}`);
    } else if (closing) {
      assert.equal(open.pop(), name, `</${name}> closes the wrong element`);
    } else if (!selfClosing) open.push(name!);
  }
  assert.deepEqual(open, [], "every element is closed");
}

const count = (text: string, pattern: RegExp) => (text.match(pattern) ?? []).length;

const ramp = (n: number, f: (x: number) => number): [number, number][] => Array.from({ length: n }, (_, i) => [i, f(i)]);

test("the well-formedness check catches what it should", () => {
  assertWellFormed(`<svg a="1"><g><text x="2">a &amp; b &#39;</text><rect/></g></svg>`);
  assert.throws(() => assertWellFormed("<svg><g></svg>"), /closes the wrong element/);
  assert.throws(() => assertWellFormed("<svg><g>"), /every element is closed/);
  assert.throws(() => assertWellFormed("<svg>a < b</svg>"), /raw '<'/);
  assert.throws(() => assertWellFormed("<svg>a & b</svg>"), /bad entity/);
  assert.throws(() => assertWellFormed("<svg x=1></svg>"), /raw '<'/);
});

test("escapeXml escapes markup and drops characters XML forbids", () => {
  assert.equal(escapeXml(`<a href="x">Tom & 'Jerry'</a>\u0001`), "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;");
});

test("nice ticks are round, about five, and cover the range", () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0.3, 9.7), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(-3, 7), [-4, -2, 0, 2, 4, 6, 8]);
  assert.deepEqual(niceTicks(0.1, 0.3), [0.1, 0.15, 0.2, 0.25, 0.3]);
  assert.deepEqual(niceTicks(5, 5), [2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(niceTicks(0, 0), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(NaN, 1), [0, 1]);
});

test("numbers print without float noise", () => {
  assert.equal(formatNumber(0.1 + 0.2), "0.3");
  assert.equal(formatNumber(1234567), "1.235e6");
  assert.equal(formatNumber(0.00001234), "1.234e-5");
  assert.equal(formatNumber(-42), "-42");
  assert.equal(formatNumber(NaN), "n/a");
  assert.equal(formatNumber(Infinity), "∞");
});

test("a line chart is well-formed SVG with its title, labels and series names, escaped", () => {
  const svg = lineChart({
    title: "Loss <& reward>",
    xLabel: "step",
    yLabel: "log p(y | x0)",
    series: [
      { name: "train <loss>", points: ramp(20, (x) => 1 / (x + 1)) },
      { name: "held-out & co", points: ramp(20, (x) => x / 20) },
    ],
  });
  assertWellFormed(svg);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="640" height="360"/);
  for (const text of ["Loss &lt;&amp; reward&gt;", ">step<", "log p(y | x0)", "train &lt;loss&gt;", "held-out &amp; co"]) assert.ok(svg.includes(text), text);
  assert.equal(count(svg, /<polyline/g), 2);
  const colours = [...svg.matchAll(/<polyline[^>]* stroke="([^"]+)"/g)].map((m) => m[1]);
  assert.notEqual(colours[0], colours[1]);
});

test("missing values break a line instead of bridging it, and nothing prints NaN", () => {
  const points = ramp(10, (x) => (x === 4 ? NaN : x));
  const svg = lineChart({ title: "gap", xLabel: "x", yLabel: "y", series: [{ name: "s", points }] });
  assertWellFormed(svg);
  assert.equal(count(svg, /<polyline/g), 2);
  assert.ok(!svg.includes("NaN"));
  // log scale: values <= 0 are left out the same way, ticks are powers of ten
  const log = lineChart({ title: "log", xLabel: "x", yLabel: "y", logY: true, series: [{ name: "s", points: ramp(10, (x) => (x === 5 ? 0 : 10 ** x)) }] });
  assertWellFormed(log);
  assert.equal(count(log, /<polyline/g), 2);
  assert.ok(log.includes(">1e10<") && log.includes(">1<") && !log.includes("NaN"), "ticks stride over decades up to the top");
});

test("empty series still give axes, a legend and a 'no data' note", () => {
  const svg = lineChart({ title: "nothing yet", xLabel: "x", yLabel: "y", series: [{ name: "empty", points: [] }, { name: "all missing", points: [[NaN, NaN]] }] });
  assertWellFormed(svg);
  assert.ok(svg.includes("no data") && svg.includes("empty") && svg.includes("all missing"));
  assert.ok(!svg.includes("NaN<") && !/="[^"]*NaN/.test(svg) && !svg.includes("Infinity"));
  assertWellFormed(lineChart({ title: "no series", xLabel: "x", yLabel: "y", series: [] }));
});

test("many series keep distinct styles", () => {
  const series = Array.from({ length: 14 }, (_, k) => ({ name: `s${k}`, points: ramp(3, (x) => x + k) }));
  const svg = lineChart({ title: "many", xLabel: "x", yLabel: "y", series });
  const styles = [...svg.matchAll(/<polyline[^>]* stroke="([^"]+)" stroke-width="2"(?: stroke-dasharray="([^"]+)")?/g)].map((m) => `${m[1]} ${m[2] ?? ""}`);
  assert.equal(styles.length, 14);
  assert.equal(new Set(styles).size, 14);
});

test("a bar chart draws one bar per value, n/a for a missing one, negatives below zero", () => {
  const svg = barChart({
    title: "Accuracy per method",
    yLabel: "accuracy",
    categories: ["pre-trained", "ctrl <ours>", "best-of-n"],
    series: [
      { name: "compressibility", values: [0.25, 0.8, NaN] },
      { name: "brightness", values: [0.5, 0.9, -0.1] },
    ],
  });
  assertWellFormed(svg);
  assert.equal(count(svg, /<rect x=/g), 5);
  assert.ok(svg.includes(">n/a<") && svg.includes("ctrl &lt;ours&gt;") && svg.includes(">compressibility<") && svg.includes(">-0.1<"));
  assert.ok(!svg.includes("NaN"));
  assert.throws(() => barChart({ title: "t", yLabel: "y", categories: ["a", "b"], series: [{ name: "s", values: [1] }] }), /series "s" has 1 values for 2 categories/);
});

test("a confusion heatmap prints counts and shades each cell by its share of the row", () => {
  const svg = confusionHeatmap({ title: "ctrl <oracle>", labels: ["0", "1", "2"], matrix: [[1, 1, 0], [5, 5, 0], [0, 0, 0]] });
  assertWellFormed(svg);
  const fills = [...svg.matchAll(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="([^"]+)"/g)].map((m) => m[1]);
  assert.equal(fills.length, 9);
  assert.equal(fills[0], fills[3], "1 of 2 and 5 of 10 are the same share of their rows");
  assert.equal(fills[2], "rgb(255,255,255)", "an empty cell is white");
  assert.equal(fills[6], "rgb(255,255,255)", "a row with no samples is white");
  assert.ok(svg.includes("ctrl &lt;oracle&gt;") && svg.includes(">5<") && svg.includes("conditioning label") && svg.includes("oracle label"));
  const full = confusionHeatmap({ title: "t", labels: ["a", "b"], matrix: [[3, 0], [0, 4]] });
  assert.ok(full.includes('fill="rgb(33,82,140)"'), "a whole row in one cell is the darkest shade");
  assertWellFormed(confusionHeatmap({ title: "long labels", labels: ["a long class name", "another long one"], matrix: [[1, 2], [3, 4]] }));
});

test("bad heatmaps are refused", () => {
  assert.throws(() => confusionHeatmap({ title: "t", labels: [], matrix: [] }), /no labels/);
  assert.throws(() => confusionHeatmap({ title: "t", labels: ["a", "b"], matrix: [[1, 2]] }), /1 rows for 2 labels/);
  assert.throws(() => confusionHeatmap({ title: "t", labels: ["a"], matrix: [[-1]] }), /negative or not finite/);
});

test("a log x axis spaces dataset sizes by their ratios and leaves out non-positive ones", () => {
  const svg = lineChart({ title: "sizes", xLabel: "n", yLabel: "acc", logX: true, series: [{ name: "s", points: [[0, 0.1], [100, 0.2], [1000, 0.3], [10000, 0.4]] }] });
  const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(xs.length, 3);
  assert.ok(Math.abs(xs[1]! - xs[0]! - (xs[2]! - xs[1]!)) < 0.01, `equal gaps per decade: ${xs}`);
  assert.match(svg, />1000</);
});
