import GLPK, { type LP } from 'glpk.js/node';
import type { LinearModel } from '../linear-model.ts';
import type { LpRelaxation, MipBackend, MipOptions, MipResult } from './backend.ts';

type Glpk = Awaited<ReturnType<typeof GLPK>>;
let runtime: Promise<Glpk> | undefined;
function glpkRuntime(): Promise<Glpk> {
  runtime ??= GLPK();
  return runtime;
}

function boundType(glpk: Glpk, lower: number, upper: number): { type: number; lb: number; ub: number } {
  const hasLower = Number.isFinite(lower);
  const hasUpper = Number.isFinite(upper);
  if (hasLower && hasUpper)
    return { type: lower === upper ? glpk.GLP_FX : glpk.GLP_DB, lb: lower, ub: upper };
  if (hasLower) return { type: glpk.GLP_LO, lb: lower, ub: 0 };
  if (hasUpper) return { type: glpk.GLP_UP, lb: 0, ub: upper };
  return { type: glpk.GLP_FR, lb: 0, ub: 0 };
}

function toLp(glpk: Glpk, model: LinearModel, integer: boolean): LP {
  const names = model.colNames;
  return {
    name: model.name,
    objective: {
      direction: glpk.GLP_MIN,
      name: 'obj',
      vars: names.map((name, j) => ({ name, coef: model.colCost[j] as number })),
    },
    subjectTo: model.rowNames.map((name, i) => {
      const vars = [];
      for (let k = model.rowStarts[i] as number; k < (model.rowStarts[i + 1] as number); k++) {
        vars.push({
          name: names[model.rowIndices[k] as number] as string,
          coef: model.rowValues[k] as number,
        });
      }
      return { name, vars, bnds: boundType(glpk, model.rowLower[i] as number, model.rowUpper[i] as number) };
    }),
    bounds: names.map((name, j) => ({
      name,
      ...boundType(glpk, model.colLower[j] as number, model.colUpper[j] as number),
    })),
    ...(integer ? { generals: names.filter((_, j) => model.colInteger[j]) } : {}),
  };
}

function valuesOf(model: LinearModel, vars: Record<string, number>): Float64Array {
  return Float64Array.from(model.colNames, (name) => vars[name] ?? 0);
}

export const glpkBackend: MipBackend = {
  name: 'glpk',

  async solveMip(model: LinearModel, options: MipOptions): Promise<MipResult> {
    const glpk = await glpkRuntime();
    const result = glpk.solve(toLp(glpk, model, true), {
      msglev: glpk.GLP_MSG_OFF,
      presol: true,
      tmlim: Math.max(0.001, options.timeLimitMs / 1000),
      mipgap: options.relativeGap,
    }).result;
    if (result.status === glpk.GLP_NOFEAS) return { status: 'infeasible' };
    if (result.status === glpk.GLP_OPT) return { status: 'optimal', values: valuesOf(model, result.vars) };
    if (result.status === glpk.GLP_FEAS) return { status: 'feasible', values: valuesOf(model, result.vars) };
    return { status: 'none', message: `GLPK status ${result.status}` };
  },

  async solveRelaxation(model: LinearModel): Promise<LpRelaxation | undefined> {
    const glpk = await glpkRuntime();
    const result = glpk.solve(toLp(glpk, model, false), { msglev: glpk.GLP_MSG_OFF, presol: false }).result;
    if (result.status !== glpk.GLP_OPT || !result.dual) return undefined;
    const duals = result.dual;
    return {
      objective: result.z,
      values: valuesOf(model, result.vars),
      rowDuals: Float64Array.from(model.rowNames, (name) => duals[name] ?? 0),
    };
  },
};
