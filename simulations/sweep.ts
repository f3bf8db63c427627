/**
 * Policy sweeps: `--sweep buffer=0,10,20,40 --sweep spotMaxShare=0.2,0.5` runs every combination (the grid) of the
 * values on top of each base policy, each named by what it changed (`buffer=10 spotMaxShare=0.5`). A key is a
 * dotted path into the policy as `gpubroker policy set` takes it (`maxTerminateFraction`, `forecast.margin`), into
 * its `function` options (`function.bufferContainers`), or a shorthand:
 *   buffer=P       the default warm buffer, P percent of demand (buffer.default.fraction = P / 100)
 *   bufferGpus=N   the default warm buffer's floor in GPUs (buffer.default.gpus = N)
 * Each point is validated as a policy file is: a value out of range names the key.
 */
import { brokerPolicySchema } from '../broker/policy.ts';
import { issueField, ValidationError } from '../lib/errors.ts';
import { parseFunctionOptions } from '../runtime/function-spec.ts';
import type { SimPolicy } from './policies.ts';
import { CALL_FUNCTION_DEFAULTS } from './workloads/workload.ts';

export interface SweepAxis {
  readonly key: string;
  readonly values: readonly (number | boolean | string)[];
}

/** Most points a sweep may have (each is a whole simulation). */
export const MAX_SWEEP_POINTS = 256;

/** `key=v1,v2,…` for each `--sweep`; numbers and booleans are read as such. */
export function parseSweep(specs: readonly string[]): SweepAxis[] {
  const axes: SweepAxis[] = [];
  for (const spec of specs) {
    const match = /^([A-Za-z][\w.]*)=(.+)$/.exec(spec.trim());
    if (!match)
      throw new ValidationError('--sweep', `"${spec}" is not key=value,value,… (e.g. buffer=0,10,20)`);
    const key = match[1] as string;
    if (axes.some((a) => a.key === key)) throw new ValidationError('--sweep', `${key} is swept twice`);
    const values = (match[2] as string).split(',').map((text) => {
      const trimmed = text.trim();
      if (trimmed === '') throw new ValidationError('--sweep', `${key} has an empty value`);
      if (trimmed === 'true' || trimmed === 'false') return trimmed === 'true';
      const number = Number(trimmed);
      return Number.isFinite(number) ? number : trimmed;
    });
    axes.push({ key, values: [...new Set(values)] });
  }
  const points = axes.reduce((n, a) => n * a.values.length, 1);
  if (points > MAX_SWEEP_POINTS)
    throw new ValidationError('--sweep', `${points} combinations; at most ${MAX_SWEEP_POINTS}`);
  return axes;
}

/** Every combination of the axes on every base policy, validated. */
export function sweepPolicies(bases: readonly SimPolicy[], axes: readonly SweepAxis[]): SimPolicy[] {
  if (axes.length === 0) return [...bases];
  let grid: [string, number | boolean | string][][] = [[]];
  for (const axis of axes)
    grid = grid.flatMap((point) => axis.values.map((v) => [...point, [axis.key, v]] as never));
  return bases.flatMap((base) =>
    grid.map((point) => {
      const label = point.map(([key, value]) => `${key}=${value}`).join(' ');
      return applyPoint(base, point, bases.length > 1 ? `${base.name} ${label}` : label);
    }),
  );
}

function applyPoint(base: SimPolicy, point: readonly [string, unknown][], name: string): SimPolicy {
  // A plain copy to set paths in; the schema below checks what it becomes.
  const broker: Record<string, unknown> = { ...structuredClone(base.broker) };
  const fn: Record<string, unknown> = { ...base.function };
  for (const [key, value] of point) {
    if (key === 'buffer') {
      if (typeof value !== 'number' || value < 0 || value > 1_000)
        throw new ValidationError('--sweep', `buffer=${value}: a percent of demand, 0 to 1000`);
      setPath(broker, ['buffer', 'default', 'fraction'], value / 100);
    } else if (key === 'bufferGpus') setPath(broker, ['buffer', 'default', 'gpus'], value);
    else if (key.startsWith('function.')) fn[key.slice('function.'.length)] = value;
    else setPath(broker, key.split('.'), value);
  }
  const parsed = brokerPolicySchema.safeParse(broker);
  if (!parsed.success) {
    const { field, message } = issueField(parsed.error.issues[0]);
    throw new ValidationError('--sweep', `${name}: ${field}: ${message}`);
  }
  try {
    parseFunctionOptions({ gpu: 'L4', ...CALL_FUNCTION_DEFAULTS, ...fn }, 'function');
  } catch (error) {
    if (error instanceof ValidationError) throw new ValidationError('--sweep', `${name}: ${error.message}`);
    throw error;
  }
  return { name, broker: parsed.data, staticPeak: base.staticPeak, function: fn as SimPolicy['function'] };
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const [i, key] of path.entries()) {
    if (key === '__proto__' || key === 'constructor' || key === 'prototype')
      throw new ValidationError('--sweep', `${path.join('.')}: not a policy field`);
    if (i === path.length - 1) node[key] = value;
    else {
      const next = node[key];
      if (typeof next !== 'object' || next === null) node[key] = {};
      node = node[key] as Record<string, unknown>;
    }
  }
}

/**
 * Indices of the results on the cost versus p99-wait Pareto frontier: no other result is at least as cheap and at
 * least as fast with one of the two strictly better. Ties (the same cost and wait) are all on it.
 */
export function paretoFrontier(points: readonly { costUsd: number; p99Ms: number }[]): Set<number> {
  const frontier = new Set<number>();
  points.forEach((p, i) => {
    const dominated = points.some(
      (q, j) =>
        j !== i &&
        q.costUsd <= p.costUsd &&
        q.p99Ms <= p.p99Ms &&
        (q.costUsd < p.costUsd || q.p99Ms < p.p99Ms),
    );
    if (!dominated) frontier.add(i);
  });
  return frontier;
}
