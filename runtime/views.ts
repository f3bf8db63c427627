/**
 * What the runtime shows outside (the broker's API, its console, the simulations): read-only views made from the
 * records when asked for, never the records themselves.
 */
import type { ContainerState } from './container.ts';
import type { LogLine } from './executor/executor.ts';
import type { AppRecord, CallError, CallRecord, CallStatus, ContainerRecord } from './records.ts';

export interface AppView {
  readonly tenantId: string;
  readonly app: string;
  readonly bundleId: string;
  /** 1 on the first deploy, +1 on each re-deploy. */
  readonly version: number;
  readonly functions: string[];
}

export interface CallView {
  readonly callId: string;
  /** The calling tenant. */
  readonly tenantId: string;
  /** The app's owner. */
  readonly appTenantId: string;
  readonly app: string;
  readonly functionName: string;
  readonly status: CallStatus;
  /** Times it was given to a container. */
  readonly attempts: number;
  readonly createdAtMs: number;
  /** When a container first took it. */
  readonly startedAtMs?: number;
  readonly finishedAtMs?: number;
  /** The container of the last attempt. */
  readonly containerId?: string;
  readonly error?: CallError;
}

export interface ContainerView {
  readonly containerId: string;
  readonly tenantId: string;
  readonly app: string;
  readonly functionName: string;
  readonly state: ContainerState;
  readonly instanceId: string;
  readonly gpu: string;
  readonly gpuIndices: readonly number[];
  readonly vendor: string;
  readonly region: string;
  readonly capacityType: string;
  readonly bundleId: string;
  readonly inFlight: number;
  readonly placedAtMs: number;
  readonly readyAtMs?: number;
  readonly coldStartMs?: number;
  readonly idleSinceMs?: number;
  /** Why it is draining. */
  readonly reason?: string;
}

/** How many calls of one function one tenant has queued (`pending`) or `running`. */
export interface CallsInFlight {
  readonly tenantId: string;
  /** The app's owner (a tenant may call another's deployed function). */
  readonly appTenantId: string;
  readonly app: string;
  readonly functionName: string;
  readonly status: CallStatus;
  count: number;
}

export interface RuntimeLogLine extends LogLine {
  readonly tenantId: string;
  readonly app: string;
  readonly functionName: string;
}

/** GPUs the runtime holds plus those its queued work still needs, per GPU type and gang size. */
export interface GpuDemand {
  readonly gpu: string;
  /** Left to the broker, which knows the region groups. */
  readonly regionGroup?: string;
  /** GPUs one container needs on one node. */
  readonly gangSize: number;
  readonly gpus: number;
}

export function appView(state: AppRecord): AppView {
  return {
    tenantId: state.tenantId,
    app: state.app,
    bundleId: state.bundleId,
    version: state.version,
    functions: [...state.functions.keys()],
  };
}

export function callView(call: CallRecord): CallView {
  return {
    callId: call.callId,
    tenantId: call.tenantId,
    appTenantId: call.fn.app.tenantId,
    app: call.fn.app.app,
    functionName: call.fn.name,
    status: call.status,
    attempts: call.attempts,
    createdAtMs: call.createdAtMs,
    ...(call.startedAtMs === undefined ? {} : { startedAtMs: call.startedAtMs }),
    ...(call.finishedAtMs === undefined ? {} : { finishedAtMs: call.finishedAtMs }),
    ...(call.containerId === undefined ? {} : { containerId: call.containerId }),
    ...(call.error === undefined ? {} : { error: call.error }),
  };
}

export function containerView(c: ContainerRecord): ContainerView {
  const { lifecycle, placement, fn } = c;
  const readyAtMs = lifecycle.at('ready');
  const coldStartMs = lifecycle.coldStartMs;
  const reason = lifecycle.reason;
  return {
    containerId: c.containerId,
    tenantId: fn.app.tenantId,
    app: fn.app.app,
    functionName: fn.name,
    state: lifecycle.state,
    instanceId: placement.instanceId,
    gpu: placement.gpu,
    gpuIndices: placement.gpuIndices,
    vendor: placement.slot.vendor,
    region: placement.slot.region,
    capacityType: placement.slot.capacityType,
    bundleId: c.bundleId,
    inFlight: c.running.size,
    placedAtMs: lifecycle.at('placed') as number,
    ...(readyAtMs === undefined ? {} : { readyAtMs }),
    ...(coldStartMs === undefined ? {} : { coldStartMs }),
    ...(c.idleSinceMs === undefined ? {} : { idleSinceMs: c.idleSinceMs }),
    ...(reason === undefined ? {} : { reason }),
  };
}
