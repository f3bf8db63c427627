/**
 * A policy comparison: one workload, one seed, several policies run one after the other on identical inputs
 * (each run builds its own broker, database, clouds and clock from the seed, so a policy's result does not depend
 * on which others ran before it).
 */
import type { SimScenario } from '../providers/sim/scenario.ts';
import type { FaultPlan } from './engine/faults.ts';
import type { InvariantName } from './engine/invariants.ts';
import { type RunStats, runSimulation, windowMsOf } from './engine/run-simulation.ts';
import { loadPolicy, type SimPolicy } from './policies.ts';
import type { PolicyResult, SimulationResults } from './results.ts';
import { paretoFrontier, parseSweep, sweepPolicies } from './sweep.ts';
import type { Throughput } from './workloads/azure-llm.ts';
import { resolveWorkload } from './workloads/resolve-workload.ts';
import { checkScale } from './workloads/scale.ts';
import { HOUR_MS } from './workloads/workload.ts';

export interface SimulateOptions {
  /** A workload name or a CSV file. */
  readonly workload: string;
  /** Policy files or built-in names (default: `buffer-10`). */
  readonly policies?: readonly string[];
  /** `key=v1,v2,…` grids over the policies (simulations/sweep.ts). */
  readonly sweep?: readonly string[];
  readonly seed?: number;
  readonly hours?: number;
  readonly scale?: number;
  readonly speed?: number;
  readonly gpu?: string;
  readonly throughput?: Throughput;
  readonly scenario?: SimScenario;
  /** Progress of policy `index` (0-based) of `count`. */
  readonly onProgress?: (progress: {
    index: number;
    count: number;
    policy: string;
    doneMs: number;
    totalMs: number;
  }) => void;
  readonly onViolation?: (policy: string, name: InvariantName, message: string) => void;
  /** Count violations and run on instead of stopping at the first. */
  readonly keepGoing?: boolean;
  /** Faults injected into every policy's run, drawn from the seed. */
  readonly faults?: FaultPlan;
  readonly onStats?: (policy: string, stats: RunStats) => void;
}

export const DEFAULT_POLICIES = ['buffer-10'];

export async function simulate(o: SimulateOptions): Promise<SimulationResults> {
  const seed = o.seed ?? 1;
  const scale = { scale: o.scale ?? 1, speed: o.speed ?? 1, seed };
  checkScale(scale);
  // Everything is validated before anything runs: a bad policy fails in a second, not after the first run.
  const policies: SimPolicy[] = sweepPolicies(
    uniqueNames((o.policies?.length ? o.policies : DEFAULT_POLICIES).map(loadPolicy)),
    parseSweep(o.sweep ?? []),
  );
  const workload = resolveWorkload(o.workload, {
    seed,
    ...(o.gpu ? { gpu: o.gpu } : {}),
    ...(o.throughput ? { throughput: o.throughput } : {}),
    ...(o.hours !== undefined ? { syntheticHours: o.hours } : {}),
  });
  const windowMs = windowMsOf(workload, scale, o.hours);
  const results: PolicyResult[] = [];
  for (const [index, policy] of policies.entries())
    results.push(
      await runSimulation({
        workload,
        policy,
        seed,
        scale: scale.scale,
        speed: scale.speed,
        hours: windowMs / HOUR_MS,
        ...(o.scenario ? { scenario: o.scenario } : {}),
        ...(o.keepGoing ? { keepGoing: true } : {}),
        ...(o.faults ? { faults: o.faults } : {}),
        onProgress: (doneMs, totalMs) =>
          o.onProgress?.({ index, count: policies.length, policy: policy.name, doneMs, totalMs }),
        onViolation: (name, message) => o.onViolation?.(policy.name, name, message),
        onStats: (stats) => o.onStats?.(policy.name, stats),
      }),
    );
  const frontier = paretoFrontier(results.map((r) => ({ costUsd: r.costUsd, p99Ms: r.waitMs.p99 })));
  return {
    workload: workload.name,
    seed,
    hours: windowMs / HOUR_MS,
    scale: scale.scale,
    startMs: workload.startMs,
    results: results.map((r, i) => ({ ...r, paretoFrontier: frontier.has(i) })),
  };
}

/** Two files named alike (`a/x.json`, `b/x.json`) become `x` and `x-2`, so that results tell them apart. */
function uniqueNames(policies: SimPolicy[]): SimPolicy[] {
  const seen = new Map<string, number>();
  return policies.map((p) => {
    const n = (seen.get(p.name) ?? 0) + 1;
    seen.set(p.name, n);
    return n === 1 ? p : { ...p, name: `${p.name}-${n}` };
  });
}
