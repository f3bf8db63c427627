import type { LpRelaxation, MipResult } from './backends/backend.ts';
import { glpkBackend } from './backends/glpk.ts';
import { highsBackend, solveMipOnWorker, solveRelaxationKept } from './backends/highs.ts';
import { analyse, lagrangianCosts, looseValue, type Part, type Structure, subModel } from './decompose.ts';
import { integralPoint, type LinearModel, objectiveAt } from './linear-model.ts';
import type { PlanningModel } from './model.ts';
import { type Cell, cellsOf, completeCell, completeSolution, readCounts } from './solution.ts';
import {
  BlockCache,
  type BlockKey,
  BlockMemo,
  type BlockResult,
  blockKey,
  sameShape,
  shapeOf,
  type WarmState,
} from './warm.ts';

/**
 * How planCapacity solves the model with HiGHS. The model in model.ts is the only formulation; this is a way to
 * solve it, exact up to the relative gap:
 *
 *  1. The LP relaxation: the explanation's duals, a first bound, and the multipliers of step 2. An integral LP
 *     optimum is the MIP optimum and ends the solve.
 *  2. A Lagrangian decomposition (decompose.ts): the rows that join periods are priced with the LP's duals, and
 *     what is left splits into one small MIP per period and independent component (region group). Every block
 *     whose LP optimum is already integral needs no MIP: with the LP's own duals it is that block's optimum.
 *     The sum of the blocks' bounds is a lower bound on the whole model (never below the LP's: the Lagrangian
 *     dual at the LP's multipliers is at least the LP value), and the blocks' solutions joined, with start-ups
 *     and stops completed, are a plan. Measured on the benchmark's 24-period model with quotas: the LP is 28–43 %
 *     below the optimum (quota slivers priced at the shortfall penalty), the Lagrangian bound within 0.1 % in
 *     most seeds, because the integrality gap sits inside the periods, not between them.
 *  3. Where a component's plan and bound are further apart than the gap, that component alone goes to HiGHS's
 *     branch and bound with the plan as its MIP start, for the time that is left.
 *
 * Status: optimal when the plan is proven within the relative gap, feasible otherwise.
 */
export interface SolveOptions {
  timeLimitMs: number;
  relativeGap: number;
  /** What the previous plan's solve kept (warm.ts), when the broker passed it back. */
  warm?: WarmState;
  /** Worker threads for the block MIPs (1: none, everything on this thread). */
  threads?: number;
}

export interface SolveResult extends MipResult {
  relaxation?: LpRelaxation;
  /** What this solve keeps for the next one. */
  warm?: WarmState;
  /** How the time went, for the benchmark's profile. */
  profile: SolveProfile;
}

export interface SolveProfile {
  lpMs: number;
  blocksMs: number;
  blocks: number;
  blockMips: number;
  /** Blocks taken from the previous plan's solve unchanged. */
  blocksReused: number;
  polishMs: number;
  polished: number;
}

export async function solvePlanningModel(pm: PlanningModel, options: SolveOptions): Promise<SolveResult> {
  const started = performance.now();
  const remaining = () => options.timeLimitMs - (performance.now() - started);
  const { lp } = pm;
  const profile: SolveProfile = {
    lpMs: 0,
    blocksMs: 0,
    blocks: 0,
    blockMips: 0,
    blocksReused: 0,
    polishMs: 0,
    polished: 0,
  };
  const threads = options.threads ?? 1;
  const shape = shapeOf(pm);
  const previous = options.warm && sameShape(options.warm.shape, shape) ? options.warm : undefined;

  const relaxation = await solveRelaxationKept(lp, previous?.basis).catch(() => undefined);
  profile.lpMs = performance.now() - started;
  if (!relaxation) {
    // No LP optimum (infeasible rules, or numerical trouble): the MIP solver says which.
    const mip = await highsBackend.solveMip(lp, {
      timeLimitMs: Math.max(1, remaining()),
      relativeGap: options.relativeGap,
    });
    return { ...mip, profile };
  }
  const keep = (
    multipliers: Float64Array,
    blocks: BlockCache,
    plan?: Float64Array,
    structure?: Structure,
    blockMemo?: BlockMemo,
  ): WarmState => ({
    shape,
    multipliers,
    blocks,
    ...(blockMemo ? { blockMemo } : {}),
    model: pm,
    ...(structure ? { structure } : {}),
    ...(relaxation.basis ? { basis: relaxation.basis } : {}),
    ...(plan ? { plan } : {}),
  });
  const integral = integralPoint(lp, relaxation.values);
  if (integral)
    return {
      status: 'optimal',
      values: integral,
      bound: relaxation.objective,
      relaxation,
      warm: keep(relaxation.rowDuals, new BlockCache(), integral),
      profile,
    };

  // A model updated from the previous one shares its matrix, so its structure too.
  const structure =
    previous?.structure &&
    previous.model.lp.rowStarts === lp.rowStarts &&
    previous.model.colPeriod === pm.colPeriod
      ? previous.structure
      : analyse(lp, pm.colPeriod);
  const t0 = performance.now();
  const nComp = structure.components.length;
  const lpPart = new Float64Array(nComp);
  for (let ci = 0; ci < nComp; ci++) {
    for (const j of (structure.components[ci] as Part).cols)
      lpPart[ci] = (lpPart[ci] as number) + (lp.colCost[j] as number) * (relaxation.values[j] as number);
  }
  const total = (a: Float64Array) => a.reduce((sum, v) => sum + v, 0);
  const outside = (objective: number, lower: number) =>
    objective - lower > options.relativeGap * Math.abs(objective) + 1e-9 * Math.max(1, Math.abs(objective));

  // Step 2, warm: the previous multipliers, so that unchanged blocks are the same MIPs. Each component's linking
  // rows are its own, so each component may be priced by other multipliers: where stale ones leave a component
  // outside the gap, its rows take the new LP's duals and only its blocks are solved again.
  const cache = new BlockCache();
  const memo = new BlockMemo(lp);
  const caches = {
    previous: previous?.blocks,
    next: cache,
    memos: [memo, ...(previous?.blockMemo && previous.structure === structure ? [previous.blockMemo] : [])],
  };
  const multipliers = Float64Array.from(previous ? previous.multipliers : relaxation.rowDuals);
  const lagrange = await lagrangianBlocks(
    pm,
    structure,
    multipliers,
    relaxation,
    options.relativeGap,
    remaining,
    caches,
    () => !previous,
    threads,
  );
  profile.blocks = structure.blocks.length;
  profile.blockMips += lagrange.mips;
  profile.blocksReused += lagrange.reused;
  const blockBound = Float64Array.from(lagrange.bound, (b, ci) => Math.max(b, lpPart[ci] as number));
  const joined = completeSolution(pm, readCounts(pm, lagrange.values));
  // The previous plan's pools per period are candidates too: after a small change most periods keep them.
  let candidate =
    smoothStartUps(pm, structure, previous?.plan ? [joined, previous.plan] : [joined]) ?? joined;
  if (objectiveAt(lp, joined) < objectiveAt(lp, candidate)) candidate = joined;
  // The components to work on further: none while the whole plan is within the gap; else those outside it on
  // their own (at least one is, when the whole is).
  const behind = () => {
    const primal = componentCosts(lp, structure, candidate);
    if (!outside(total(primal), total(blockBound))) return new Set<number>();
    return new Set(
      [...Array(nComp).keys()].filter((ci) => outside(primal[ci] as number, blockBound[ci] as number)),
    );
  };
  let lagging = behind();
  if (previous && lagging.size > 0 && remaining() > 0) {
    for (const i of structure.linking)
      if (lagging.has(structure.rowComponent[i] as number)) multipliers[i] = relaxation.rowDuals[i] as number;
    const fresh = await lagrangianBlocks(
      pm,
      structure,
      multipliers,
      relaxation,
      options.relativeGap,
      remaining,
      caches,
      (ci) => lagging.has(ci),
      threads,
    );
    profile.blockMips += fresh.mips;
    profile.blocksReused += fresh.reused;
    fresh.bound.forEach((b, ci) => {
      blockBound[ci] = Math.max(blockBound[ci] as number, b);
    });
    const rejoined = completeSolution(pm, readCounts(pm, fresh.values));
    const smoothed = smoothStartUps(pm, structure, [candidate, rejoined]);
    if (smoothed && objectiveAt(lp, smoothed) < objectiveAt(lp, candidate)) candidate = smoothed;
    lagging = behind();
  }
  if (lagging.size > 0 && remaining() > 0) {
    // The Lagrangian prices tilt the blocks' choices; blocks priced at the true costs give other candidates.
    const plain = await plainBlocks(pm, structure, options.relativeGap, remaining, caches, lagging, threads);
    profile.blockMips += plain.mips;
    const smoothed = smoothStartUps(pm, structure, [
      candidate,
      completeSolution(pm, readCounts(pm, plain.values)),
    ]);
    if (smoothed && objectiveAt(lp, smoothed) < objectiveAt(lp, candidate)) candidate = smoothed;
  }
  profile.blocksMs = performance.now() - t0;

  const feasible = integralPoint(lp, candidate) !== undefined;
  const values = feasible ? candidate : new Float64Array(lp.colCost.length);
  const hasPlan = new Array<boolean>(nComp).fill(feasible);
  const primal = componentCosts(lp, structure, values);
  const bound = blockBound;
  const within = () => hasPlan.every(Boolean) && !outside(total(primal), total(bound));

  // Step 3: polish the components whose gap is largest, while the whole is outside the gap and time is left.
  const t1 = performance.now();
  const order = [...Array(nComp).keys()].sort(
    (a, b) =>
      Number(hasPlan[a]) - Number(hasPlan[b]) ||
      (primal[b] as number) - (bound[b] as number) - ((primal[a] as number) - (bound[a] as number)),
  );
  for (const ci of order) {
    if (within() || remaining() <= 0) break;
    if (hasPlan[ci] && !outside(primal[ci] as number, bound[ci] as number)) continue;
    const comp = structure.components[ci] as Part;
    const sub = subModel(lp, comp, lp.colCost);
    const result = await highsBackend.solveMip(sub, {
      timeLimitMs: Math.max(1, remaining()),
      relativeGap: options.relativeGap,
      ...(hasPlan[ci] ? { start: Float64Array.from(comp.cols, (j) => values[j] as number) } : {}),
    });
    profile.polished++;
    if (result.status === 'infeasible') return { status: 'infeasible', relaxation, profile };
    if (result.bound !== undefined) bound[ci] = Math.max(bound[ci] as number, result.bound);
    if (!result.values) continue;
    const objective = comp.cols.reduce(
      (sum, j, k) => sum + (lp.colCost[j] as number) * (result.values?.[k] as number),
      0,
    );
    if (!hasPlan[ci] || objective < (primal[ci] as number)) {
      comp.cols.forEach((j, k) => {
        values[j] = result.values?.[k] as number;
      });
      primal[ci] = objective;
      hasPlan[ci] = true;
    }
  }
  profile.polishMs = performance.now() - t1;

  if (!hasPlan.every(Boolean))
    return {
      status: 'none',
      message: 'no plan within the time limit',
      relaxation,
      warm: keep(multipliers, cache, undefined, structure, memo),
      profile,
    };
  const plan = completeSolution(pm, readCounts(pm, values));
  const warm = keep(multipliers, cache, plan, structure, memo);
  return {
    status: within() ? 'optimal' : 'feasible',
    values: plan,
    bound: total(bound),
    relaxation,
    warm,
    profile,
  };
}

/**
 * Step 2: each block's MIP under the Lagrangian costs. Returns the joined block solutions and, per component, the
 * Lagrangian lower bound (its linking rows' constants, its loose columns at their best bound, its blocks' bounds).
 */
async function lagrangianBlocks(
  pm: PlanningModel,
  structure: Structure,
  multipliers: ArrayLike<number>,
  relaxation: LpRelaxation,
  relativeGap: number,
  remaining: () => number,
  caches: { previous?: BlockCache | undefined; next: BlockCache; memos: BlockMemo[] },
  ownDuals: (component: number) => boolean,
  threads: number,
): Promise<{ values: Float64Array; bound: Float64Array; mips: number; reused: number }> {
  const { lp } = pm;
  const { cost, rowConstant } = lagrangianCosts(lp, structure.linking, multipliers);
  const bound = new Float64Array(structure.components.length);
  for (const i of structure.linking) {
    const ci = structure.rowComponent[i] as number;
    bound[ci] = (bound[ci] as number) + (rowConstant[i] as number);
  }
  const values = new Float64Array(lp.colCost.length);
  for (const j of structure.loose) {
    const { value, contribution } = looseValue(lp, j, cost[j] as number);
    values[j] = value;
    const ci = structure.colComponent[j] as number;
    bound[ci] = (bound[ci] as number) + contribution;
  }
  let mips = 0;
  let reused = 0;
  // Blocks run side by side (HiGHS on worker threads, GLPK here); their bounds are summed in block order.
  const blockBounds = await Promise.all(
    structure.blocks.map(async (block, b) => {
      // A block whose numbers did not change since it was last solved (this solve or the previous one's) is taken
      // as it was, without cutting it out of the model again.
      let remembered: { key: BlockKey; result: BlockResult } | undefined;
      for (const m of caches.memos) {
        remembered = m.find(b, block, lp, cost);
        if (remembered) break;
      }
      let sub: LinearModel | undefined;
      const cut = () => {
        sub ??= subModel(lp, block, cost);
        return sub;
      };
      const key = remembered?.key ?? blockKey(cut());
      let result = remembered?.result ?? caches.next.get(key) ?? caches.previous?.get(key);
      if (result) reused++;
      else if (ownDuals(block.component) && blockIntegral(lp, block, relaxation.values)) {
        // With the LP's own duals as the component's multipliers, the LP optimum restricted to the block is the
        // block's LP optimum (complementary slackness); integral, it is the block's MIP optimum too.
        const own = Float64Array.from(block.cols, (j) => {
          const v = relaxation.values[j] as number;
          return lp.colInteger[j] ? Math.round(v) : v;
        });
        result = { values: own, bound: objectiveOf(cut(), own) };
      } else {
        mips++;
        const solved = await solveBlock(cut(), relativeGap, remaining, threads);
        result = {
          values: solved.values,
          bound:
            solved.bound ??
            (solved.status === 'optimal' && solved.values
              ? objectiveOf(cut(), solved.values)
              : Number.NEGATIVE_INFINITY),
        };
      }
      caches.next.set(key, result);
      caches.memos[0]?.set(b, block, cost, key, result);
      const found = result.values;
      if (found) {
        block.cols.forEach((j, k) => {
          values[j] = found[k] as number;
        });
      }
      return result.bound;
    }),
  );
  structure.blocks.forEach((block, b) => {
    bound[block.component] = (bound[block.component] as number) + (blockBounds[b] as number);
  });
  return { values, bound, mips, reused };
}

/**
 * The blocks' solutions joined are each optimal for their own period's prices, but neighbouring periods may pick
 * different (near-)equal pools and pay start-ups to switch. This re-chooses, per component, which period's block
 * solution to hold in each period, by dynamic programming over the exact costs: a period's instance costs and the
 * shortfall its choice leaves, plus start-ups against the previous period's choice. Holding each period's own
 * solution is one of the paths, so the result never costs more. Only where start rows are the only linking rows
 * (no churn or lifetime rule); returns undefined otherwise.
 */
function smoothStartUps(
  pm: PlanningModel,
  structure: Structure,
  solutions: readonly Float64Array[],
): Float64Array | undefined {
  const { lp, input } = pm;
  // The model's arrays as locals: the loops below read them hundreds of thousands of times.
  const { colLower, colUpper, colCost } = lp;
  if (structure.linking.some((i) => lp.rowKinds[i] !== 'link')) return undefined;
  if (pm.stop.some((cols) => cols.some((j) => j >= 0))) return undefined;
  const T = input.periods;
  const all = solutions.map((v) => readCounts(pm, v));
  const counts = all[0] as number[][];
  const cells = cellsOf(pm);
  const rowsOf = new Map<string, number[]>();
  for (const b of structure.blocks) {
    // Start rows are the DP's own business (it prices start-ups); coverage and gang rows hold by construction of
    // the completion (shortfall and unmet take what capacity leaves); the rest (quota, spot, spread, budget) must
    // be checked.
    const key = `${b.component}/${b.period}`;
    const checked = [...b.rows].filter(
      (i) => !['link', 'coverage', 'gang'].includes(lp.rowKinds[i] as string),
    );
    rowsOf.set(key, [...(rowsOf.get(key) ?? []), ...checked]);
  }
  const scratch = Float64Array.from(solutions[0] as Float64Array);
  for (let ci = 0; ci < structure.components.length; ci++) {
    const offs = input.offerings.flatMap((_, i) =>
      structure.colComponent[pm.x[i]?.[0] as number] === ci ? [i] : [],
    );
    if (offs.length === 0) continue;
    const compCells = cells.filter((c) => structure.colComponent[c.short.cols[0] as number] === ci);
    // Candidates: the distinct instance vectors the blocks chose in any period.
    const seen = new Map<string, number[]>();
    for (const source of all) {
      for (let t = 0; t < T; t++) {
        const vector = offs.map((i) => source[i]?.[t] ?? 0);
        seen.set(vector.join(','), vector);
      }
    }
    const candidates = [...seen.values()];
    const K = candidates.length;
    const N = offs.length;
    // The candidates in parts: each cell's offerings, and the offerings of no cell (held, with no demand for
    // them). A change of plan touches few cells, so most candidates share most parts; each distinct part is
    // checked against its bounds, priced and completed (unmet, shortfall) once per period.
    const position = new Map(offs.map((i, n) => [i, n]));
    const inCell = new Uint8Array(N);
    const groups: { cell: Cell | undefined; places: number[] }[] = compCells.map((cell) => {
      const places = cell.members.map((i) => position.get(i) as number);
      for (const n of places) inCell[n] = 1;
      return { cell, places };
    });
    const rest = [...inCell.keys()].filter((n) => inCell[n] === 0);
    if (rest.length > 0) groups.push({ cell: undefined, places: rest });
    const parts = groups.map(({ cell, places }) => {
      const ids = new Map<string, number>();
      const of = new Int32Array(K);
      const held: Float64Array[] = [];
      candidates.forEach((vector, k) => {
        const part = places.map((n) => vector[n] as number);
        const key = part.join(',');
        let id = ids.get(key);
        if (id === undefined) {
          id = held.length;
          ids.set(key, id);
          held.push(Float64Array.from(part));
        }
        of[k] = id;
      });
      return {
        cell,
        places,
        of,
        held,
        unmet: held.map(() => new Float64Array(cell?.classes.length ?? 0)),
        short: new Float64Array(held.length),
        /** Period t's cost of the part (instances, unmet, shortfall); Infinity where it breaks a bound. */
        cost: new Float64Array(held.length),
      };
    });
    // cost[t][k]: period t holding candidate k (Infinity where it breaks a bound or a row of period t).
    const cost = Array.from({ length: T }, () => new Float64Array(K));
    const xCols = new Int32Array(N);
    for (let t = 0; t < T; t++) {
      const rows = rowsOf.get(`${ci}/${t}`) ?? [];
      for (let n = 0; n < N; n++) xCols[n] = pm.x[offs[n] as number]?.[t] as number;
      for (const part of parts) {
        const { cell, places } = part;
        for (let h = 0; h < part.held.length; h++) {
          const vector = part.held[h] as Float64Array;
          let c = 0;
          for (let m = 0; m < places.length; m++) {
            const j = xCols[places[m] as number] as number;
            const v = vector[m] as number;
            if (v < (colLower[j] as number) - 1e-9 || v > (colUpper[j] as number) + 1e-9) {
              c = Number.POSITIVE_INFINITY;
              break;
            }
            c += (colCost[j] as number) * v;
          }
          if (cell && Number.isFinite(c)) {
            const unmet = part.unmet[h] as Float64Array;
            const short = completeCell(pm, cell, t, vector, unmet);
            part.short[h] = short;
            c += (colCost[cell.short.cols[t] as number] as number) * short;
            for (let c2 = 0; c2 < unmet.length; c2++)
              c +=
                (colCost[pm.unmet[cell.classes[c2] as number]?.[t] as number] as number) *
                (unmet[c2] as number);
          }
          part.cost[h] = c;
        }
      }
      for (let k = 0; k < K; k++) {
        let c = 0;
        for (const part of parts) c += part.cost[part.of[k] as number] as number;
        if (!Number.isFinite(c)) {
          (cost[t] as Float64Array)[k] = Number.POSITIVE_INFINITY;
          continue;
        }
        // The rows left to check (quota, spot, spread, budget) read the candidate's instances.
        const vector = candidates[k] as number[];
        for (let n = 0; n < N; n++) scratch[xCols[n] as number] = vector[n] as number;
        for (const part of parts) {
          if (!part.cell) continue;
          const h = part.of[k] as number;
          const unmet = part.unmet[h] as Float64Array;
          part.cell.classes.forEach((di, c2) => {
            scratch[pm.unmet[di]?.[t] as number] = unmet[c2] as number;
          });
          scratch[part.cell.short.cols[t] as number] = part.short[h] as number;
        }
        if (!rowsHold(lp, rows, scratch, pm.colPeriod, t)) c = Number.POSITIVE_INFINITY;
        (cost[t] as Float64Array)[k] = c;
      }
    }
    /** Start-up cost of each candidate after each candidate, in period t's prices. */
    const addCosts = (t: number) => {
      const prices = new Float64Array(N);
      for (let n = 0; n < N; n++) prices[n] = colCost[pm.add[offs[n] as number]?.[t] as number] as number;
      return prices;
    };
    const startUp = (price: Float64Array, from: ArrayLike<number>, to: ArrayLike<number>) => {
      let acc = 0;
      for (let n = 0; n < N; n++) {
        const up = (to[n] as number) - (from[n] as number);
        if (up > 0) acc += (price[n] as number) * up;
      }
      return acc;
    };
    // Start-up costs between candidates, once for all periods where they are priced alike (they are: P·price).
    const first = T > 1 ? addCosts(1) : new Float64Array(N);
    let alike = true;
    for (let t = 2; t < T && alike; t++) {
      const prices = addCosts(t);
      for (let n = 0; n < N; n++) if (prices[n] !== first[n]) alike = false;
    }
    const transitions = new Map<number, Float64Array>();
    const transition = (t: number) => {
      const key = alike ? 1 : t;
      let matrix = transitions.get(key);
      if (!matrix) {
        matrix = new Float64Array(K * K);
        const prices = addCosts(key);
        for (let q = 0; q < K; q++) {
          const from = candidates[q] as number[];
          for (let k = 0; k < K; k++) matrix[q * K + k] = startUp(prices, from, candidates[k] as number[]);
        }
        transitions.set(key, matrix);
      }
      return matrix;
    };
    const held = new Float64Array(N);
    for (let n = 0; n < N; n++) held[n] = input.current[offs[n] as number] ?? 0;
    const firstPrices = addCosts(0);
    const best = Array.from({ length: T }, () => new Float64Array(K).fill(Number.POSITIVE_INFINITY));
    const back = Array.from({ length: T }, () => new Int32Array(K).fill(-1));
    for (let k = 0; k < K; k++) {
      const c = (cost[0] as Float64Array)[k] as number;
      if (Number.isFinite(c))
        (best[0] as Float64Array)[k] = c + startUp(firstPrices, held, candidates[k] as number[]);
    }
    for (let t = 1; t < T; t++) {
      const matrix = transition(t);
      const previous = best[t - 1] as Float64Array;
      const here = best[t] as Float64Array;
      const from = back[t] as Int32Array;
      for (let k = 0; k < K; k++) {
        const c = (cost[t] as Float64Array)[k] as number;
        if (!Number.isFinite(c)) continue;
        for (let q = 0; q < K; q++) {
          const before = previous[q] as number;
          if (!Number.isFinite(before)) continue;
          const total = before + c + (matrix[q * K + k] as number);
          if (total < (here[k] as number)) {
            here[k] = total;
            from[k] = q;
          }
        }
      }
    }
    let k = (best[T - 1] as Float64Array).reduce((arg, v, q, all) => (v < (all[arg] as number) ? q : arg), 0);
    if (!Number.isFinite((best[T - 1] as Float64Array)[k] as number)) return undefined;
    for (let t = T - 1; t >= 0; t--) {
      const vector = candidates[k] as number[];
      offs.forEach((i, n) => {
        (counts[i] as number[])[t] = vector[n] as number;
      });
      k = (back[t] as Int32Array)[k] as number;
    }
  }
  return completeSolution(pm, counts);
}

/** Whether the rows keep their bounds at `values`, reading only the columns of period t. */
function rowsHold(
  lp: LinearModel,
  rows: number[],
  values: Float64Array,
  colPeriod: Int32Array,
  t: number,
): boolean {
  const { rowStarts, rowIndices, rowValues, rowLower, rowUpper } = lp;
  for (const i of rows) {
    let a = 0;
    const end = rowStarts[i + 1] as number;
    for (let k = rowStarts[i] as number; k < end; k++) {
      const j = rowIndices[k] as number;
      if (colPeriod[j] !== t) return false;
      a += (rowValues[k] as number) * (values[j] as number);
    }
    const lower = rowLower[i] as number;
    const upper = rowUpper[i] as number;
    if (a < lower - 1e-6 * Math.max(1, Math.abs(lower)) || a > upper + 1e-6 * Math.max(1, Math.abs(upper)))
      return false;
  }
  return true;
}

/** The objective of each component's columns at `values`. */
function componentCosts(lp: LinearModel, structure: Structure, values: ArrayLike<number>): Float64Array {
  return Float64Array.from(structure.components, (comp) => {
    let sum = 0;
    for (const j of comp.cols) sum += (lp.colCost[j] as number) * (values[j] as number);
    return sum;
  });
}

/** Each block's MIP at the model's own costs (start-ups between periods left out), for more DP candidates. */
async function plainBlocks(
  pm: PlanningModel,
  structure: Structure,
  relativeGap: number,
  remaining: () => number,
  caches: { previous?: BlockCache | undefined; next: BlockCache; memos: BlockMemo[] },
  components: ReadonlySet<number>,
  threads: number,
): Promise<{ values: Float64Array; mips: number }> {
  const { lp } = pm;
  const values = new Float64Array(lp.colCost.length);
  let mips = 0;
  await Promise.all(
    structure.blocks.map(async (block) => {
      if (remaining() <= 0 || !components.has(block.component)) return;
      const sub = subModel(lp, block, lp.colCost);
      const key = blockKey(sub);
      let result = caches.next.get(key) ?? caches.previous?.get(key);
      if (!result) {
        mips++;
        const solved = await solveBlock(sub, relativeGap, remaining, threads);
        result = { values: solved.values, bound: solved.bound ?? Number.NEGATIVE_INFINITY };
      }
      caches.next.set(key, result);
      const found = result.values;
      if (found)
        block.cols.forEach((j, k) => {
          values[j] = found[k] as number;
        });
    }),
  );
  return { values, mips };
}

/** Blocks with at most this many integer columns go to GLPK first: 0.1 ms a call against HiGHS's 2 ms. */
const SMALL_BLOCK = 60;

/**
 * One block's MIP, to a tenth of the plan's gap. Small blocks (scenario (a) has 288 of 3–10 columns) go to GLPK,
 * whose per-call cost is a twentieth of HiGHS's, exactly (gap 0) and briefly; HiGHS takes whatever it does not
 * close. GLPK reports no bound: at gap 0 its optimum is the bound.
 */
async function solveBlock(
  sub: LinearModel,
  relativeGap: number,
  remaining: () => number,
  threads: number,
): Promise<MipResult> {
  let integers = 0;
  for (const isInteger of sub.colInteger) if (isInteger) integers++;
  if (integers <= SMALL_BLOCK) {
    const quick = await glpkBackend.solveMip(sub, {
      timeLimitMs: Math.min(50, Math.max(1, remaining())),
      relativeGap: 0,
    });
    if (quick.status === 'optimal' && quick.values)
      return { ...quick, bound: objectiveOf(sub, quick.values) };
  }
  const options = { timeLimitMs: Math.max(1, remaining()), relativeGap: relativeGap / 10, small: true };
  return threads > 1 ? solveMipOnWorker(sub, options, threads) : highsBackend.solveMip(sub, options);
}

function blockIntegral(lp: LinearModel, block: Part, x: ArrayLike<number>): boolean {
  for (const j of block.cols) {
    if (!lp.colInteger[j]) continue;
    const v = x[j] as number;
    if (Math.abs(v - Math.round(v)) > 1e-6) return false;
  }
  return true;
}

function objectiveOf(model: LinearModel, values: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < model.colCost.length; j++) s += (model.colCost[j] as number) * (values[j] as number);
  return s;
}
