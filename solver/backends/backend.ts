import type { LinearModel } from '../linear-model.ts';

export interface MipOptions {
  timeLimitMs: number;
  relativeGap: number;
  /** A feasible column vector to start from (MIP start); backends that cannot use one ignore it. */
  start?: Float64Array;
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
}

/** A MIP solver behind one interface. Backends are pure: same model, same options, same answer. */
export interface MipBackend {
  readonly name: 'highs' | 'glpk';
  solveMip(model: LinearModel, options: MipOptions): Promise<MipResult>;
  /** Solves the model with integrality dropped, for the bound and the marginal costs. */
  solveRelaxation(model: LinearModel): Promise<LpRelaxation | undefined>;
}
