/**
 * What a simulation replays: a workload is a list of requests in arrival order, each a serverless function call
 * (runs on one container for `serviceMs`) or a GPU lease (holds `gpus` GPUs on one node for `durationMs` once it
 * is ready). Times are ms from the workload's start; `startMs` pins that start on the calendar, so that the
 * broker's schedule and the trace's day and night line up.
 */
import type { FunctionOptions } from '../../runtime/function-spec.ts';

export interface CallRequest {
  readonly kind: 'call';
  readonly atMs: number;
  readonly serviceMs: number;
}

export interface LeaseRequestSpec {
  readonly kind: 'lease';
  readonly atMs: number;
  /** GPUs on one node (the task's gang). */
  readonly gpus: number;
  readonly durationMs: number;
}

export type SimRequest = CallRequest | LeaseRequestSpec;

export interface Workload {
  /** Its name (`alibaba-sd`) or the file it came from. */
  readonly name: string;
  /** Calendar time of the workload's t = 0, ms since the epoch. */
  readonly startMs: number;
  /** Length of the trace: arrivals fall in [0, durationMs). */
  readonly durationMs: number;
  /** The GPU type its calls and leases ask for. */
  readonly gpu: string;
  /** The function the calls go to (its `gpu` is the workload's); absent when the workload has only leases. */
  readonly function?: Omit<FunctionOptions, 'gpu'>;
  /** In arrival order. */
  readonly requests: readonly SimRequest[];
}

/** Function options shared by the call workloads: long calls are allowed, and a call whose container dies runs again. */
export const CALL_FUNCTION_DEFAULTS: Omit<FunctionOptions, 'gpu'> = {
  timeoutMs: 3_600_000,
  retries: 10,
  maxContainers: 10_000,
  scaledownWindowMs: 60_000,
};

export const HOUR_MS = 3_600_000;

/** Sorts requests by arrival (stable, so equal times keep the file's order). */
export function byArrival<T extends SimRequest>(requests: T[]): T[] {
  return requests.sort((a, b) => a.atMs - b.atMs);
}
