/**
 * A policy comparison: one workload, one seed, several policies run one after the other on identical inputs
 * (each run builds its own broker, database, clouds and clock from the seed, so a policy's result does not depend
 * on which others ran before it).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ValidationError } from '../lib/errors.ts';
import type { SimScenario } from '../providers/sim/scenario.ts';
import type { FaultPlan } from './engine/faults.ts';
import type { InvariantName } from './engine/invariants.ts';
import type { PolicyRunInput, PolicyRunMessage } from './engine/policy-run.ts';
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
  /**
   * Policies run at once, each on a worker thread of its own; 1 (the default): one after the other in this thread.
   * `'auto'`: the machine's cores when the runs are long enough to repay a thread's start (about 3 s of loading the
   * sources), else 1 (the CLI's default). Each run depends only on its inputs and the seed: the same results.
   */
  readonly workers?: number | 'auto';
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
  const resolve = {
    seed,
    ...(o.gpu ? { gpu: o.gpu } : {}),
    ...(o.throughput ? { throughput: o.throughput } : {}),
    ...(o.hours !== undefined ? { syntheticHours: o.hours } : {}),
  };
  const workload = resolveWorkload(o.workload, resolve);
  const windowMs = windowMsOf(workload, scale, o.hours);
  const run = {
    seed,
    scale: scale.scale,
    speed: scale.speed,
    hours: windowMs / HOUR_MS,
    ...(o.scenario ? { scenario: o.scenario } : {}),
    ...(o.keepGoing ? { keepGoing: true } : {}),
    ...(o.faults ? { faults: o.faults } : {}),
  };
  const hooks = (index: number, policy: SimPolicy) => ({
    onProgress: (doneMs: number, totalMs: number) =>
      o.onProgress?.({ index, count: policies.length, policy: policy.name, doneMs, totalMs }),
    onViolation: (name: InvariantName, message: string) => o.onViolation?.(policy.name, name, message),
    onStats: (stats: RunStats) => o.onStats?.(policy.name, stats),
  });
  const long = workload.requests.length * scale.scale >= PARALLEL_FROM_REQUESTS;
  const asked = o.workers === 'auto' ? (long ? availableParallelism() : 1) : (o.workers ?? 1);
  const workers = Math.max(1, Math.min(policies.length, asked));
  const results: PolicyResult[] = [];
  if (workers === 1)
    for (const [index, policy] of policies.entries())
      results.push(await runSimulation({ workload, policy, ...run, ...hooks(index, policy) }));
  else {
    let next = 0;
    const lanes = Array.from({ length: workers }, async () => {
      while (next < policies.length) {
        const index = next++;
        const policy = policies[index] as SimPolicy;
        results[index] = await runOnWorker(
          { workload: o.workload, resolve, policy, ...run },
          hooks(index, policy),
        );
      }
    });
    await Promise.all(lanes);
  }
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

/** A policy worker's young generation: three semi-spaces' worth, as V8 sizes it, of 64 MB each. */
const YOUNG_GENERATION_MB = 192;

/** One policy's run on a worker thread of its own (engine/policy-run.ts); its errors are thrown here as there. */
function runOnWorker(
  input: PolicyRunInput,
  hooks: {
    onProgress: (doneMs: number, totalMs: number) => void;
    onViolation: (name: InvariantName, message: string) => void;
    onStats: (stats: RunStats) => void;
  },
): Promise<PolicyResult> {
  return new Promise((resolve, reject) => {
    // A simulation makes millions of short-lived objects: a young generation of 64 MB semi-spaces (V8's default
    // tops out at 16) lets far fewer of them be copied and promoted (measured: GC 16 -> 9 % of a run's time).
    const worker = new Worker(POLICY_WORKER, {
      workerData: input,
      resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB },
    });
    let settled = false;
    const settle = (act: () => void) => {
      if (settled) return;
      settled = true;
      act();
      void worker.terminate();
    };
    worker.on('message', (message: PolicyRunMessage) => {
      switch (message.type) {
        case 'progress':
          return hooks.onProgress(message.doneMs, message.totalMs);
        case 'violation':
          return hooks.onViolation(message.name, message.message);
        case 'stats':
          return hooks.onStats(message.stats);
        case 'result':
          return settle(() => resolve(message.result));
        case 'error':
          return settle(() =>
            reject(
              message.name === 'ValidationError' && message.field !== undefined
                ? new ValidationError(message.field, message.message.slice(message.field.length + 2))
                : Object.assign(new Error(message.message), { name: message.name }),
            ),
          );
      }
    });
    worker.on('error', (error) => settle(() => reject(error)));
    worker.on('exit', (code) =>
      settle(() => reject(new Error(`the simulation of ${input.policy.name} stopped (worker exit ${code})`))),
    );
  });
}

const POLICY_WORKER = new URL('./engine/policy-worker.mjs', import.meta.url);
/** Requests (× scale) from which a run is long enough for threads to pay (the whole SD trace has 26,823). */
const PARALLEL_FROM_REQUESTS = 10_000;

/** Two files named alike (`a/x.json`, `b/x.json`) become `x` and `x-2`, so that results tell them apart. */
function uniqueNames(policies: SimPolicy[]): SimPolicy[] {
  const seen = new Map<string, number>();
  return policies.map((p) => {
    const n = (seen.get(p.name) ?? 0) + 1;
    seen.set(p.name, n);
    return n === 1 ? p : { ...p, name: `${p.name}-${n}` };
  });
}
