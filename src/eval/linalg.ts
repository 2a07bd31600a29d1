/**
 * The little dense linear algebra that evaluation needs (covariances, the Fréchet distance):
 * symmetric eigendecomposition by cyclic Jacobi rotations, which is simple, accurate and fast
 * enough for feature sizes up to a few hundred.
 */

/** Rows of numbers; a matrix is square where a function says so. */
export type Matrix = number[][];

export interface Eigen {
  /** Eigenvalues, ascending. */
  values: number[];
  /** Unit eigenvectors as columns: `vectors[i][k]` is component i of the vector of `values[k]`. */
  vectors: Matrix;
}

export interface EigenOptions {
  /** Jacobi sweeps before giving up. Default 100 (convergence is quadratic: ~10 is typical). */
  maxSweeps?: number;
}

function checkSquare(name: string, a: Matrix): number {
  const n = a.length;
  if (n === 0) throw new RangeError(`${name}: the matrix is empty`);
  a.forEach((row, i) => {
    if (row.length !== n) throw new RangeError(`${name}: row ${i} has ${row.length} entries, expected ${n} (a square matrix)`);
    row.forEach((v, j) => {
      if (!Number.isFinite(v)) throw new RangeError(`${name}: entry [${i}][${j}] is not finite (${v})`);
    });
  });
  return n;
}

/** The matrix as a flat row-major copy, made exactly symmetric; refuses visibly asymmetric input. */
function symmetricCopy(a: Matrix, n: number): Float64Array {
  const scale = Math.max(1e-300, ...a.map((row) => Math.max(...row.map(Math.abs))));
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const [x, y] = [a[i]![j]!, a[j]![i]!];
      if (Math.abs(x - y) > 1e-9 * scale) throw new RangeError(`symmetricEigen: the matrix is not symmetric at [${i}][${j}]`);
      m[i * n + j] = (x + y) / 2; // rounding noise from products like S C S is averaged away
    }
  }
  return m;
}

function offDiagonalSquares(m: Float64Array, n: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) sum += m[i * n + j]! ** 2;
  return 2 * sum;
}

/** Applies the rotation in the (p, q) plane that zeroes m[p][q] to m (both sides) and v (right). */
function rotate(m: Float64Array, v: Float64Array, n: number, p: number, q: number): void {
  const apq = m[p * n + q]!;
  const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
  // The smaller root of t^2 + 2 theta t - 1 = 0, for stability; 1/(2 theta) where theta^2 overflows.
  const t = Math.abs(theta) > 1e150 ? 1 / (2 * theta) : (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
  const c = 1 / Math.sqrt(t * t + 1);
  const s = t * c;
  for (let k = 0; k < n; k++) {
    const [kp, kq] = [m[k * n + p]!, m[k * n + q]!];
    m[k * n + p] = c * kp - s * kq;
    m[k * n + q] = s * kp + c * kq;
  }
  for (let k = 0; k < n; k++) {
    const [pk, qk] = [m[p * n + k]!, m[q * n + k]!];
    m[p * n + k] = c * pk - s * qk;
    m[q * n + k] = s * pk + c * qk;
    const [vp, vq] = [v[k * n + p]!, v[k * n + q]!];
    v[k * n + p] = c * vp - s * vq;
    v[k * n + q] = s * vp + c * vq;
  }
  m[p * n + q] = 0;
  m[q * n + p] = 0;
}

/** Eigenvalues (ascending) and orthonormal eigenvectors of a real symmetric matrix. */
export function symmetricEigen(a: Matrix, options: EigenOptions = {}): Eigen {
  const n = checkSquare("symmetricEigen", a);
  const maxSweeps = options.maxSweeps ?? 100;
  const m = symmetricCopy(a, n);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  const total = m.reduce((sum, x) => sum + x * x, 0);
  let sweep = 0;
  while (offDiagonalSquares(m, n) > Number.EPSILON ** 2 * total) {
    if (sweep++ >= maxSweeps) throw new Error(`symmetricEigen: no convergence after ${maxSweeps} sweeps`);
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) if (m[p * n + q] !== 0) rotate(m, v, n, p, q);
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => m[i * n + i]! - m[j * n + j]!);
  return {
    values: order.map((k) => m[k * n + k]!),
    vectors: Array.from({ length: n }, (_, i) => order.map((k) => v[i * n + k]!)),
  };
}

/**
 * The symmetric square root of a positive semi-definite matrix, V sqrt(Λ) Vᵀ. Eigenvalues that
 * rounding made slightly negative are taken as 0.
 */
export function psdSqrt(a: Matrix): Matrix {
  const { values, vectors } = symmetricEigen(a);
  const roots = values.map((value) => Math.sqrt(Math.max(0, value)));
  return vectors.map((rowI) => vectors.map((rowJ) => rowI.reduce((sum, x, k) => sum + x * roots[k]! * rowJ[k]!, 0)));
}

/** Sum of the square roots of the eigenvalues of a PSD matrix, negative rounding noise as 0. */
export function traceSqrt(a: Matrix): number {
  return symmetricEigen(a).values.reduce((sum, value) => sum + Math.sqrt(Math.max(0, value)), 0);
}

export function matMul(a: Matrix, b: Matrix): Matrix {
  const inner = b.length;
  a.forEach((row, i) => {
    if (row.length !== inner) throw new RangeError(`matMul: row ${i} of the left matrix has ${row.length} entries, expected ${inner}`);
  });
  const columns = b[0]?.length ?? 0;
  return a.map((row) => Array.from({ length: columns }, (_, j) => row.reduce((sum, x, k) => sum + x * b[k]![j]!, 0)));
}

export function trace(a: Matrix): number {
  checkSquare("trace", a);
  return a.reduce((sum, row, i) => sum + row[i]!, 0);
}

/** Checks that rows are non-empty, of one width and finite; returns the width. */
function checkRows(name: string, rows: Matrix, minimum: number): number {
  if (rows.length < minimum) throw new RangeError(`${name}: needs at least ${minimum} rows, got ${rows.length}`);
  const width = rows[0]!.length;
  if (width === 0) throw new RangeError(`${name}: rows have no entries`);
  rows.forEach((row, i) => {
    if (row.length !== width) throw new RangeError(`${name}: row ${i} has ${row.length} entries, expected ${width}`);
    if (!row.every(Number.isFinite)) throw new RangeError(`${name}: row ${i} holds a value that is not finite`);
  });
  return width;
}

/** The mean of each column. */
export function columnMeans(rows: Matrix): number[] {
  const width = checkRows("columnMeans", rows, 1);
  const sums = new Array<number>(width).fill(0);
  for (const row of rows) row.forEach((x, j) => (sums[j]! += x));
  return sums.map((s) => s / rows.length);
}

/** The sample covariance of the columns (divided by n - 1, as numpy.cov). */
export function covariance(rows: Matrix): Matrix {
  const width = checkRows("covariance", rows, 2);
  const mu = columnMeans(rows);
  const centred = rows.map((row) => row.map((x, j) => x - mu[j]!));
  const c = Array.from({ length: width }, () => new Array<number>(width).fill(0));
  for (const row of centred) {
    for (let i = 0; i < width; i++) for (let j = i; j < width; j++) c[i]![j]! += row[i]! * row[j]!;
  }
  for (let i = 0; i < width; i++) {
    for (let j = i; j < width; j++) c[j]![i] = c[i]![j] = c[i]![j]! / (rows.length - 1);
  }
  return c;
}
