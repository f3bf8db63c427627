/**
 * The worker thread's side of a simulation run on several threads (simulate.ts): resolves the workload from the
 * same options (so, from the same seed, the same requests), runs its one policy, and posts progress, violations,
 * stats and the result (or the error) back.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ValidationError } from '../../lib/errors.ts';
import type { SimScenario } from '../../providers/sim/scenario.ts';
import type { SimPolicy } from '../policies.ts';
import type { PolicyResult } from '../results.ts';
import { resolveWorkload, type WorkloadOptions } from '../workloads/resolve-workload.ts';
import type { FaultPlan } from './faults.ts';
import type { InvariantName } from './invariants.ts';
import { type RunStats, runSimulation } from './run-simulation.ts';

export interface PolicyRunInput {
  readonly workload: string;
  readonly resolve: WorkloadOptions;
  readonly policy: SimPolicy;
  readonly seed: number;
  readonly scale: number;
  readonly speed: number;
  readonly hours: number;
  readonly scenario?: SimScenario;
  readonly keepGoing?: boolean;
  readonly faults?: FaultPlan;
}

export type PolicyRunMessage =
  | { readonly type: 'progress'; readonly doneMs: number; readonly totalMs: number }
  | { readonly type: 'violation'; readonly name: InvariantName; readonly message: string }
  | { readonly type: 'stats'; readonly stats: RunStats }
  | { readonly type: 'result'; readonly result: PolicyResult }
  | { readonly type: 'error'; readonly name: string; readonly message: string; readonly field?: string };

const port = parentPort;
if (port) {
  const input = workerData as PolicyRunInput;
  const post = (message: PolicyRunMessage) => port.postMessage(message);
  try {
    const result = await runSimulation({
      workload: resolveWorkload(input.workload, input.resolve),
      policy: input.policy,
      seed: input.seed,
      scale: input.scale,
      speed: input.speed,
      hours: input.hours,
      ...(input.scenario ? { scenario: input.scenario } : {}),
      ...(input.keepGoing ? { keepGoing: true } : {}),
      ...(input.faults ? { faults: input.faults } : {}),
      onProgress: (doneMs, totalMs) => post({ type: 'progress', doneMs, totalMs }),
      onViolation: (name, message) => post({ type: 'violation', name, message }),
      onStats: (stats) => post({ type: 'stats', stats }),
    });
    post({ type: 'result', result });
  } catch (error) {
    const e = error as Error;
    post({
      type: 'error',
      name: e.name,
      message: e.message,
      ...(error instanceof ValidationError ? { field: error.field } : {}),
    });
  }
}
