import { type LinearModel, NamedWhenRead } from './linear-model.ts';

/**
 * The shape of a capacity model that makes it cheap to solve: which columns and rows form independent pieces.
 *
 *  - components: connected components over all rows. Quota rows couple GPU types only within one vendor × region,
 *    and region groups are disjoint, so without spread or budget rules each region group (without quotas: each
 *    GPU type × region group) is a model of its own. Solving them one by one is exact.
 *  - blocks: inside a component, the rows that stay within one period (coverage, gang, quota, spot, spread,
 *    budget, and the first period's start rows) split it per period. Only the linking rows (start, stopDef, churn
 *    and lifetime rows from the second period on) join periods; a Lagrangian relaxation prices them with
 *    multipliers and leaves one small MIP per block.
 *  - loose columns: columns that only linking rows touch (add and stop from the second period on). With the
 *    linking rows priced, each sits at a bound; no solver is needed for them.
 */
export interface Part {
  /** Columns of the part, ascending. */
  cols: Int32Array;
  /** Rows among those columns, ascending. */
  rows: Int32Array;
}

export interface Block extends Part {
  period: number;
  /** The component the block belongs to. */
  component: number;
}

export interface Structure {
  components: Part[];
  blocks: Block[];
  /** Rows whose columns lie in more than one period. */
  linking: Int32Array;
  /** Columns that no within-period row touches. */
  loose: Int32Array;
  colComponent: Int32Array;
  rowComponent: Int32Array;
}

class UnionFind {
  private readonly parent: Int32Array;
  constructor(n: number) {
    this.parent = Int32Array.from({ length: n }, (_, i) => i);
  }
  find(a: number): number {
    const p = this.parent;
    while (p[a] !== a) {
      const up = p[p[a] as number] as number;
      p[a] = up;
      a = up;
    }
    return a;
  }
  union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent[ra] = rb;
  }
}

/** Groups columns by the union-find roots, and each listed row with the group of its first column. */
function groups(
  lp: LinearModel,
  uf: UnionFind,
  colSet: ArrayLike<number>,
  rowSet: ArrayLike<number>,
): { cols: number[]; rows: number[] }[] {
  const byRoot = new Map<number, { cols: number[]; rows: number[] }>();
  for (let k = 0; k < colSet.length; k++) {
    const j = colSet[k] as number;
    const root = uf.find(j);
    let g = byRoot.get(root);
    if (!g) {
      g = { cols: [], rows: [] };
      byRoot.set(root, g);
    }
    g.cols.push(j);
  }
  for (let k = 0; k < rowSet.length; k++) {
    const i = rowSet[k] as number;
    const start = lp.rowStarts[i] as number;
    if (start === lp.rowStarts[i + 1]) continue;
    byRoot.get(uf.find(lp.rowIndices[start] as number))?.rows.push(i);
  }
  return [...byRoot.values()];
}

/** Finds the components, blocks, linking rows and loose columns of a model whose columns carry a period. */
export function analyse(lp: LinearModel, colPeriod: Int32Array): Structure {
  const nCols = lp.colCost.length;
  const nRows = lp.rowLower.length;
  const all = new UnionFind(nCols);
  const within = new UnionFind(nCols);
  const linking: number[] = [];
  const withinRows: number[] = [];
  const touched = new Uint8Array(nCols);
  for (let i = 0; i < nRows; i++) {
    const start = lp.rowStarts[i] as number;
    const end = lp.rowStarts[i + 1] as number;
    if (start === end) continue;
    const first = lp.rowIndices[start] as number;
    const period = colPeriod[first];
    let inOnePeriod = true;
    for (let k = start + 1; k < end; k++) {
      const j = lp.rowIndices[k] as number;
      all.union(first, j);
      if (colPeriod[j] !== period) inOnePeriod = false;
    }
    if (inOnePeriod) {
      withinRows.push(i);
      for (let k = start; k < end; k++) {
        const j = lp.rowIndices[k] as number;
        touched[j] = 1;
        if (k > start) within.union(first, j);
      }
    } else linking.push(i);
  }

  const allCols = Int32Array.from({ length: nCols }, (_, j) => j);
  const allRows = Int32Array.from({ length: nRows }, (_, i) => i);
  const components = groups(lp, all, allCols, allRows).map((g) => ({
    cols: Int32Array.from(g.cols),
    rows: Int32Array.from(g.rows),
  }));
  const colComponent = new Int32Array(nCols);
  const rowComponent = new Int32Array(nRows).fill(-1);
  components.forEach((c, ci) => {
    for (const j of c.cols) colComponent[j] = ci;
    for (const i of c.rows) rowComponent[i] = ci;
  });

  const loose: number[] = [];
  const blockCols: number[] = [];
  for (let j = 0; j < nCols; j++) (touched[j] ? blockCols : loose).push(j);
  const blocks = groups(lp, within, blockCols, withinRows).map((g) => ({
    cols: Int32Array.from(g.cols),
    rows: Int32Array.from(g.rows),
    period: colPeriod[g.cols[0] as number] as number,
    component: colComponent[g.cols[0] as number] as number,
  }));
  blocks.sort((a, b) => a.period - b.period || a.component - b.component);
  return {
    components,
    blocks,
    linking: Int32Array.from(linking),
    loose: Int32Array.from(loose),
    colComponent,
    rowComponent,
  };
}

/**
 * The part of the model on `part`'s columns and rows, with the given column costs. Columns outside the part that
 * its rows touch are fixed at `fixed` and moved into the row bounds. Its names are short placeholders (c0, r0, …),
 * made only if read (GLPK reads them): a part is solved, never exported.
 */
export function subModel(
  lp: LinearModel,
  part: Part,
  cost: ArrayLike<number>,
  fixed?: ArrayLike<number>,
): LinearModel {
  const nCols = part.cols.length;
  const local = new Map<number, number>();
  const colLower = new Float64Array(nCols);
  const colUpper = new Float64Array(nCols);
  const colCost = new Float64Array(nCols);
  const colInteger = new Array<boolean>(nCols);
  for (let k = 0; k < nCols; k++) {
    const j = part.cols[k] as number;
    local.set(j, k);
    colLower[k] = lp.colLower[j] as number;
    colUpper[k] = lp.colUpper[j] as number;
    colCost[k] = cost[j] as number;
    colInteger[k] = lp.colInteger[j] as boolean;
  }
  const rowKinds: LinearModel['rowKinds'] = [];
  const rowLower: number[] = [];
  const rowUpper: number[] = [];
  const rowStarts = [0];
  const rowIndices: number[] = [];
  const rowValues: number[] = [];
  for (const i of part.rows) {
    let shift = 0;
    for (let k = lp.rowStarts[i] as number; k < (lp.rowStarts[i + 1] as number); k++) {
      const j = lp.rowIndices[k] as number;
      const c = local.get(j);
      if (c === undefined) {
        if (!fixed) throw new Error(`row ${lp.rowNames[i]} leaves the part`);
        shift += (lp.rowValues[k] as number) * (fixed[j] as number);
        continue;
      }
      rowIndices.push(c);
      rowValues.push(lp.rowValues[k] as number);
    }
    rowStarts.push(rowIndices.length);
    rowKinds.push(lp.rowKinds[i] as LinearModel['rowKinds'][number]);
    rowLower.push((lp.rowLower[i] as number) - shift);
    rowUpper.push((lp.rowUpper[i] as number) - shift);
  }
  const nRows = rowLower.length;
  return new NamedWhenRead(
    {
      name: lp.name,
      colLower,
      colUpper,
      colCost,
      colInteger,
      rowKinds,
      rowLabels: new Array<string>(nRows).fill(''),
      rowLower: Float64Array.from(rowLower),
      rowUpper: Float64Array.from(rowUpper),
      rowStarts: Int32Array.from(rowStarts),
      rowIndices: Int32Array.from(rowIndices),
      rowValues: Float64Array.from(rowValues),
    },
    () => ({
      cols: Array.from({ length: nCols }, (_, k) => `c${k}`),
      rows: Array.from({ length: nRows }, (_, k) => `r${k}`),
    }),
  );
}

/**
 * Lagrangian costs: the linking rows priced with multipliers y (the LP relaxation's row duals). For a row
 * lower ≤ a·x ≤ upper, y > 0 prices its lower side and y < 0 its upper side; a multiplier whose side is infinite
 * is dropped. Then for every x that keeps the other rows, cost·x − Σ y·(a·x − side) ≤ the true cost, so
 * min over the remaining rows of `cost`·x + `constant` is a lower bound on the model's optimum.
 */
export function lagrangianCosts(
  lp: LinearModel,
  linking: Int32Array,
  y: ArrayLike<number>,
): { cost: Float64Array; constant: number; rowConstant: Float64Array } {
  const cost = Float64Array.from(lp.colCost);
  const rowConstant = new Float64Array(lp.rowLower.length);
  let constant = 0;
  for (const i of linking) {
    const yi = y[i] as number;
    const side = yi > 0 ? (lp.rowLower[i] as number) : yi < 0 ? (lp.rowUpper[i] as number) : 0;
    if (yi === 0 || !Number.isFinite(side)) continue;
    rowConstant[i] = yi * side;
    constant += yi * side;
    for (let k = lp.rowStarts[i] as number; k < (lp.rowStarts[i + 1] as number); k++) {
      const j = lp.rowIndices[k] as number;
      cost[j] = (cost[j] as number) - yi * (lp.rowValues[k] as number);
    }
  }
  return { cost, constant, rowConstant };
}

/**
 * The cheapest value of a loose column under Lagrangian cost d: its lower bound when d ≥ 0, else its upper bound.
 * Returns −∞ as the contribution when that bound is infinite (the multipliers then prove nothing).
 */
export function looseValue(lp: LinearModel, j: number, d: number): { value: number; contribution: number } {
  const lower = lp.colLower[j] as number;
  const upper = lp.colUpper[j] as number;
  // Reduced costs within rounding of zero are zero: the LP's duals make them so up to its tolerances.
  if (Math.abs(d) <= 1e-9) return { value: Number.isFinite(lower) ? lower : 0, contribution: 0 };
  const value = d > 0 ? lower : upper;
  return { value, contribution: Number.isFinite(value) ? d * value : Number.NEGATIVE_INFINITY };
}
