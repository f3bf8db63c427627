import loadHighs, { type Highs, type ModelData } from 'highs';
import type { LinearModel } from '../linear-model.ts';
import type { LpRelaxation, MipBackend, MipOptions, MipResult } from './backend.ts';

let runtime: Promise<Highs> | undefined;
/** The WASM runtime loads once per process (≈ 30 ms). */
function highsRuntime(): Promise<Highs> {
  runtime ??= loadHighs();
  return runtime;
}

function toModelData(highs: Highs, model: LinearModel, integer: boolean): ModelData {
  const inf = (v: number) =>
    v === Number.POSITIVE_INFINITY ? highs.infinity : v === Number.NEGATIVE_INFINITY ? -highs.infinity : v;
  const vt = highs.constants.variableType;
  return {
    numCols: model.colNames.length,
    numRows: model.rowNames.length,
    colCost: Float64Array.from(model.colCost),
    colLower: Float64Array.from(model.colLower, inf),
    colUpper: Float64Array.from(model.colUpper, inf),
    rowLower: Float64Array.from(model.rowLower, inf),
    rowUpper: Float64Array.from(model.rowUpper, inf),
    matrix: {
      format: 'csr',
      numRows: model.rowNames.length,
      numCols: model.colNames.length,
      starts: Int32Array.from(model.rowStarts),
      indices: Int32Array.from(model.rowIndices),
      values: Float64Array.from(model.rowValues),
    },
    ...(integer
      ? { integrality: model.colInteger.map((isInt) => (isInt ? vt.integer : vt.continuous)) }
      : {}),
  };
}

export const highsBackend: MipBackend = {
  name: 'highs',

  async solveMip(model: LinearModel, options: MipOptions): Promise<MipResult> {
    const highs = await highsRuntime();
    return highs.withModel(toModelData(highs, model, true), (m): MipResult => {
      m.options.set({
        output_flag: false,
        time_limit: options.timeLimitMs / 1000,
        mip_rel_gap: options.relativeGap,
        random_seed: 0,
        ...(options.small ? { mip_heuristic_run_feasibility_jump: false } : {}),
      });
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
      const status = m.getModelStatus();
      const codes = highs.constants.modelStatus;
      const bound = Number(m.info.get('mip_dual_bound'));
      const hasSolution = Number(m.info.get('primal_solution_status')) === 2;
      if (status === codes.infeasible) return { status: 'infeasible' };
      if (!hasSolution) return { status: 'none', message: `HiGHS status ${status}` };
      return {
        status: status === codes.optimal ? 'optimal' : 'feasible',
        values: Float64Array.from(m.getSolution().colValue),
        ...(Number.isFinite(bound) ? { bound } : {}),
      };
    });
  },

  async solveRelaxation(model: LinearModel): Promise<LpRelaxation | undefined> {
    const highs = await highsRuntime();
    return highs.withModel(toModelData(highs, model, false), (m) => {
      m.options.set({ output_flag: false, time_limit: 10 });
      m.run();
      if (m.getModelStatus() !== highs.constants.modelStatus.optimal) return undefined;
      const solution = m.getSolution();
      return {
        objective: m.getObjectiveValue(),
        values: Float64Array.from(solution.colValue),
        rowDuals: Float64Array.from(solution.rowDual),
      };
    });
  },
};
