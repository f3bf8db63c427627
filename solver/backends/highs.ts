import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import loadHighs, { type Highs, type Model, type ModelData } from 'highs';
import type { LinearModel } from '../linear-model.ts';
import type { LpBasis, LpRelaxation, MipBackend, MipOptions, MipResult } from './backend.ts';

let runtime: Promise<Highs> | undefined;
/** The WASM runtime loads once per process (≈ 30 ms). */
function highsRuntime(): Promise<Highs> {
  runtime ??= loadHighs();
  return runtime;
}

function toModelData(highs: Highs, model: LinearModel, integer: boolean): ModelData {
  const numCols = model.colCost.length;
  const numRows = model.rowLower.length;
  const finite = (from: ArrayLike<number>) => {
    const out = new Float64Array(from.length);
    for (let k = 0; k < from.length; k++) {
      const v = from[k] as number;
      out[k] =
        v === Number.POSITIVE_INFINITY
          ? highs.infinity
          : v === Number.NEGATIVE_INFINITY
            ? -highs.infinity
            : v;
    }
    return out;
  };
  const vt = highs.constants.variableType;
  return {
    numCols,
    numRows,
    colCost: Float64Array.from(model.colCost),
    colLower: finite(model.colLower),
    colUpper: finite(model.colUpper),
    rowLower: finite(model.rowLower),
    rowUpper: finite(model.rowUpper),
    matrix: {
      format: 'csr',
      numRows,
      numCols,
      starts: Int32Array.from(model.rowStarts),
      indices: Int32Array.from(model.rowIndices),
      values: Float64Array.from(model.rowValues),
    },
    ...(integer
      ? { integrality: Int32Array.from(model.colInteger, (isInt) => (isInt ? vt.integer : vt.continuous)) }
      : {}),
  };
}

function mipOptions(options: MipOptions): Record<string, number | boolean> {
  return {
    output_flag: false,
    time_limit: options.timeLimitMs / 1000,
    mip_rel_gap: options.relativeGap,
    random_seed: 0,
    // Small block MIPs close at the root: the start-up heuristics only cost time (FJ: ≈ 25 ms fixed; RINS, RENS
    // and root reduced-cost fixing: 35-60 % of the (b) blocks' time, for the same bounds).
    ...(options.small
      ? {
          mip_heuristic_run_feasibility_jump: false,
          mip_heuristic_run_rins: false,
          mip_heuristic_run_rens: false,
          mip_heuristic_run_root_reduced_cost: false,
        }
      : {}),
  };
}

/** HiGHS's answer, wherever it ran, read the same way. */
function mipResult(highs: Highs, status: number, values: Float64Array | undefined, bound: number): MipResult {
  const codes = highs.constants.modelStatus;
  if (status === codes.infeasible) return { status: 'infeasible' };
  if (!values) return { status: 'none', message: `HiGHS status ${status}` };
  return {
    status: status === codes.optimal ? 'optimal' : 'feasible',
    values,
    ...(Number.isFinite(bound) ? { bound } : {}),
  };
}

export const highsBackend: MipBackend = {
  name: 'highs',

  async solveMip(model: LinearModel, options: MipOptions): Promise<MipResult> {
    const highs = await highsRuntime();
    // Options before the model: HiGHS prints its banner on the first model passed unless told not to.
    const m = highs.createModel();
    try {
      m.options.set(mipOptions(options));
      m.passModel(toModelData(highs, model, true));
      if (options.start) m.setSolution({ colValue: options.start });
      if (options.small) m.run();
      else {
        // HiGHS checks its time limit between phases only; on large models (root cut loops, symmetry detection) it
        // overran it by seconds. The interrupt callbacks stop it at the deadline.
        const deadline = performance.now() + options.timeLimitMs;
        const stop = (event: { interrupt(): void }): undefined => {
          if (performance.now() > deadline) event.interrupt();
        };
        const channel = highs.constants.callbackType;
        m.run({ [channel.simplexInterrupt]: stop, [channel.mipInterrupt]: stop });
      }
      const hasSolution = Number(m.info.get('primal_solution_status')) === 2;
      return mipResult(
        highs,
        m.getModelStatus(),
        hasSolution ? Float64Array.from(m.getSolution().colValue) : undefined,
        Number(m.info.get('mip_dual_bound')),
      );
    } finally {
      m.dispose();
    }
  },

  async solveRelaxation(model: LinearModel, basis?: LpBasis): Promise<LpRelaxation | undefined> {
    const highs = await highsRuntime();
    const m = highs.createModel();
    try {
      m.options.set(RELAXATION_OPTIONS);
      m.passModel(toModelData(highs, model, false));
      if (basis) {
        try {
          m.setBasis({ colStatus: basis.colStatus, rowStatus: basis.rowStatus });
        } catch {
          // A basis HiGHS rejects only costs the restart: the solve starts cold.
        }
      }
      return relaxationAnswer(highs, m);
    } finally {
      m.dispose();
    }
  },
};

/**
 * The LP relaxations of the last `solveRelaxationKept` calls, kept in HiGHS with their basis and factorisation. A
 * model updated from the previous one (model.ts, updateModel) shares its matrix arrays; then only the bounds and
 * costs that moved are changed and the dual simplex goes on from where it stopped: on the benchmark's (b) model
 * ≈ 10 ms against 65-140 ms for passing the model again and restarting from its basis. Two are kept, the most
 * recently used first, so that a one-off plan between two ticks (a what-if, a cold plan to compare with) does not
 * throw away the loop's; a third model replaces the least recently used (its WebAssembly memory is freed).
 */
interface KeptLp {
  model: Model;
  matrix: { starts: Int32Array; indices: Int32Array; values: Float64Array };
  /** What HiGHS holds now, as passed (±Infinity, not HiGHS's infinity). */
  colCost: Float64Array;
  colLower: Float64Array;
  colUpper: Float64Array;
  rowLower: Float64Array;
  rowUpper: Float64Array;
}
const keptLps: KeptLp[] = [];
const MAX_KEPT_LPS = 2;

function dropKept(lp: KeptLp): void {
  const at = keptLps.indexOf(lp);
  if (at >= 0) keptLps.splice(at, 1);
  lp.model.dispose();
}

/** Indices where `next` differs from `held`, with `held` brought up to date. */
function changed(held: Float64Array, next: ArrayLike<number>): number[] {
  const at: number[] = [];
  for (let k = 0; k < held.length; k++) {
    const v = next[k] as number;
    if (!Object.is(held[k], v)) {
      at.push(k);
      held[k] = v;
    }
  }
  return at;
}

/**
 * solveRelaxation, through the kept LP when `model` has its matrix (the same arrays), else a new one kept for the
 * next call. Same answer as solveRelaxation up to the choice among optima (a degenerate LP has several).
 */
export async function solveRelaxationKept(
  model: LinearModel,
  basis?: LpBasis,
): Promise<LpRelaxation | undefined> {
  const highs = await highsRuntime();
  const finite = (v: number) =>
    v === Number.POSITIVE_INFINITY ? highs.infinity : v === Number.NEGATIVE_INFINITY ? -highs.infinity : v;
  /** The columns (or rows) whose lower or upper bound moved, ascending, with their new bounds; none: undefined. */
  const changedBounds = (
    keptLower: Float64Array,
    keptUpper: Float64Array,
    lower: ArrayLike<number>,
    upper: ArrayLike<number>,
  ) => {
    const moved = [...new Set([...changed(keptLower, lower), ...changed(keptUpper, upper)])];
    if (moved.length === 0) return undefined;
    moved.sort((a, b) => a - b);
    return {
      indices: { kind: 'set' as const, indices: Int32Array.from(moved) },
      lower: Float64Array.from(moved, (k) => finite(lower[k] as number)),
      upper: Float64Array.from(moved, (k) => finite(upper[k] as number)),
    };
  };
  const reused = keptLps.find(
    (k) =>
      k.matrix.starts === model.rowStarts &&
      k.matrix.indices === model.rowIndices &&
      k.matrix.values === model.rowValues &&
      k.colCost.length === model.colCost.length &&
      k.rowLower.length === model.rowLower.length,
  );
  let kept: KeptLp | undefined;
  try {
    if (reused) {
      kept = reused;
      keptLps.splice(keptLps.indexOf(reused), 1);
      keptLps.unshift(reused);
      const m = reused.model;
      const cost = changed(reused.colCost, model.colCost);
      if (cost.length > 0)
        m.changeColsCost(
          { kind: 'set', indices: Int32Array.from(cost) },
          Float64Array.from(cost, (j) => model.colCost[j] as number),
        );
      const cols = changedBounds(reused.colLower, reused.colUpper, model.colLower, model.colUpper);
      if (cols) m.changeColsBounds(cols.indices, cols.lower, cols.upper);
      const rows = changedBounds(reused.rowLower, reused.rowUpper, model.rowLower, model.rowUpper);
      if (rows) m.changeRowsBounds(rows.indices, rows.lower, rows.upper);
    } else {
      const m = highs.createModel();
      kept = {
        model: m,
        matrix: { starts: model.rowStarts, indices: model.rowIndices, values: model.rowValues },
        colCost: Float64Array.from(model.colCost),
        colLower: Float64Array.from(model.colLower),
        colUpper: Float64Array.from(model.colUpper),
        rowLower: Float64Array.from(model.rowLower),
        rowUpper: Float64Array.from(model.rowUpper),
      };
      keptLps.unshift(kept);
      while (keptLps.length > MAX_KEPT_LPS) dropKept(keptLps[keptLps.length - 1] as KeptLp);
      m.options.set(RELAXATION_OPTIONS);
      m.passModel(toModelData(highs, model, false));
      if (basis) {
        try {
          m.setBasis({ colStatus: basis.colStatus, rowStatus: basis.rowStatus });
        } catch {
          // A basis HiGHS rejects only costs the restart: the solve starts cold.
        }
      }
    }
    const answer = relaxationAnswer(highs, kept.model);
    if (!answer) dropKept(kept);
    return answer;
  } catch (error) {
    if (kept) dropKept(kept);
    throw error;
  }
}

/** Runs an LP model; its optimum, duals and basis, or undefined when it has no optimum. */
function relaxationAnswer(highs: Highs, m: Model): LpRelaxation | undefined {
  m.run();
  if (m.getModelStatus() !== highs.constants.modelStatus.optimal) return undefined;
  const solution = m.getSolution();
  const optimal = m.getBasis();
  return {
    objective: m.getObjectiveValue(),
    values: Float64Array.from(solution.colValue),
    rowDuals: Float64Array.from(solution.rowDual),
    basis: {
      colStatus: Int32Array.from(optimal.colStatus),
      rowStatus: Int32Array.from(optimal.rowStatus),
    },
  };
}

/**
 * Presolve off: on the benchmark's models the dual simplex alone is twice as fast (120 against 250-300 ms on (b), 8
 * against 12-15 ms on (a)); the reductions cost more than they save on an LP solved once.
 */
const RELAXATION_OPTIONS = { output_flag: false, time_limit: 10, presolve: 'off' } as const;

interface Task {
  id: number;
  /** Date.now() by which the task must end. */
  deadline: number;
  data: ModelData;
  options: Record<string, number | boolean>;
  resolve: (result: { status: number; values?: Float64Array; bound: number }) => void;
  reject: (error: Error) => void;
}

/**
 * Worker threads with a HiGHS each, for many independent MIPs at once (the blocks of a decomposed solve). Workers
 * start on first use, stay for the process, and do not keep it alive while idle.
 */
class HighsPool {
  private readonly workers: { worker: Worker; task: Task | undefined; ready: boolean }[] = [];
  private readonly queue: Task[] = [];
  private nextId = 0;

  constructor(size: number) {
    for (let k = 0; k < size; k++) {
      const worker = new Worker(new URL('./highs-worker.mjs', import.meta.url));
      const slot: { worker: Worker; task: Task | undefined; ready: boolean } = {
        worker,
        task: undefined,
        ready: false,
      };
      worker.on('message', (message: { ready?: boolean; id?: number; error?: string; status: number }) => {
        if (message.ready) slot.ready = true;
        else {
          const task = slot.task;
          slot.task = undefined;
          if (message.error) task?.reject(new Error(message.error));
          else task?.resolve(message as { status: number; values?: Float64Array; bound: number });
        }
        this.pump();
      });
      worker.on('error', (error) => {
        slot.task?.reject(error);
        slot.task = undefined;
      });
      worker.unref();
      this.workers.push(slot);
    }
  }

  solve(
    data: ModelData,
    options: Record<string, number | boolean>,
    deadline: number,
  ): Promise<{ status: number; values?: Float64Array; bound: number }> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, deadline, data, options, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.workers) {
      if (!slot.ready || slot.task) continue;
      const task = this.queue.shift();
      if (!task) break;
      slot.task = task;
      slot.worker.ref();
      slot.worker.postMessage({
        id: task.id,
        data: task.data,
        options: task.options,
        deadline: task.deadline,
      });
    }
    // Idle workers must not keep the process alive; while work waits, every worker does (one may still load).
    for (const slot of this.workers) {
      if (slot.task || this.queue.length > 0) slot.worker.ref();
      else slot.worker.unref();
    }
  }
}

let pool: HighsPool | null | undefined;
function highsPool(threads: number): HighsPool | null {
  if (pool === undefined) {
    const size = Math.min(4, threads, availableParallelism());
    pool = size >= 2 ? new HighsPool(size) : null;
  }
  return pool;
}

/**
 * solveMip on one of up to `threads` worker threads (capped at the cores and at 4; the pool is sized by the first
 * call and kept), so that independent MIPs run side by side; in this thread on a single core. No MIP start and no
 * deadline callbacks: for the small block MIPs of a decomposition.
 */
export async function solveMipOnWorker(
  model: LinearModel,
  options: MipOptions,
  threads: number,
): Promise<MipResult> {
  const workers = highsPool(threads);
  if (!workers) return highsBackend.solveMip(model, options);
  const highs = await highsRuntime();
  const answer = await workers.solve(
    toModelData(highs, model, true),
    mipOptions(options),
    Date.now() + options.timeLimitMs,
  );
  return mipResult(highs, answer.status, answer.values, answer.bound);
}
