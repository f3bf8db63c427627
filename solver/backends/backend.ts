import type { LinearModel } from '../linear-model.ts';

export interface MipOptions {
  timeLimitMs: number;
  relativeGap: number;
  /** A feasible column vector to start from (MIP start); backends that cannot use one ignore it. */
  start?: Float64Array;
  /**
   * Skip heuristics whose cost dominates small models (HiGHS's feasibility jump: ≈ 25 ms on a 3-column MIP against
   * 2 ms without; RINS, RENS, root reduced-cost fixing). For the many small block MIPs of a decomposed solve.
   */
  small?: boolean;
}

export interface MipResult {
  /** optimal: within the gap; feasible: a solution, stopped by the time limit; none: no solution found. */
  status: 'optimal' | 'feasible' | 'infeasible' | 'none';
  values?: Float64Array;
  /** Proven lower bound on the objective, when the backend reports one. */
  bound?: number;
  message?: string;
}

export interface LpRelaxation {
  objective: number;
  /** The optimal point, one value per column. */
  values: Float64Array;
  /** ∂objective/∂(row bound), one per row. */
  rowDuals: Float64Array;
  /** The optimal basis, to restart a model of the same shape from (HiGHS only). */
  basis?: LpBasis;
}

/** Basis status per column and row, in HiGHS's codes. */
export interface LpBasis {
  colStatus: Int32Array;
  rowStatus: Int32Array;
}

/** A MIP solver behind one interface. Backends are pure: same model, same options, same answer. */
export interface MipBackend {
  readonly name: 'highs' | 'glpk';
  solveMip(model: LinearModel, options: MipOptions): Promise<MipResult>;
  /**
   * Solves the model with integrality dropped, for the bound and the marginal costs; from `basis` when given (a
   * model of the same shape solved before), where the backend can.
   */
  solveRelaxation(model: LinearModel, basis?: LpBasis): Promise<LpRelaxation | undefined>;
}
