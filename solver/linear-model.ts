import type { ExplanationLine } from './types.ts';

export type RowKind = ExplanationLine['kind'];

/**
 * A mixed-integer linear program in the form the backends consume: columns with bounds, costs and integrality,
 * rows `lower ≤ Σ a·x ≤ upper` stored row-wise (CSR). Names follow the formulation in model.ts and are valid
 * CPLEX LP identifiers.
 */
export interface LinearModel {
  readonly name: string;
  readonly colNames: string[];
  readonly colLower: number[];
  readonly colUpper: number[];
  readonly colCost: number[];
  readonly colInteger: boolean[];
  readonly rowNames: string[];
  readonly rowKinds: (RowKind | 'link')[];
  /** What a row means, in words an operator reads (empty for link rows). */
  readonly rowLabels: string[];
  readonly rowLower: number[];
  readonly rowUpper: number[];
  /** CSR: row i's terms are at rowStarts[i] .. rowStarts[i + 1]. */
  readonly rowStarts: number[];
  readonly rowIndices: number[];
  readonly rowValues: number[];
}

/**
 * Builds a LinearModel incrementally. Names are made LP-safe and unique when first read (the LP export, GLPK, the
 * explanation's few lines), not while building: on the benchmark's 24-period model, 68,000 names checked and
 * hashed cost more than the rest of the build, and most plans never read them.
 */
export class LinearModelBuilder {
  readonly model: LinearModel;
  private readonly rawCols: string[] = [];
  private readonly rawRows: string[] = [];
  /** Insertion order of names across columns (j ≥ 0) and rows (−1 − i): the order uniqueness suffixes follow. */
  private readonly order: number[] = [];
  private names: { cols: string[]; rows: string[] } | undefined;
  /** Per column, the position of its term in the row being added (valid while `slotRow` holds that row). */
  private slot = new Int32Array(1024);
  private slotRow = new Int32Array(1024).fill(-1);

  constructor(name: string) {
    const names = () => {
      this.names ??= uniqueNames(this.rawCols, this.rawRows, this.order);
      return this.names;
    };
    this.model = {
      name,
      get colNames() {
        return names().cols;
      },
      colLower: [],
      colUpper: [],
      colCost: [],
      colInteger: [],
      get rowNames() {
        return names().rows;
      },
      rowKinds: [],
      rowLabels: [],
      rowLower: [],
      rowUpper: [],
      rowStarts: [0],
      rowIndices: [],
      rowValues: [],
    };
  }

  addColumn(name: string, lower: number, upper: number, cost: number, integer: boolean): number {
    const m = this.model;
    const j = m.colCost.length;
    this.rawCols.push(name);
    this.order.push(j);
    this.names = undefined;
    m.colLower.push(lower);
    m.colUpper.push(upper);
    m.colCost.push(cost);
    m.colInteger.push(integer);
    return j;
  }

  /** Adds `lower ≤ Σ values[k]·x[indices[k]] ≤ upper`; zero coefficients are dropped, duplicates summed. */
  addRow(
    name: string,
    kind: RowKind | 'link',
    lower: number,
    upper: number,
    indices: readonly number[],
    values: readonly number[],
    label = '',
  ): number {
    const m = this.model;
    const row = m.rowLower.length;
    if (this.slot.length < m.colCost.length) {
      const size = Math.max(m.colCost.length, 2 * this.slot.length);
      this.slot = new Int32Array(size);
      const stamps = new Int32Array(size).fill(-1);
      stamps.set(this.slotRow);
      this.slotRow = stamps;
    }
    const start = m.rowIndices.length;
    let zeros = false;
    for (let k = 0; k < indices.length; k++) {
      const j = indices[k] as number;
      const v = values[k] as number;
      if (this.slotRow[j] === row) {
        const at = this.slot[j] as number;
        m.rowValues[at] = (m.rowValues[at] as number) + v;
        zeros = true;
      } else {
        this.slotRow[j] = row;
        this.slot[j] = m.rowIndices.length;
        m.rowIndices.push(j);
        m.rowValues.push(v);
        if (v === 0) zeros = true;
      }
    }
    if (zeros) {
      // Drop terms that are (or summed to) zero.
      let end = start;
      for (let k = start; k < m.rowIndices.length; k++) {
        if (m.rowValues[k] === 0) continue;
        m.rowIndices[end] = m.rowIndices[k] as number;
        m.rowValues[end] = m.rowValues[k] as number;
        end++;
      }
      m.rowIndices.length = end;
      m.rowValues.length = end;
    }
    m.rowStarts.push(m.rowIndices.length);
    this.rawRows.push(name);
    this.order.push(-1 - row);
    this.names = undefined;
    m.rowKinds.push(kind);
    m.rowLabels.push(label);
    m.rowLower.push(lower);
    m.rowUpper.push(upper);
    return row;
  }
}

/** LP-safe names, unique across columns and rows, suffixed `_2`, `_3`, … in insertion order. */
function uniqueNames(
  rawCols: readonly string[],
  rawRows: readonly string[],
  order: readonly number[],
): { cols: string[]; rows: string[] } {
  const seen = new Set<string>();
  const cols = new Array<string>(rawCols.length);
  const rows = new Array<string>(rawRows.length);
  for (const at of order) {
    const base = lpName((at >= 0 ? rawCols[at] : rawRows[-1 - at]) as string);
    let name = base;
    // One hash lookup for the usual case, a name not seen before.
    const size = seen.size;
    seen.add(name);
    if (seen.size === size) {
      for (let i = 2; seen.has(name); i++) name = `${base}_${i}`;
      seen.add(name);
    }
    if (at >= 0) cols[at] = name;
    else rows[-1 - at] = name;
  }
  return { cols, rows };
}

/** CPLEX LP identifiers: letters, digits and `_`, not starting with a digit or `e`/`E` followed by a digit. */
export function lpName(raw: string): string {
  if (isLpName(raw)) return raw;
  const cleaned = raw.replace(/[^A-Za-z0-9_]+/g, '_').replace(/_+$/, '');
  return /^[A-Za-z_]/.test(cleaned) && !/^[eE][0-9]/.test(cleaned) ? cleaned : `n_${cleaned}`;
}

/** Replaces every run of characters an LP identifier cannot hold by `_`, for parts of names built once. */
export function lpPart(raw: string): string {
  return raw.replace(/[^A-Za-z0-9_]+/g, '_');
}

/** Whether lpName would return the name unchanged (checked by character codes: names are built by the 10,000). */
function isLpName(raw: string): boolean {
  const n = raw.length;
  if (n === 0) return false;
  for (let k = 0; k < n; k++) {
    const c = raw.charCodeAt(k);
    const letter = (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    const digit = c >= 48 && c <= 57;
    if (k === 0 && !letter && c !== 95) return false;
    if (!letter && !digit && c !== 95) return false;
  }
  if (raw.charCodeAt(n - 1) === 95) return false;
  const first = raw.charCodeAt(0);
  const second = n > 1 ? raw.charCodeAt(1) : 0;
  return !((first === 69 || first === 101) && second >= 48 && second <= 57);
}

/** Objective value Σ cost·x at a column vector. */
export function objectiveAt(model: LinearModel, values: ArrayLike<number>): number {
  let total = 0;
  for (let j = 0; j < model.colCost.length; j++)
    total += (model.colCost[j] as number) * (values[j] as number);
  return total;
}

/** Activity Σ a·x of every row at a column vector. */
export function rowActivities(model: LinearModel, values: ArrayLike<number>): Float64Array {
  const activity = new Float64Array(model.rowLower.length);
  for (let i = 0; i < activity.length; i++) {
    let sum = 0;
    for (let k = model.rowStarts[i] as number; k < (model.rowStarts[i + 1] as number); k++) {
      sum += (model.rowValues[k] as number) * (values[model.rowIndices[k] as number] as number);
    }
    activity[i] = sum;
  }
  return activity;
}

/**
 * The point with its integer columns rounded, when they already were integers (within `tolerance`) and the rounded
 * point keeps every bound and row; otherwise undefined. An LP optimum that passes is an optimum of the MIP too.
 */
export function integralPoint(
  model: LinearModel,
  values: ArrayLike<number>,
  tolerance = 1e-6,
): Float64Array | undefined {
  const point = Float64Array.from(values as ArrayLike<number>);
  const slack = (bound: number) => tolerance * Math.max(1, Math.abs(bound));
  for (let j = 0; j < point.length; j++) {
    let v = point[j] as number;
    if (model.colInteger[j]) {
      const rounded = Math.round(v);
      if (Math.abs(rounded - v) > tolerance) return undefined;
      v = rounded;
      point[j] = v;
    }
    const lower = model.colLower[j] as number;
    const upper = model.colUpper[j] as number;
    if (v < lower - slack(lower) || v > upper + slack(upper)) return undefined;
  }
  const activity = rowActivities(model, point);
  for (let i = 0; i < activity.length; i++) {
    const lower = model.rowLower[i] as number;
    const upper = model.rowUpper[i] as number;
    const a = activity[i] as number;
    if (a < lower - slack(lower) || a > upper + slack(upper)) return undefined;
  }
  return point;
}
