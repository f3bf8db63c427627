import { stopwatch } from '../lib/clock.ts';
import { ValidationError } from '../lib/errors.ts';
import { microsToUsd, roundUsdToMicro } from '../lib/money.ts';
import type { LpRelaxation, MipResult } from './backends/backend.ts';
import { glpkBackend } from './backends/glpk.ts';
import { greedyCounts } from './backends/greedy.ts';
import { highsBackend } from './backends/highs.ts';
import { explainPlan } from './explain.ts';
import { integralPoint, objectiveAt } from './linear-model.ts';
import { buildModel, type PlanningModel, updateModel } from './model.ts';
import { reduceInput } from './reduce.ts';
import { completeSolution, readCounts } from './solution.ts';
import { solvePlanningModel } from './solve.ts';
import type { BackendName, Plan, PlanInput, PlanStatus } from './types.ts';
import type { WarmState } from './warm.ts';

/**
 * One capacity plan: reduce the input, build the model, solve it with the policy's backend (HiGHS: by
 * decomposition, solve.ts), fall back to the greedy plan when the solve fails or finds nothing in time, and explain
 * the result.
 */
export async function planCapacity(input: PlanInput): Promise<Plan> {
  const elapsed = stopwatch();
  const pm = planningModel(input);
  const { solver } = input.policy;

  // The greedy plan is the fallback and the source of cost bounds; it is computed only when one of them is needed.
  let greedy: { values: Float64Array; objective: number } | undefined;
  const greedyPlan = () => {
    if (!greedy) {
      const greedyValues = completeSolution(pm, greedyCounts(pm.input));
      greedy = { values: greedyValues, objective: objectiveAt(pm.lp, greedyValues) };
    }
    return greedy;
  };
  if (hasUnboundedX(pm)) boundByCost(pm, greedyPlan().objective);
  let backend: BackendName = solver.backend;
  let status: PlanStatus = 'feasible';
  let values: Float64Array | undefined;
  let fallbackReason: string | undefined;
  let mipBound: number | undefined;

  let relaxation: LpRelaxation | undefined;
  let warmStart: WarmState | undefined;
  if (solver.backend !== 'greedy') {
    let result: MipResult;
    try {
      if (solver.backend === 'highs') {
        const solved = await solvePlanningModel(pm, {
          timeLimitMs: solver.timeLimitMs,
          relativeGap: solver.relativeGap,
          ...(input.previous?.warmStart ? { warm: input.previous.warmStart } : {}),
          threads: input.threads ?? 1,
        });
        relaxation = solved.relaxation;
        warmStart = solved.warm;
        result = solved;
      } else {
        // GLPK solves the model whole: the independent check on the decomposition.
        relaxation = await glpkBackend.solveRelaxation(pm.lp).catch(() => undefined);
        const integral = relaxation && integralPoint(pm.lp, relaxation.values);
        result = integral
          ? { status: 'optimal', values: integral, bound: relaxation?.objective as number }
          : await glpkBackend.solveMip(pm.lp, {
              timeLimitMs: solver.timeLimitMs,
              relativeGap: solver.relativeGap,
            });
      }
    } catch (error) {
      result = { status: 'none', message: (error as Error).message };
    }
    const incumbent = result.values ? completeSolution(pm, readCounts(pm, result.values)) : undefined;
    if (incumbent && result.status !== 'optimal' && objectiveAt(pm.lp, incumbent) > greedyPlan().objective) {
      // Stopped by the time limit with an incumbent worse than the greedy plan: the greedy plan is the better answer.
      backend = 'greedy';
      status = 'fallback';
      fallbackReason = `${solver.backend}: its incumbent at the time limit cost more than the greedy plan`;
      mipBound = result.bound;
    } else if (incumbent) {
      values = incumbent;
      status = result.status === 'optimal' ? 'optimal' : 'feasible';
      mipBound = result.bound;
    } else {
      backend = 'greedy';
      status = result.status === 'infeasible' ? 'infeasible' : 'fallback';
      fallbackReason = `${solver.backend}: ${result.status === 'infeasible' ? 'the model is infeasible (hard rules conflict: minimum lifetime, quotas, budget or shares against the fleet held)' : (result.message ?? 'no solution within the time limit')}`;
    }
  } else {
    relaxation = await highsBackend.solveRelaxation(pm.lp).catch(() => undefined);
  }
  values ??= greedyPlan().values;

  const objective = objectiveAt(pm.lp, values);
  const bound = Math.min(
    objective,
    Math.max(mipBound ?? Number.NEGATIVE_INFINITY, relaxation?.objective ?? Number.NEGATIVE_INFINITY),
  );
  const plan = assemblePlan(pm, values, input.offerings.length, {
    status,
    backend,
    ...(fallbackReason ? { fallbackReason } : {}),
    objective,
    bound: Number.isFinite(bound) ? bound : objective,
    solveMs: 0,
    explanation: explainPlan(pm, values, relaxation),
  });
  plan.solveMs = elapsed();
  if (warmStart) Object.defineProperty(plan, 'warmStart', { value: warmStart, enumerable: false });
  return plan;
}

function countIntegers(lp: PlanningModel['lp']): number {
  let n = 0;
  for (const isInteger of lp.colInteger) if (isInteger) n++;
  return n;
}

/** Whether reduce.ts left some x column without an upper bound (spread and churn rules). */
function hasUnboundedX(pm: PlanningModel): boolean {
  const upper = pm.lp.colUpper;
  for (const cols of pm.x) for (const j of cols) if (!Number.isFinite(upper[j] as number)) return true;
  return false;
}

/**
 * Every optimal plan costs no more than the greedy one, and each instance-period costs at least L·p on its own,
 * so x ≤ ⌊greedy objective / (L·p)⌋. Tightens the columns that reduce.ts left unbounded (spread and churn rules).
 */
function boundByCost(pm: PlanningModel, greedyObjective: number): void {
  pm.x.forEach((cols) => {
    for (const j of cols) {
      const cost = pm.lp.colCost[j] as number;
      if (cost <= 0 || Number.isFinite(pm.lp.colUpper[j])) continue;
      pm.lp.colUpper[j] = Math.max(pm.lp.colLower[j] as number, Math.floor(greedyObjective / cost + 1e-9));
    }
  });
}

/**
 * The model a plan solves (after reduction), e.g. to export it in LP format. With the previous plan passed back,
 * its model is updated in place of a new one when the structure is the same (see updateModel).
 */
export function planningModel(input: PlanInput): PlanningModel {
  const modelInput = reduceInput(input, validatePeriods(input));
  const previous = input.previous?.warmStart?.model;
  return previous ? updateModel(previous, modelInput) : buildModel(modelInput);
}

function validatePeriods(input: PlanInput): number {
  if (input.demand.length === 0) throw new ValidationError('demand', 'at least one demand class is needed');
  const periods = input.demand[0]?.gpus.length ?? 0;
  if (periods < 1) throw new ValidationError('demand.gpus', 'at least one period is needed');
  for (const d of input.demand) {
    if (d.gpus.length !== periods)
      throw new ValidationError('demand.gpus', 'every demand class needs the same number of periods');
    if (!Number.isSafeInteger(d.gangSize) || d.gangSize < 1)
      throw new ValidationError('demand.gangSize', `must be a positive integer (${d.gpu})`);
    for (const g of d.gpus) {
      if (!Number.isSafeInteger(g) || g < 0)
        throw new ValidationError('demand.gpus', `must be non-negative integers (${d.gpu}/${d.regionGroup})`);
      if (g % d.gangSize !== 0)
        throw new ValidationError(
          'demand.gpus',
          `${g} ${d.gpu} GPUs is not a whole number of ${d.gangSize}-GPU gangs`,
        );
    }
  }
  const keys = new Set(input.demand.map((d) => `${d.gpu}/${d.regionGroup}/${d.gangSize}`));
  if (keys.size !== input.demand.length)
    throw new ValidationError('demand', 'each (GPU, region group, gang size) may appear once');
  return periods;
}

type Outcome = Pick<
  Plan,
  'status' | 'backend' | 'fallbackReason' | 'objective' | 'bound' | 'solveMs' | 'explanation'
>;

function assemblePlan(pm: PlanningModel, values: Float64Array, catalogSize: number, outcome: Outcome): Plan {
  const { input, lp, periodHours } = pm;
  const { offerings, policy, periods } = input;
  const counts = readCounts(pm, values);
  const price = (i: number) =>
    offerings[i]?.capacityType === 'reserved' ? 0 : microsToUsd(offerings[i]?.microsPerHour as number);

  const { colCost } = lp;
  const sumCols = (groups: readonly (readonly number[])[]) => {
    let acc = 0;
    for (const cols of groups) for (const j of cols) acc += (colCost[j] as number) * (values[j] as number);
    return acc;
  };
  let instancesUsd = 0;
  pm.x.forEach((cols, i) => {
    const hourly = periodHours * price(i);
    let offering = 0;
    for (const j of cols) offering += hourly * (values[j] as number);
    instancesUsd += offering;
  });
  const pools = offerings.flatMap((o, i) => {
    const count = counts[i]?.[0] ?? 0;
    if (count === 0) return [];
    const usdPerHour = roundUsdToMicro(price(i) * count);
    return [
      {
        offeringId: o.id,
        vendor: o.vendor,
        region: o.region,
        regionGroup: o.regionGroup,
        instanceType: o.instanceType,
        gpu: o.gpu,
        gpusPerInstance: o.gpusPerInstance,
        capacityType: o.capacityType,
        count,
        usdPerHour,
      },
    ];
  });
  const unmet = input.demand.flatMap((d, di) => {
    const gpus = (pm.unmet[di] ?? []).map((j) => Math.round(values[j] as number));
    return gpus.some((g) => g > 0)
      ? [{ gpu: d.gpu, regionGroup: d.regionGroup, gangSize: d.gangSize, gpus }]
      : [];
  });

  return {
    ...outcome,
    gap: Math.max(0, (outcome.objective - outcome.bound) / Math.max(Math.abs(outcome.objective), 1e-9)),
    periodMinutes: policy.periodMinutes,
    periods,
    targets: offerings.flatMap((o, i) =>
      counts[i]?.some((c) => c > 0) ? [{ offeringId: o.id, counts: counts[i] as number[] }] : [],
    ),
    actions: offerings.flatMap((o, i) => {
      const delta = (counts[i]?.[0] ?? 0) - (input.current[i] ?? 0);
      return delta === 0
        ? []
        : [{ offeringId: o.id, provision: Math.max(0, delta), terminate: Math.max(0, -delta) }];
    }),
    pools,
    cost: {
      usdPerHour: roundUsdToMicro(pools.reduce((acc, p) => acc + p.usdPerHour, 0)),
      instancesUsd: roundUsdToMicro(instancesUsd),
      startupUsd: roundUsdToMicro(sumCols(pm.add)),
      // An x column's cost is its hourly price plus, for spot, the expected interruption cost.
      interruptionUsd: roundUsdToMicro(sumCols(pm.x) - instancesUsd),
      unmetPenaltyUsd: roundUsdToMicro(sumCols(pm.unmet)),
      bufferPenaltyUsd: roundUsdToMicro(sumCols(pm.bufferShort.map((b) => b.cols))),
    },
    unmet,
    unmetGpus: unmet.reduce((acc, u) => acc + (u.gpus[0] ?? 0), 0),
    bufferShortfallGpus: pm.bufferShort.reduce(
      (acc, b) => acc + Math.round(values[b.cols[0] as number] as number),
      0,
    ),
    model: {
      offerings: catalogSize,
      offeringsAfterReduction: offerings.length,
      variables: lp.colCost.length,
      integers: countIntegers(lp),
      constraints: lp.rowLower.length,
    },
  };
}
