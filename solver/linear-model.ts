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
  readonly colLower: Float64Array;
  readonly colUpper: Float64Array;
  readonly colCost: Float64Array;
  readonly colInteger: boolean[];
  readonly rowNames: string[];
  readonly rowKinds: (RowKind | 'link')[];
  /** What a row means, in words an operator reads (empty for link rows). */
  readonly rowLabels: string[];
  readonly rowLower: Float64Array;
  readonly rowUpper: Float64Array;
  /** CSR: row i's terms are at rowStarts[i] .. rowStarts[i + 1]. */
  readonly rowStarts: Int32Array;
  readonly rowIndices: Int32Array;
  readonly rowValues: Float64Array;
}

/** A typed array that grows by doubling; `view()` is its filled part, without a copy. */
class Grow<T extends Float64Array | Int32Array> {
  length = 0;
  constructor(
    public data: T,
    private readonly make: (n: number) => T,
  ) {}
  push(v: number): void {
    if (this.length === this.data.length) {
      const next = this.make(2 * this.data.length);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = v;
  }
  view(): T {
    return this.data.subarray(0, this.length) as T;
  }
}
const floats = () => new Grow(new Float64Array(1024), (n) => new Float64Array(n));
const ints = () => new Grow(new Int32Array(1024), (n) => new Int32Array(n));

/**
 * Builds a LinearModel incrementally, into typed arrays that grow (JavaScript arrays filled by push were the
 * larger part of building the benchmark's 44,000-column model). Names are made LP-safe and unique when first read
 * (the LP export, GLPK, the explanation), not while building.
 */
export class LinearModelBuilder {
  private readonly name: string;
  private readonly colLower = floats();
  private readonly colUpper = floats();
  private readonly colCost = floats();
  private readonly colInteger: boolean[] = [];
  private readonly rowKinds: (RowKind | 'link')[] = [];
  private readonly rowLabels: string[] = [];
  private readonly rowLower = floats();
  private readonly rowUpper = floats();
  private readonly rowStarts = ints();
  private readonly rowIndices = ints();
  private readonly rowValues = floats();
  private readonly rawCols: string[] = [];
  private readonly rawRows: string[] = [];
  /** Insertion order of names across columns (j ≥ 0) and rows (−1 − i): the order uniqueness suffixes follow. */
  private readonly order: number[] = [];
  private names: { cols: string[]; rows: string[] } | undefined;
  private built: LinearModel | undefined;
  /** Per column, the position of its term in the row being added (valid while `slotRow` holds that row). */
  private slot = new Int32Array(1024);
  private slotRow = new Int32Array(1024).fill(-1);

  constructor(name: string) {
    this.name = name;
    this.rowStarts.push(0);
  }

  /** The model as built so far (views of the builder's arrays: adding more invalidates it). */
  get model(): LinearModel {
    if (!this.built) {
      const names = () => {
        this.names ??= uniqueNames(this.rawCols, this.rawRows, this.order);
        return this.names;
      };
      this.built = new NamedWhenRead(
        {
          name: this.name,
          colLower: this.colLower.view(),
          colUpper: this.colUpper.view(),
          colCost: this.colCost.view(),
          colInteger: this.colInteger,
          rowKinds: this.rowKinds,
          rowLabels: this.rowLabels,
          rowLower: this.rowLower.view(),
          rowUpper: this.rowUpper.view(),
          rowStarts: this.rowStarts.view(),
          rowIndices: this.rowIndices.view(),
          rowValues: this.rowValues.view(),
        },
        names,
      );
    }
    return this.built;
  }

  addColumn(name: string, lower: number, upper: number, cost: number, integer: boolean): number {
    const j = this.colCost.length;
    this.rawCols.push(name);
    this.order.push(j);
    this.names = undefined;
    this.built = undefined;
    this.colLower.push(lower);
    this.colUpper.push(upper);
    this.colCost.push(cost);
    this.colInteger.push(integer);
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
    const row = this.rowLower.length;
    const nCols = this.colCost.length;
    if (this.slot.length < nCols) {
      const size = Math.max(nCols, 2 * this.slot.length);
      this.slot = new Int32Array(size);
      const stamps = new Int32Array(size).fill(-1);
      stamps.set(this.slotRow);
      this.slotRow = stamps;
    }
    const idx = this.rowIndices;
    const val = this.rowValues;
    const start = idx.length;
    let zeros = false;
    for (let k = 0; k < indices.length; k++) {
      const j = indices[k] as number;
      const v = values[k] as number;
      if (this.slotRow[j] === row) {
        const at = this.slot[j] as number;
        val.data[at] = (val.data[at] as number) + v;
        zeros = true;
      } else {
        this.slotRow[j] = row;
        this.slot[j] = idx.length;
        idx.push(j);
        val.push(v);
        if (v === 0) zeros = true;
      }
    }
    if (zeros) {
      // Drop terms that are (or summed to) zero.
      let end = start;
      for (let k = start; k < idx.length; k++) {
        if (val.data[k] === 0) continue;
        idx.data[end] = idx.data[k] as number;
        val.data[end] = val.data[k] as number;
        end++;
      }
      idx.length = end;
      val.length = end;
    }
    this.rowStarts.push(idx.length);
    this.rawRows.push(name);
    this.order.push(-1 - row);
    this.names = undefined;
    this.built = undefined;
    this.rowKinds.push(kind);
    this.rowLabels.push(label);
    this.rowLower.push(lower);
    this.rowUpper.push(upper);
    return row;
  }
}

/** A model's numbers, without its names. */
export type Unnamed = Omit<LinearModel, 'colNames' | 'rowNames'>;

/**
 * A LinearModel whose names are made when first read (the LP export, GLPK, the explanation), by `names`: the
 * builder's, or those of the model an updated model shares them with. One class, so that the solver's loops over
 * a model's arrays see one shape of object.
 */
export class NamedWhenRead implements LinearModel {
  readonly name: string;
  readonly colLower: Float64Array;
  readonly colUpper: Float64Array;
  readonly colCost: Float64Array;
  readonly colInteger: boolean[];
  readonly rowKinds: (RowKind | 'link')[];
  readonly rowLabels: string[];
  readonly rowLower: Float64Array;
  readonly rowUpper: Float64Array;
  readonly rowStarts: Int32Array;
  readonly rowIndices: Int32Array;
  readonly rowValues: Float64Array;
  private readonly source: () => { cols: string[]; rows: string[] };
  private made: { cols: string[]; rows: string[] } | undefined;

  constructor(model: Unnamed, names: () => { cols: string[]; rows: string[] }) {
    this.name = model.name;
    this.colLower = model.colLower;
    this.colUpper = model.colUpper;
    this.colCost = model.colCost;
    this.colInteger = model.colInteger;
    this.rowKinds = model.rowKinds;
    this.rowLabels = model.rowLabels;
    this.rowLower = model.rowLower;
    this.rowUpper = model.rowUpper;
    this.rowStarts = model.rowStarts;
    this.rowIndices = model.rowIndices;
    this.rowValues = model.rowValues;
    this.source = names;
  }

  private names(): { cols: string[]; rows: string[] } {
    this.made ??= this.source();
    return this.made;
  }

  get colNames(): string[] {
    return this.names().cols;
  }

  get rowNames(): string[] {
    return this.names().rows;
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
