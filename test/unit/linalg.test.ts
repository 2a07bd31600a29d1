import assert from "node:assert/strict";
import { test } from "node:test";
import { columnMeans, covariance, type Matrix, matMul, psdSqrt, symmetricEigen, trace, traceSqrt } from "../../src/eval/linalg.js";

function assertClose(actual: number, expected: number, tolerance = 1e-9, what = ""): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what} ${actual} != ${expected} (±${tolerance})`);
}

function assertMatrixClose(actual: Matrix, expected: Matrix, tolerance = 1e-9): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, i) => row.forEach((x, j) => assertClose(x, expected[i]![j]!, tolerance, `[${i}][${j}]`)));
}

const transpose = (a: Matrix): Matrix => a[0]!.map((_, j) => a.map((row) => row[j]!));

/** A random symmetric matrix from a fixed seed: B + Bᵀ. */
function randomSymmetric(n: number, seed: number): Matrix {
  let state = seed;
  const next = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  const b = Array.from({ length: n }, () => Array.from({ length: n }, next));
  return b.map((row, i) => row.map((x, j) => x + b[j]![i]!));
}

test("the eigenvalues of a 2x2 matrix, by hand", () => {
  // [[2, 1], [1, 2]]: 1 with (1, -1)/√2 and 3 with (1, 1)/√2
  const { values, vectors } = symmetricEigen([[2, 1], [1, 2]]);
  assertClose(values[0]!, 1);
  assertClose(values[1]!, 3);
  assertClose(Math.abs(vectors[0]![1]!), Math.SQRT1_2);
  assertClose(vectors[0]![1]! * vectors[1]![1]!, 0.5, 1e-9, "the eigenvector of 3 is along (1, 1)");
  assertClose(vectors[0]![0]! * vectors[1]![0]!, -0.5, 1e-9, "the eigenvector of 1 is along (1, -1)");
});

test("a diagonal matrix is its own decomposition, sorted ascending", () => {
  const { values } = symmetricEigen([[5, 0, 0], [0, -1, 0], [0, 0, 2]]);
  assert.deepEqual(values, [-1, 2, 5]);
  assert.deepEqual(symmetricEigen([[0, 0], [0, 0]]).values, [0, 0]);
});

test("V Λ Vᵀ rebuilds a random symmetric matrix, with orthonormal V", () => {
  const a = randomSymmetric(7, 3);
  const { values, vectors } = symmetricEigen(a);
  const lambda = values.map((v, i) => values.map((_, j) => (i === j ? v : 0)));
  assertMatrixClose(matMul(matMul(vectors, lambda), transpose(vectors)), a, 1e-12);
  assertMatrixClose(matMul(transpose(vectors), vectors), lambda.map((row, i) => row.map((_, j) => (i === j ? 1 : 0))), 1e-12);
  assertClose(values.reduce((s, v) => s + v, 0), trace(a), 1e-12, "the trace is the sum of the eigenvalues");
  for (let i = 1; i < values.length; i++) assert.ok(values[i - 1]! <= values[i]!);
});

test("the PSD square root squares back, and tiny negative eigenvalues count as 0", () => {
  const b = randomSymmetric(5, 11);
  const a = matMul(b, transpose(b)); // positive semi-definite
  const root = psdSqrt(a);
  assertMatrixClose(matMul(root, root), a, 1e-10);
  assertMatrixClose(root, transpose(root), 1e-12);
  // rank one, with rounding that can push the zero eigenvalue just below 0
  const u = [0.1, 0.7, 0.3];
  const rankOne = u.map((x) => u.map((y) => x * y));
  const sqrt = psdSqrt(rankOne);
  assert.ok(sqrt.flat().every(Number.isFinite));
  assertMatrixClose(matMul(sqrt, sqrt), rankOne, 1e-12);
  assertClose(traceSqrt([[4, 0], [0, 9]]), 5);
  assertClose(traceSqrt([[-1e-18, 0], [0, 1]]), 1);
});

test("column means and sample covariance match numpy.cov", () => {
  const rows = [[1, 2], [3, 6], [5, 7]];
  assert.deepEqual(columnMeans(rows), [3, 5]);
  // numpy.cov([[1, 3, 5], [2, 6, 7]]) == [[4, 5], [5, 7]]
  assertMatrixClose(covariance(rows), [[4, 5], [5, 7]]);
});

test("bad matrices are refused", () => {
  assert.throws(() => symmetricEigen([]), /the matrix is empty/);
  assert.throws(() => symmetricEigen([[1, 2]]), /row 0 has 2 entries, expected 1/);
  assert.throws(() => symmetricEigen([[1, 2], [3, 4]]), /not symmetric at \[0\]\[1\]/);
  assert.throws(() => symmetricEigen([[NaN]]), /not finite/);
  assert.throws(() => covariance([[1, 2]]), /at least 2 rows/);
  assert.throws(() => covariance([[1, 2], [3]]), /row 1 has 1 entries, expected 2/);
  assert.throws(() => matMul([[1, 2]], [[1]]), /row 0 of the left matrix has 2 entries, expected 1/);
});

test("a 100x100 matrix decomposes quickly", () => {
  const started = performance.now();
  const a = randomSymmetric(100, 5);
  const { values } = symmetricEigen(a);
  assertClose(values.reduce((s, v) => s + v, 0), trace(a), 1e-9);
  assert.ok(performance.now() - started < 5000);
});
