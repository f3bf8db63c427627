/**
 * The serverless runtime: deployed apps, their functions' input queues, and the containers that run them on the
 * fleet's free GPUs. Independent of HTTP; the broker's API calls it.
 *
 * Everything happens on the Clock and on executor promises, so a run on a VirtualClock is deterministic:
 * - on a `tickMs` (1 s) grid each function is reconciled: idle containers past the scale-down window stop, missing
 *   ones are placed (best fit, `placement.ts`, on one indexed snapshot of `capacity.freeGpus()`, held with
 *   `capacity.allocate`) and started, queued inputs are dispatched to ready containers up to `concurrency`. The tick
 *   sleeps through grid points where nothing can be due (no container may stop yet, no start backoff ends, no
 *   orphaned input is to be settled) and wakes at the first one where something is, or when an event makes
 *   something due: containers waiting for GPUs wake it when the capacity says GPUs were freed (`onFreed`), never by
 *   polling; it still runs at least every minute (`MAX_TICK_GAP_MS`);
 * - a call, a deploy or a failed container asks for a reconcile of its function at the current time (one timer for
 *   a whole burst), so that work starts without waiting for the next tick;
 * - an executor promise (ready, result, exit) moves that container and its inputs on at once;
 * - where the executor queues inputs next to a container (the agents' does), a quick function's containers are
 *   given, beyond `concurrency`, about QUEUED_WORK_MS (100 ms) of inputs each (by the median run time its
 *   containers report), so that the next one starts the moment one ends instead of a round trip to the agent
 *   later; and the containers it wants are its inputs in flight over what one container holds. Until its inputs
 *   have been timed (or its first has been running for PROBE_SLOW_MS), at most PROBE_CONTAINERS are placed. A slow function's containers hold nothing beyond
 *   `concurrency`, and it wants one container per `concurrency` inputs, as where the executor queues nothing.
 *
 * An input whose container dies (ContainerExitedError: crash, kill, input timeout) runs again on another container
 * up to `retries` times (one still waiting to start there, InputNotStartedError, runs again whatever `retries`); an
 * exception of the function itself (RemoteError) fails the call at once. Each container is metered as one usage
 * interval from placement to exit.
 */
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { NotFoundError, ValidationError } from '../lib/errors.ts';
import { IdGenerator } from '../lib/ids.ts';
import { Random } from '../lib/random.ts';
import { containersToStop, desiredContainers } from './autoscaler.ts';
import type { FreeGpuSlot, GpuCapacity } from './capacity.ts';
import { ContainerLifecycle, type ContainerState } from './container.ts';
import {
  type ContainerExit,
  ContainerExitedError,
  type ContainerHandle,
  type ContainerSpec,
  type Executor,
  InputNotStartedError,
  type LogLine,
  RemoteError,
} from './executor/executor.ts';
import type { FunctionSpec } from './function-spec.ts';
import { InputQueue } from './input-queue.ts';
import type { Meter } from './meter/meter.ts';
import { type ContainerPlacement, SlotIndex } from './placement.ts';

export const DEFAULT_TICK_MS = 1_000;
/** Finished calls are kept at least this long for `get` and `result` (pruned at a tick after). */
export const DEFAULT_RETAIN_CALLS_MS = 3_600_000;
/** Consecutive containers of a function that fail to start before its queued calls fail. */
export const MAX_START_FAILURES = 3;
/** Longest wait before placing again a function whose containers fail to start (doubles from 1 s). */
const MAX_START_BACKOFF_MS = 60_000;
/**
 * Work one container may hold beyond what it runs, where its executor queues inputs (Executor.queuesInputs): about
 * this many ms of it per slot, so that a quick input is sent before the one ahead of it ends, and an input that waits
 * behind others where a newer container could have taken it waits about this long at most.
 */
export const QUEUED_WORK_MS = 100;
/** Most inputs waiting next to one container, per slot (`concurrency`). */
export const MAX_QUEUED_PER_SLOT = 256;
/**
 * Containers placed for a function whose inputs have not been timed yet, where the executor queues inputs: a probe.
 * Once one of its inputs has finished (or is still running PROBE_SLOW_MS after it was sent), it is sized by what
 * its containers can hold.
 */
export const PROBE_CONTAINERS = 8;
/**
 * A probe's first input still running this long after it was sent makes the function slow (nothing waits next to
 * its containers). Far above QUEUED_WORK_MS: the time counts the trip to the agent and back, which a busy machine
 * stretches past 100 ms (bench:agent's first map, its containers starting at load 6-8, took a quick function for
 * a slow one at 100 ms), and a quick function taken for a slow one gets a container per input in flight.
 */
export const PROBE_SLOW_MS = 1_000;
/** Run times a function's time per input is the median of (the latest ones). */
const SERVICE_SAMPLES = 63;

/**
 * Longest the tick sleeps when nothing is due: finished calls are pruned, and the kept function sizes checked, at
 * least this often.
 */
export const MAX_TICK_GAP_MS = 60_000;

export interface RuntimeOptions {
  readonly clock: Clock;
  readonly capacity: GpuCapacity;
  readonly executor: Executor;
  readonly meter?: Meter;
  /** Absolute path of a deployed bundle. */
  readonly bundlePathOf: (bundleId: string) => string;
  /** A call finished (succeeded, failed or was cancelled): the broker's call journal writes it. */
  readonly onCallFinished?: (callId: string, outcome: CallOutcome, view: () => CallView) => void;
  /** The SHA-256 of a tenant's image layer (`PUT /v1/layers/{id}`), when it has it. */
  readonly layerSha256Of?: (tenantId: string, layerId: string) => string | undefined;
  /** A container could not be placed for lack of GPUs: ask the control loop to plan again now. */
  readonly onShortfall?: () => void;
  readonly logger?: Logger;
  /** Makes container (`ctr_…`) and call (`call_…`) ids; default seeded at random. */
  readonly ids?: IdGenerator;
  readonly tickMs?: number;
  readonly retainCallsMs?: number;
}

export interface AppDeployment {
  readonly tenantId: string;
  readonly app: string;
  /** Content-addressed bundle holding the app's functions. */
  readonly bundleId: string;
  readonly functions: Readonly<Record<string, FunctionSpec>>;
  /** The tenant's environment and secrets for the app's containers. */
  readonly env?: Readonly<Record<string, string>>;
}

export interface AppView {
  readonly tenantId: string;
  readonly app: string;
  readonly bundleId: string;
  /** 1 on the first deploy, +1 on each re-deploy. */
  readonly version: number;
  readonly functions: string[];
}

export interface CallOptions {
  /** Idempotency key: a call with a known id returns that id and enqueues nothing. */
  readonly callId?: string;
  /** Owner of the app when it is not the caller (default: the calling tenant). */
  readonly appTenantId?: string;
}

export type CallStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface CallError {
  readonly message: string;
  readonly stack?: string;
  readonly name: string;
}

export type CallOutcome =
  | { readonly status: 'succeeded'; readonly value: unknown }
  | { readonly status: 'failed'; readonly error: CallError }
  | { readonly status: 'cancelled' };

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

interface AppState {
  readonly tenantId: string;
  readonly app: string;
  bundleId: string;
  env: Readonly<Record<string, string>>;
  version: number;
  readonly functions: Map<string, FunctionState>;
  /** Calls made and calls finished since the first deploy. */
  readonly calls: { done: number; total: number };
}

interface FunctionState {
  readonly app: AppState;
  readonly name: string;
  spec: FunctionSpec;
  /** bundle + env + spec: containers of another revision drain. */
  revision: string;
  readonly queue: InputQueue<CallRecord>;
  /** Containers that hold GPUs or still have inputs in flight. */
  readonly containers: Map<string, ContainerRecord>;
  /** Gone (app stopped or function removed by a re-deploy): nothing new is placed or dispatched. */
  retired: boolean;
  startFailures: number;
  startBackoffUntilMs: number;
  /**
   * The containers that count towards its size (`current`) and their inputs in flight, kept as they change: a
   * scale-up runs for every call, and counting hundreds of containers each time was most of the runtime's time.
   */
  readonly size: { containers: number; inFlight: number };
  /**
   * Its containers that can take an input now (`takesInputs`), kept as they change: while inputs queue, every call
   * and every finished input dispatches, and scanning hundreds of busy containers each time was most of the
   * runtime's time at a peak.
   */
  readonly open: Set<ContainerRecord>;
  /**
   * How long an input runs in its container (ms): the median of the latest SERVICE_SAMPLES run times the executor
   * reported (a median: an input that waited for the CPU behind a busy neighbour, or a pause of the collector,
   * does not shrink what the containers hold and so call for more of them); undefined before the first.
   */
  serviceMs: number | undefined;
  /** The latest run times, oldest overwritten first. */
  readonly ranMs: number[];
  ranCount: number;
  /** Inputs a container of it holds beyond `concurrency` (see QUEUED_WORK_MS); 0 where the executor queues none. */
  queuedPerContainer: number;
  /** While its inputs have not been timed (see PROBE_CONTAINERS): when the first was given to a container. */
  probeSinceMs: number | undefined;
}

interface ContainerRecord {
  readonly containerId: string;
  /** Placement order within the runtime: dispatch breaks ties between equally busy containers by it. */
  readonly seq: number;
  readonly fn: FunctionState;
  readonly revision: string;
  readonly bundleId: string;
  readonly lifecycle: ContainerLifecycle;
  readonly placement: ContainerPlacement;
  handle: ContainerHandle | undefined;
  readonly running: Map<string, CallRecord>;
  idleSinceMs: number | undefined;
  stopRequested: boolean;
  /** An input reported it dead (ContainerExitedError): nothing more goes to it; its exit releases it. */
  lost: boolean;
  released: boolean;
  /** Counted in its function's `size`: placed, starting or ready, not lost, of the function's revision. */
  counted: boolean;
  exitedAtMs: number | undefined;
  /** When its usage ends, where earlier than its exit was handled (ContainerExit.atMs). */
  usageEndsAtMs?: number;
  exitReason: string | undefined;
  unsubscribeLog: (() => void) | undefined;
  unsubscribeRan: (() => void) | undefined;
}

interface CallRecord {
  readonly callId: string;
  readonly tenantId: string;
  readonly fn: FunctionState;
  readonly args: readonly unknown[];
  status: CallStatus;
  attempts: number;
  /** Attempts whose container ended before the input started (InputNotStartedError): not counted as retries. */
  unstarted: number;
  readonly createdAtMs: number;
  startedAtMs: number | undefined;
  finishedAtMs: number | undefined;
  containerId: string | undefined;
  error: CallError | undefined;
  readonly done: Promise<CallOutcome>;
  readonly resolve: (outcome: CallOutcome) => void;
}

const appKey = (tenantId: string, app: string) => `${tenantId}\u0000${app}`;

export class Runtime {
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly ids: IdGenerator;
  private readonly tickMs: number;
  private readonly retainCallsMs: number;
  private readonly apps = new Map<string, AppState>();
  private readonly calls = new Map<string, CallRecord>();
  /** Finished calls in the order they finished (for pruning), from `finishedHead` on. */
  private finished: CallRecord[] = [];
  private finishedHead = 0;
  private readonly live = new Map<string, ContainerRecord>();
  /** Exited containers whose in-flight inputs the executor has not settled yet. */
  private readonly orphans = new Set<ContainerRecord>();
  private readonly logListeners = new Set<(line: RuntimeLogLine) => void>();
  private readonly finishListeners = new Set<(callId: string) => void>();
  private readonly dirty = new Set<FunctionState>();
  private kickTimer: TimerHandle | undefined;
  private tickTimer: TimerHandle | undefined;
  /** When the armed tick fires, the grid's origin (`start()`), and the last tick's time. */
  private tickAtMs = Number.POSITIVE_INFINITY;
  private tickOriginMs: number | undefined;
  private lastTickAtMs = 0;
  /** The free-GPU index of the last reconcile and the capacity answer it was built from (see `reconcile`). */
  private slotIndex: { slots: readonly FreeGpuSlot[]; index: SlotIndex } | undefined;
  /** Times `checkSize` or `checkOpen` found the kept bookkeeping wrong (a bug; tests expect 0). */
  private sizeRepairCount = 0;
  /** Containers placed so far (their `seq`). */
  private placed = 0;
  /** Containers that could not be placed at the last reconcile; onShortfall fires when this grows. */
  private unplaced = 0;
  private closed = false;
  private readonly stopListening: () => void;

  constructor(private readonly o: RuntimeOptions) {
    this.clock = o.clock;
    this.logger = o.logger ?? pino({ level: 'silent' });
    this.ids = o.ids ?? new IdGenerator(o.clock, new Random(randomBytes(4).readUInt32LE(0)));
    this.tickMs = o.tickMs ?? DEFAULT_TICK_MS;
    this.retainCallsMs = o.retainCallsMs ?? DEFAULT_RETAIN_CALLS_MS;
    // Containers waiting for GPUs are placed at the first grid point after GPUs free up, not polled for.
    this.stopListening = o.capacity.onFreed(() => {
      if (this.unplaced > 0) this.wakeAt(this.clock.now());
    });
  }

  /** Starts the reconcile tick (on a `tickMs` grid from now on the Clock, at grid points where work is due). */
  start(): void {
    if (this.tickOriginMs !== undefined || this.closed) return;
    this.tickOriginMs = this.lastTickAtMs = this.clock.now();
    this.wakeAt(this.clock.now() + this.tickMs);
  }

  /**
   * Deploys an app, or re-deploys it: later calls run the new bundle, functions and env. Containers of the previous
   * revision take no new inputs and stop once their in-flight inputs end; queued calls stay queued; the queued calls
   * of a function that is no longer deployed fail.
   */
  deployApp(deployment: AppDeployment): AppView {
    this.assertOpen();
    const { tenantId, app, bundleId } = deployment;
    if (!tenantId) throw new ValidationError('tenantId', 'must not be empty');
    if (!app) throw new ValidationError('app', 'must not be empty');
    if (!bundleId) throw new ValidationError('bundleId', 'must not be empty');
    const names = Object.keys(deployment.functions);
    if (names.length === 0) throw new ValidationError('functions', 'deploy at least one function');
    for (const name of names) if (!name) throw new ValidationError('functions', 'a function name is empty');
    const env = { ...(deployment.env ?? {}) };
    const key = appKey(tenantId, app);
    let state = this.apps.get(key);
    if (!state) {
      state = {
        tenantId,
        app,
        bundleId,
        env,
        version: 0,
        functions: new Map(),
        calls: { done: 0, total: 0 },
      };
      this.apps.set(key, state);
    }
    state.bundleId = bundleId;
    state.env = env;
    state.version++;
    for (const [name, fn] of state.functions)
      if (!(name in deployment.functions)) {
        state.functions.delete(name);
        this.retire(fn, `function ${app}.${name} is no longer deployed`, 'drain');
      }
    for (const name of names) {
      const spec = deployment.functions[name] as FunctionSpec;
      const revision = JSON.stringify({ bundleId, env, spec });
      let fn = state.functions.get(name);
      if (!fn) {
        fn = {
          app: state,
          name,
          spec,
          revision,
          queue: new InputQueue(),
          containers: new Map(),
          retired: false,
          startFailures: 0,
          startBackoffUntilMs: 0,
          size: { containers: 0, inFlight: 0 },
          open: new Set(),
          serviceMs: undefined,
          ranMs: [],
          ranCount: 0,
          queuedPerContainer: 0,
          probeSinceMs: undefined,
        };
        state.functions.set(name, fn);
      } else if (fn.revision !== revision) {
        fn.spec = spec;
        fn.revision = revision;
        fn.startFailures = 0;
        fn.startBackoffUntilMs = 0;
        // New code or options are timed afresh.
        fn.serviceMs = undefined;
        fn.ranMs.length = 0;
        fn.ranCount = 0;
        fn.queuedPerContainer = 0;
        fn.probeSinceMs = undefined;
        for (const c of fn.containers.values())
          if (c.revision !== revision) {
            this.uncount(c);
            this.drain(c, 'redeployed');
          }
      }
      this.markDirty(fn);
      this.wakeAt(this.scaleDownDueAt(fn));
    }
    this.logger.info({ tenantId, app, bundleId, version: state.version }, 'app deployed');
    return this.appView(state);
  }

  /** The deployed app, if any. */
  getApp(tenantId: string, app: string): AppView | undefined {
    const state = this.apps.get(appKey(tenantId, app));
    return state && this.appView(state);
  }

  /** The longest scale-down window of the app's functions: how long its last idle container may stay up. */
  scaledownWindowMs(tenantId: string, app: string): number | undefined {
    const state = this.apps.get(appKey(tenantId, app));
    if (!state) return undefined;
    let longest = 0;
    for (const fn of state.functions.values()) longest = Math.max(longest, fn.spec.scaledownWindowMs);
    return longest;
  }

  /** Calls of a deployed app since its first deploy: finished (in any way) and in all. */
  callCounts(tenantId: string, app: string): { done: number; total: number } {
    const state = this.apps.get(appKey(tenantId, app));
    return state ? { ...state.calls } : { done: 0, total: 0 };
  }

  /** Stops an app: its containers stop now, its queued and running calls fail. Resolves when they have exited. */
  async stopApp(tenantId: string, app: string): Promise<void> {
    const state = this.apps.get(appKey(tenantId, app));
    if (!state) throw new NotFoundError(`no app "${app}"`);
    this.apps.delete(appKey(tenantId, app));
    const exits: Promise<unknown>[] = [];
    for (const fn of state.functions.values())
      exits.push(...this.retire(fn, `app ${app} was stopped`, 'kill'));
    this.logger.info({ tenantId, app }, 'app stopped');
    await Promise.all(exits);
  }

  /** Enqueues a call of `fn` of the app; returns its call id. */
  call(
    tenantId: string,
    app: string,
    fn: string,
    args: readonly unknown[],
    options: CallOptions = {},
  ): string {
    this.assertOpen();
    const owner = options.appTenantId ?? tenantId;
    const state = this.apps.get(appKey(owner, app));
    if (!state) throw new NotFoundError(`no app "${app}"`);
    const f = state.functions.get(fn);
    if (!f) throw new NotFoundError(`app "${app}" has no function "${fn}"`);
    if (!Array.isArray(args)) throw new ValidationError('args', 'must be an array');
    if (options.callId !== undefined) {
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(options.callId))
        throw new ValidationError('callId', 'use 1 to 128 letters, digits, "_", ".", ":" or "-"');
      const known = this.calls.get(options.callId);
      if (known) {
        if (known.tenantId === tenantId && known.fn.app === state && known.fn.name === fn)
          return known.callId;
        throw new ValidationError('callId', 'already used by another call');
      }
    }
    const callId = options.callId ?? this.ids.next('call');
    let resolve!: (outcome: CallOutcome) => void;
    const done = new Promise<CallOutcome>((r) => {
      resolve = r;
    });
    const record: CallRecord = {
      callId,
      tenantId,
      fn: f,
      args: [...args],
      status: 'pending',
      attempts: 0,
      unstarted: 0,
      createdAtMs: this.clock.now(),
      startedAtMs: undefined,
      finishedAtMs: undefined,
      containerId: undefined,
      error: undefined,
      done,
      resolve,
    };
    this.calls.set(callId, record);
    state.calls.total++;
    f.queue.enqueue(record);
    this.markDirty(f);
    return callId;
  }

  /** Resolves when the call has finished (succeeded, failed or cancelled). */
  async result(callId: string): Promise<CallOutcome> {
    const call = this.calls.get(callId);
    if (!call) throw new NotFoundError(`no call "${callId}"`);
    return call.done;
  }

  /** Calls queued (pending) or running, counted per tenant, app, function and status. */
  callsInFlight(): CallsInFlight[] {
    const counts = new Map<string, CallsInFlight>();
    for (const call of this.calls.values()) {
      if (call.status !== 'pending' && call.status !== 'running') continue;
      const { app, name } = call.fn;
      const key = `${call.tenantId}\u0000${app.tenantId}\u0000${app.app}\u0000${name}\u0000${call.status}`;
      const entry = counts.get(key) ?? {
        tenantId: call.tenantId,
        appTenantId: app.tenantId,
        app: app.app,
        functionName: name,
        status: call.status,
        count: 0,
      };
      entry.count++;
      counts.set(key, entry);
    }
    return [...counts.values()];
  }

  /**
   * Cancels a pending or running call; returns false when it had already finished. A running input is left to end
   * on its container (its result is dropped): the executor contract has no way to stop one input alone.
   */
  cancel(callId: string): boolean {
    const call = this.calls.get(callId);
    if (!call) throw new NotFoundError(`no call "${callId}"`);
    if (call.status === 'pending') call.fn.queue.cancel(callId);
    else if (call.status !== 'running') return false;
    this.finish(call, { status: 'cancelled' });
    this.wakeAt(this.scaleDownDueAt(call.fn));
    return true;
  }

  /** The call's status, without making its view (undefined for an unknown call). */
  statusOf(callId: string): CallStatus | undefined {
    return this.calls.get(callId)?.status;
  }

  /** The calling tenant of a call, without making its view (undefined for an unknown call). */
  callerOf(callId: string): string | undefined {
    return this.calls.get(callId)?.tenantId;
  }

  get(callId: string): CallView | undefined {
    const call = this.calls.get(callId);
    if (!call) return undefined;
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

  /** Each line a container writes, tagged with its tenant, app and function. Returns the unsubscribe. */
  onLog(listener: (line: RuntimeLogLine) => void): () => void {
    this.logListeners.add(listener);
    return () => this.logListeners.delete(listener);
  }

  /** Each call that finishes from now on (succeeded, failed or cancelled), by id. Returns the unsubscribe. */
  onFinished(listener: (callId: string) => void): () => void {
    this.finishListeners.add(listener);
    return () => this.finishListeners.delete(listener);
  }

  /** Containers holding GPUs (placed, starting, ready or draining). */
  containers(): ContainerView[] {
    return [...this.live.values()].map((c) => {
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
    });
  }

  /**
   * GPUs per GPU type and gang size: those containers hold now, plus those of the containers the functions want
   * and could not place yet (counted at their first GPU preference; regions are not reported). The broker adds the
   * region group.
   */
  demand(): GpuDemand[] {
    const cells = new Map<string, { gpu: string; gangSize: number; gpus: number }>();
    const add = (gpu: string, gangSize: number, gpus: number) => {
      if (gpus <= 0) return;
      const key = `${gpu}|${gangSize}`;
      const cell = cells.get(key) ?? { gpu, gangSize, gpus: 0 };
      cell.gpus += gpus;
      cells.set(key, cell);
    };
    for (const c of this.live.values())
      add(c.placement.gpu, c.placement.gpuIndices.length, c.placement.gpuIndices.length);
    for (const state of this.apps.values())
      for (const fn of state.functions.values()) {
        // Containers that fail to start want no more GPUs: they want a fixed bundle.
        if (fn.startFailures > 0) continue;
        const missing = this.desired(fn) - this.current(fn).length;
        const first = fn.spec.gpus[0];
        if (first && missing > 0) add(first.gpu, first.count, missing * first.count);
      }
    return [...cells.values()];
  }

  /**
   * Containers on these instances take no new inputs and stop once idle; the autoscaler places replacements on
   * other instances (for instances the broker drains or that will be reclaimed).
   */
  drainInstances(instanceIds: readonly string[]): void {
    const ids = new Set(instanceIds);
    for (const c of [...this.live.values()])
      if (ids.has(c.placement.instanceId)) {
        this.drain(c, `instance ${c.placement.instanceId} is draining`);
        this.markDirty(c.fn);
      }
  }

  /**
   * Times the kept function sizes or open-container sets were found wrong and repaired at a tick: a bookkeeping
   * bug, so 0 is expected.
   */
  get sizeRepairs(): number {
    return this.sizeRepairCount;
  }

  /** One reconcile pass over every function (what the tick runs). */
  tick(): void {
    const now = this.clock.now();
    this.lastTickAtMs = Math.max(this.lastTickAtMs, now);
    for (const c of [...this.orphans])
      if (now - (c.exitedAtMs as number) >= this.tickMs)
        for (const call of [...c.running.values()])
          this.settled(call, c, {
            ok: false,
            error: new ContainerExitedError(c.containerId, c.exitReason ?? ''),
          });
    for (const state of this.apps.values())
      for (const fn of state.functions.values()) {
        this.endSlowProbe(fn);
        this.checkOpen(fn);
        const current = this.checkSize(fn);
        this.guard(fn, () => this.scaleDown(fn, current));
      }
    this.reconcile([...this.apps.values()].flatMap((state) => [...state.functions.values()]));
    this.prune();
  }

  /** Stops the tick and every container; calls not finished yet fail. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopListening();
    this.tickTimer?.cancel();
    this.kickTimer?.cancel();
    this.tickTimer = this.kickTimer = undefined;
    const exits: Promise<unknown>[] = [];
    for (const state of this.apps.values())
      for (const fn of state.functions.values())
        exits.push(...this.retire(fn, 'the runtime was closed', 'kill'));
    this.apps.clear();
    for (const c of [...this.live.values()]) exits.push(this.kill(c, 'the runtime was closed'));
    await Promise.all(exits);
  }

  // ——— the tick's schedule ———

  /**
   * Arms the tick for the first grid point at or after `atMs` that comes after the last tick (unless it is armed
   * for that point or an earlier one already).
   */
  private wakeAt(atMs: number): void {
    const origin = this.tickOriginMs;
    if (origin === undefined || this.closed || !(atMs < Number.POSITIVE_INFINITY)) return;
    // A moment already past (an idle container that may stop now) is due at the next grid point.
    const after = Math.max(atMs, this.clock.now(), this.lastTickAtMs + 1);
    const due = origin + Math.max(1, Math.ceil((after - origin) / this.tickMs)) * this.tickMs;
    if (this.tickTimer && this.tickAtMs <= due) return;
    this.tickTimer?.cancel();
    this.tickAtMs = due;
    this.tickTimer = this.clock.setTimer(due, () => {
      this.tickTimer = undefined;
      this.tickAtMs = Number.POSITIVE_INFINITY;
      this.tick();
      this.wakeAt(this.nextDueAt());
    });
  }

  /**
   * The first moment at which a tick would change something if no event came first (events that make work due
   * earlier call `wakeAt` themselves, freed GPUs among them): an orphaned input is to be settled, a start backoff ends, an idle container passes its scale-down window while its function holds more than it wants.
   */
  private nextDueAt(): number {
    const now = this.clock.now();
    let at = now + MAX_TICK_GAP_MS;
    for (const c of this.orphans) at = Math.min(at, (c.exitedAtMs as number) + this.tickMs);
    for (const state of this.apps.values())
      for (const fn of state.functions.values()) {
        if (fn.startBackoffUntilMs > now) at = Math.min(at, fn.startBackoffUntilMs);
        if (this.probing(fn) && fn.probeSinceMs !== undefined)
          at = Math.min(at, fn.probeSinceMs + PROBE_SLOW_MS);
        at = Math.min(at, this.scaleDownDueAt(fn));
      }
    return at;
  }

  /** When the first idle container of a function that holds more than it wants passes its scale-down window. */
  private scaleDownDueAt(fn: FunctionState): number {
    if (fn.retired || fn.size.containers <= this.desired(fn)) return Number.POSITIVE_INFINITY;
    let at = Number.POSITIVE_INFINITY;
    for (const c of fn.containers.values())
      if (c.counted && c.idleSinceMs !== undefined && c.lifecycle.state === 'ready' && c.running.size === 0)
        at = Math.min(at, c.idleSinceMs + fn.spec.scaledownWindowMs);
    return at;
  }

  // ——— reconcile ———

  private markDirty(fn: FunctionState): void {
    if (this.closed) return;
    this.dirty.add(fn);
    this.kickTimer ??= this.clock.setTimer(this.clock.now(), () => {
      this.kickTimer = undefined;
      const fns = [...this.dirty];
      this.dirty.clear();
      this.reconcile(fns);
    });
  }

  /** Places the containers the functions miss and dispatches their queued inputs. */
  private reconcile(fns: readonly FunctionState[]): void {
    // One snapshot of the free GPUs per reconcile, taken only if a container is to be placed. Its index is kept
    // for the next reconcile while the capacity hands out the same answer and nothing was placed on it.
    let snapshot: SlotIndex | undefined;
    const free = () => {
      if (snapshot) return snapshot;
      const slots = this.o.capacity.freeGpus();
      if (!this.slotIndex || slots !== this.slotIndex.slots)
        this.slotIndex = { slots, index: new SlotIndex(slots) };
      snapshot = this.slotIndex.index;
      return snapshot;
    };
    let unplaced = 0;
    for (const fn of fns) {
      if (fn.retired) continue;
      this.guard(fn, () => {
        unplaced += this.scaleUp(fn, free);
        this.dispatch(fn);
      });
    }
    // Every function is counted at each tick; a kick sees only some, so it can only raise the count.
    const grew = unplaced > this.unplaced;
    if (grew || fns.length === this.countFunctions()) this.unplaced = unplaced;
    if (grew) {
      this.logger.info({ unplaced }, 'containers wait for GPUs');
      this.o.onShortfall?.();
    }
  }

  private countFunctions(): number {
    let n = 0;
    for (const state of this.apps.values()) n += state.functions.size;
    return n;
  }

  private guard(fn: FunctionState, work: () => void): void {
    try {
      work();
    } catch (error) {
      this.logger.error({ err: error, app: fn.app.app, function: fn.name }, 'reconcile failed');
    }
  }

  /** Containers of the current revision that count towards the function's size. */
  private current(fn: FunctionState): ContainerRecord[] {
    const result: ContainerRecord[] = [];
    for (const c of fn.containers.values()) {
      const state = c.lifecycle.state;
      if (c.lost || c.revision !== fn.revision) continue;
      if (state === 'placed' || state === 'starting' || state === 'ready') result.push(c);
    }
    return result;
  }

  /** Takes a container out of its function's size, once (it left for good: drained, ended, lost, redeployed). */
  private uncount(c: ContainerRecord): void {
    if (!c.counted) return;
    c.counted = false;
    c.fn.size.containers--;
    c.fn.size.inFlight -= c.running.size;
  }

  /**
   * The kept size against a count from scratch, once a tick: a miss is a bug in the bookkeeping, logged and
   * repaired, so that scaling never goes wrong for longer than a tick.
   */
  private checkSize(fn: FunctionState): ContainerRecord[] {
    const current = this.current(fn);
    let inFlight = 0;
    for (const c of current) inFlight += c.running.size;
    if (current.length === fn.size.containers && inFlight === fn.size.inFlight) return current;
    this.logger.error(
      {
        app: fn.app.app,
        function: fn.name,
        kept: { ...fn.size },
        counted: { containers: current.length, inFlight },
      },
      'function size bookkeeping drifted; repaired',
    );
    this.sizeRepairCount++;
    const counted = new Set(current);
    for (const c of fn.containers.values()) c.counted = counted.has(c);
    fn.size.containers = current.length;
    fn.size.inFlight = inFlight;
    return current;
  }

  /** The kept `open` set against a scan, at the same moments and to the same end as `checkSize`. */
  private checkOpen(fn: FunctionState): void {
    let open = 0;
    let wrong = false;
    for (const c of fn.containers.values())
      if (this.takesInputs(c)) {
        open++;
        if (!fn.open.has(c)) wrong = true;
      }
    if (!wrong && open === fn.open.size) return;
    this.logger.error(
      { app: fn.app.app, function: fn.name, kept: fn.open.size, counted: open },
      'open container bookkeeping drifted; repaired',
    );
    this.sizeRepairCount++;
    fn.open.clear();
    for (const c of fn.containers.values()) if (this.takesInputs(c)) fn.open.add(c);
  }

  private desired(fn: FunctionState): number {
    const wanted = desiredContainers({
      inFlight: fn.size.inFlight,
      queued: fn.queue.size,
      // What one container takes at once: its slots, and the inputs that may wait next to it.
      concurrency: this.slotsOf(fn),
      bufferContainers: fn.spec.bufferContainers,
      minContainers: fn.spec.minContainers,
      maxContainers: fn.spec.maxContainers,
    });
    if (!this.probing(fn)) return wanted;
    return Math.max(fn.spec.minContainers, Math.min(wanted, PROBE_CONTAINERS));
  }

  /** Whether the function is sized by a probe: its executor queues inputs and none of its inputs was timed yet. */
  private probing(fn: FunctionState): boolean {
    return this.o.executor.queuesInputs === true && fn.serviceMs === undefined;
  }

  /**
   * Ends a probe whose first input is still running PROBE_SLOW_MS after it was sent: the function is slow (nothing
   * waits next to its containers) until its run times say otherwise.
   */
  private endSlowProbe(fn: FunctionState): void {
    if (!this.probing(fn) || fn.probeSinceMs === undefined) return;
    const running = this.clock.now() - fn.probeSinceMs;
    if (running >= PROBE_SLOW_MS) this.measure(fn, running);
  }

  /** Places and starts the containers the function misses; returns how many found no GPUs. */
  private scaleUp(fn: FunctionState, free: () => SlotIndex): number {
    if (this.clock.now() < fn.startBackoffUntilMs) return 0;
    const missing = this.desired(fn) - fn.size.containers;
    for (let i = 0; i < missing; i++) {
      const snapshot = free();
      const placement = snapshot.place({ gpus: fn.spec.gpus, regions: fn.spec.regions });
      if (!placement) return missing - i;
      // The kept index no longer matches the capacity's answer once it took a placement.
      this.slotIndex = undefined;
      snapshot.take(placement);
      this.place(fn, placement);
    }
    return 0;
  }

  private scaleDown(fn: FunctionState, current: readonly ContainerRecord[]): void {
    const stop = containersToStop(
      current.map((c) => ({
        containerId: c.containerId,
        idleSinceMs: c.lifecycle.state === 'ready' && c.running.size === 0 ? c.idleSinceMs : undefined,
      })),
      this.desired(fn),
      this.clock.now(),
      fn.spec.scaledownWindowMs,
    );
    for (const id of stop) {
      const c = fn.containers.get(id);
      if (c) this.drain(c, 'idle past the scale-down window');
    }
  }

  /** Gives queued inputs to ready containers with room, the least busy first. */
  private dispatch(fn: FunctionState): void {
    if (fn.retired || fn.queue.size === 0 || fn.open.size === 0) return;
    // The containers with room, in placement order; each input then goes to the least busy of them.
    const open = [...fn.open].sort((a, b) => a.seq - b.seq);
    while (fn.queue.size > 0 && open.length > 0) {
      let best = 0;
      for (let i = 1; i < open.length; i++)
        if ((open[i] as ContainerRecord).running.size < (open[best] as ContainerRecord).running.size)
          best = i;
      const target = open[best] as ContainerRecord;
      this.run(fn.queue.take() as CallRecord, target);
      // A container that left the ready state or filled up takes no more in this round.
      if (target.lifecycle.state !== 'ready' || target.running.size >= this.slotsOf(fn)) {
        open[best] = open[open.length - 1] as ContainerRecord;
        open.pop();
      }
    }
  }

  /** Whether a container can take an input now: ready, of its function's revision, not lost, with room. */
  private takesInputs(c: ContainerRecord): boolean {
    return (
      c.lifecycle.state === 'ready' &&
      !c.lost &&
      c.revision === c.fn.revision &&
      c.running.size < this.slotsOf(c.fn)
    );
  }

  /** Inputs one container of the function may hold: its concurrency, and those that may wait next to it. */
  private slotsOf(fn: FunctionState): number {
    return fn.spec.concurrency + fn.queuedPerContainer;
  }

  /**
   * Takes one input's run time into the function's time per input and, where the executor queues inputs,
   * resizes what waits next to each container: `concurrency` × the power of two (up to MAX_QUEUED_PER_SLOT) of
   * inputs that fit in QUEUED_WORK_MS. Powers of two: the size changes rarely, and each change re-reads which of
   * its containers have room and how many containers it wants (inputs in flight ÷ what one container holds).
   */
  private measure(fn: FunctionState, sampleMs: number): void {
    const probed = this.probing(fn);
    fn.ranMs[fn.ranCount++ % SERVICE_SAMPLES] = sampleMs;
    // The median, read again every few samples (and at the first).
    if (fn.serviceMs !== undefined && fn.ranCount % 8 !== 0) return;
    const sorted = [...fn.ranMs].sort((a, b) => a - b);
    fn.serviceMs = sorted[sorted.length >> 1] as number;
    if (!this.o.executor.queuesInputs) return;
    const fits = Math.min(MAX_QUEUED_PER_SLOT, Math.floor(QUEUED_WORK_MS / Math.max(fn.serviceMs, 0.01)));
    const queued = fits < 1 ? 0 : fn.spec.concurrency * 2 ** Math.floor(Math.log2(fits));
    if (queued === fn.queuedPerContainer && !probed) return;
    fn.queuedPerContainer = queued;
    for (const c of fn.containers.values()) this.refreshOpen(c);
    // Its size follows: what a container holds changed, or the probe is over.
    this.markDirty(fn);
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  /** Puts a container in its function's `open` set or takes it out, after anything `takesInputs` reads changed. */
  private refreshOpen(c: ContainerRecord): void {
    if (this.takesInputs(c)) c.fn.open.add(c);
    else c.fn.open.delete(c);
  }

  // ——— containers ———

  /**
   * Takes over a container that an agent still runs after this broker restarted, as if it had been placed here:
   * when its app and function are deployed with the same bundle and env, and its GPUs are free on a placeable
   * instance. Returns false otherwise (the caller stops it). Its usage is metered again from now.
   */
  adopt(container: {
    containerId: string;
    tenantId: string;
    app: string;
    functionName: string;
    bundleId: string;
    instanceId: string;
    gpuIndices: readonly number[];
    env: Readonly<Record<string, string>>;
    concurrency: number;
    ready: boolean;
  }): boolean {
    if (this.closed || !this.o.executor.adopt || this.live.has(container.containerId)) return false;
    const state = this.apps.get(appKey(container.tenantId, container.app));
    const fn = state?.functions.get(container.functionName);
    if (!state || !fn || fn.retired || state.bundleId !== container.bundleId) return false;
    if (fn.spec.concurrency !== container.concurrency || !sameEnv(state.env, container.env)) return false;
    const slot = this.o.capacity.freeGpus().find((s) => s.instanceId === container.instanceId);
    if (
      !slot ||
      container.gpuIndices.length === 0 ||
      !container.gpuIndices.every((g) => slot.free.includes(g))
    )
      return false;
    this.place(
      fn,
      { instanceId: slot.instanceId, gpu: slot.gpu, gpuIndices: [...container.gpuIndices], slot },
      { containerId: container.containerId, ready: container.ready },
    );
    this.slotIndex = undefined;
    return true;
  }

  private place(
    fn: FunctionState,
    placement: ContainerPlacement,
    adopted?: { containerId: string; ready: boolean },
  ): void {
    const containerId = adopted?.containerId ?? this.ids.next('ctr');
    const { app: state, spec } = fn;
    this.o.capacity.allocate(containerId, placement.instanceId, placement.gpuIndices);
    const c: ContainerRecord = {
      containerId,
      seq: this.placed++,
      fn,
      revision: fn.revision,
      bundleId: state.bundleId,
      lifecycle: new ContainerLifecycle(containerId, this.clock, (to) => {
        if (to === 'draining' || to === 'stopped' || to === 'failed') this.uncount(c);
        this.refreshOpen(c);
      }),
      placement,
      handle: undefined,
      running: new Map(),
      idleSinceMs: undefined,
      stopRequested: false,
      lost: false,
      released: false,
      counted: true,
      exitedAtMs: undefined,
      exitReason: undefined,
      unsubscribeLog: undefined,
      unsubscribeRan: undefined,
    };
    fn.containers.set(containerId, c);
    fn.size.containers++;
    this.live.set(containerId, c);
    this.o.meter?.openInterval({
      intervalId: containerId,
      tenantId: state.tenantId,
      kind: 'container',
      subject: `${state.app}/${fn.name}`,
      gpu: placement.gpu,
      gpus: placement.gpuIndices.length,
      cores: spec.cpu,
      memoryMib: spec.memoryMiB,
      vendor: placement.slot.vendor,
      region: placement.slot.region,
      capacityType: placement.slot.capacityType,
    });
    let handle: ContainerHandle;
    try {
      const executor = this.o.executor;
      const begin =
        adopted && executor.adopt
          ? (spec: ContainerSpec) => executor.adopt?.(spec, adopted.ready) as ContainerHandle
          : (spec: ContainerSpec) => executor.start(spec);
      const image = spec.image;
      const layerSha256 = image?.layer ? this.o.layerSha256Of?.(state.tenantId, image.layer) : undefined;
      if (image?.layer && !layerSha256) throw new Error(`its image layer ${image.layer} is missing`);
      handle = begin({
        containerId,
        tenantId: state.tenantId,
        app: state.app,
        functionName: fn.name,
        bundleId: state.bundleId,
        bundlePath: this.o.bundlePathOf(state.bundleId),
        instanceId: placement.instanceId,
        gpuIndices: placement.gpuIndices,
        // The image's variables, then the app's (its secrets win).
        env: { ...image?.env, ...state.env },
        concurrency: spec.concurrency,
        ...(image?.layer && layerSha256 ? { layer: { id: image.layer, sha256: layerSha256 } } : {}),
        cpu: spec.cpu,
        memoryMiB: spec.memoryMiB,
        network: spec.network,
      });
    } catch (error) {
      this.startFailed(c, error);
      return;
    }
    c.handle = handle;
    c.lifecycle.moveTo('starting');
    c.unsubscribeLog = handle.onLog((line) => this.emitLog(c, line));
    c.unsubscribeRan = handle.onInputRan?.((_callId, ranMs) => {
      if (c.revision === fn.revision) this.measure(fn, ranMs);
    });
    this.logger.info(
      {
        containerId,
        app: state.app,
        function: fn.name,
        instanceId: placement.instanceId,
        gpu: placement.gpu,
      },
      'container placed',
    );
    handle.ready.then(
      () => this.ready(c),
      (error) => this.startFailed(c, error),
    );
    handle.exited.then(
      (exit) => this.exited(c, exit),
      (error) => this.exited(c, { code: null, signal: null, reason: messageOf(error) }),
    );
  }

  private ready(c: ContainerRecord): void {
    if (c.lifecycle.state !== 'starting') return;
    c.lifecycle.moveTo('ready');
    c.idleSinceMs = this.clock.now();
    c.fn.startFailures = 0;
    this.logger.info({ containerId: c.containerId, coldStartMs: c.lifecycle.coldStartMs }, 'container ready');
    if (c.revision !== c.fn.revision || c.fn.retired) this.drain(c, 'redeployed');
    else this.dispatch(c.fn);
    this.wakeAt(this.scaleDownDueAt(c.fn));
  }

  private startFailed(c: ContainerRecord, error: unknown): void {
    const { lifecycle, fn } = c;
    // Asked to stop before it was ready: its exit settles it.
    if (lifecycle.state !== 'placed' && lifecycle.state !== 'starting') return;
    const reason = `failed to start: ${messageOf(error)}`;
    lifecycle.moveTo('failed', reason);
    this.release(c);
    if (c.handle && c.exitedAtMs === undefined) void c.handle.stop().catch(() => undefined);
    fn.startFailures++;
    fn.startBackoffUntilMs =
      this.clock.now() + Math.min(MAX_START_BACKOFF_MS, 1_000 * 2 ** (fn.startFailures - 1));
    this.wakeAt(fn.startBackoffUntilMs);
    this.logger.warn({ containerId: c.containerId, reason, failures: fn.startFailures }, 'container failed');
    if (fn.startFailures >= MAX_START_FAILURES) {
      const message = `${fn.app.app}.${fn.name}: ${fn.startFailures} containers in a row failed to start; last: ${messageOf(error)}`;
      for (const call of fn.queue.drain())
        this.finish(call, { status: 'failed', error: { name: 'ContainerStartError', message } });
    }
    this.markDirty(fn);
  }

  private exited(c: ContainerRecord, exit: ContainerExit): void {
    if (c.exitedAtMs !== undefined) return;
    c.exitedAtMs = this.clock.now();
    c.exitReason = exit.reason;
    // Billed until it ended, where the executor knows that was earlier (a lost agent's last heartbeat).
    if (exit.atMs !== undefined) c.usageEndsAtMs = exit.atMs;
    const { lifecycle } = c;
    // Exiting before it was ready is failing to start.
    if (lifecycle.state === 'placed' || lifecycle.state === 'starting') {
      this.startFailed(c, exit.reason);
      return;
    }
    if (!lifecycle.ended) {
      if (lifecycle.state === 'draining') lifecycle.moveTo('stopped', exit.reason);
      else lifecycle.moveTo('failed', exit.reason);
      this.logger.info(
        { containerId: c.containerId, state: lifecycle.state, reason: exit.reason },
        'container exited',
      );
    }
    this.release(c);
    if (c.running.size > 0) {
      this.orphans.add(c);
      this.wakeAt(c.exitedAtMs + this.tickMs);
    }
    if (lifecycle.state === 'failed') this.markDirty(c.fn);
  }

  /** Takes no new inputs; stops once its in-flight inputs have ended. */
  private drain(c: ContainerRecord, reason: string): void {
    const state = c.lifecycle.state;
    if (state === 'placed' && !c.handle) return;
    if (state === 'starting' || state === 'ready') c.lifecycle.moveTo('draining', reason);
    if (c.lifecycle.state === 'draining' && c.running.size === 0) void this.requestStop(c);
  }

  /** Stops it now, in-flight inputs or not. */
  private kill(c: ContainerRecord, reason: string): Promise<unknown> {
    const state = c.lifecycle.state;
    if (state === 'starting' || state === 'ready') c.lifecycle.moveTo('draining', reason);
    return this.requestStop(c);
  }

  private requestStop(c: ContainerRecord): Promise<unknown> {
    if (!c.handle || c.lifecycle.ended) return Promise.resolve();
    if (!c.stopRequested) {
      c.stopRequested = true;
      c.handle.stop().then(
        (exit) => this.exited(c, exit),
        (error) => this.exited(c, { code: null, signal: null, reason: messageOf(error) }),
      );
    }
    return c.handle.exited.catch(() => undefined);
  }

  /** Gives its GPUs back and closes its usage interval (once). */
  private release(c: ContainerRecord): void {
    if (c.released) return;
    c.released = true;
    this.o.capacity.free(c.containerId);
    this.o.meter?.closeInterval(c.containerId, c.usageEndsAtMs ?? this.clock.now());
    c.unsubscribeLog?.();
    c.unsubscribeRan?.();
    this.live.delete(c.containerId);
    if (c.running.size === 0) c.fn.containers.delete(c.containerId);
  }

  private emitLog(c: ContainerRecord, line: LogLine): void {
    const tagged: RuntimeLogLine = {
      ...line,
      tenantId: c.fn.app.tenantId,
      app: c.fn.app.app,
      functionName: c.fn.name,
    };
    for (const listener of this.logListeners) {
      try {
        listener(tagged);
      } catch (error) {
        this.logger.warn({ err: error }, 'log listener failed');
      }
    }
  }

  // ——— inputs ———

  private run(call: CallRecord, c: ContainerRecord): void {
    const now = this.clock.now();
    call.status = 'running';
    call.attempts++;
    call.startedAtMs ??= now;
    call.containerId = c.containerId;
    if (this.probing(c.fn) && c.fn.probeSinceMs === undefined) {
      c.fn.probeSinceMs = now;
      this.wakeAt(now + PROBE_SLOW_MS);
    }
    c.running.set(call.callId, call);
    if (c.counted) c.fn.size.inFlight++;
    this.refreshOpen(c);
    c.idleSinceMs = undefined;
    let pending: Promise<unknown>;
    try {
      pending = (c.handle as ContainerHandle).invoke(call.callId, call.args, {
        timeoutMs: c.fn.spec.timeoutMs,
      });
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.settled(call, c, { ok: true, value }),
      (error) => this.settled(call, c, { ok: false, error }),
    );
  }

  private settled(
    call: CallRecord,
    c: ContainerRecord,
    result: { ok: true; value: unknown } | { ok: false; error: unknown },
  ): void {
    if (c.running.get(call.callId) !== call) return;
    c.running.delete(call.callId);
    const { fn } = c;
    if (c.counted) fn.size.inFlight--;
    if (!result.ok && result.error instanceof ContainerExitedError) {
      c.lost = true;
      this.uncount(c);
    }
    this.refreshOpen(c);
    if (c.running.size === 0) {
      c.idleSinceMs = this.clock.now();
      this.orphans.delete(c);
      if (c.released) fn.containers.delete(c.containerId);
    }
    // Not cancelled nor failed by a stop meanwhile, and not already given to another container.
    if (call.status === 'running' && call.containerId === c.containerId) {
      if (result.ok) this.finish(call, { status: 'succeeded', value: result.value });
      else if (result.error instanceof RemoteError)
        this.finish(call, {
          status: 'failed',
          error: {
            name: result.error.remoteName,
            message: result.error.message,
            ...(result.error.remoteStack === undefined ? {} : { stack: result.error.remoteStack }),
          },
        });
      else if (result.error instanceof InputNotStartedError && !fn.retired) {
        // Nothing of it ran: it goes to another container, whatever `retries` says.
        call.status = 'pending';
        call.unstarted++;
        fn.queue.enqueue(call, { retry: true });
        this.markDirty(fn);
      } else if (
        result.error instanceof ContainerExitedError &&
        !fn.retired &&
        call.attempts - call.unstarted <= fn.spec.retries
      ) {
        call.status = 'pending';
        fn.queue.enqueue(call, { retry: true });
        this.logger.info(
          { callId: call.callId, attempt: call.attempts, reason: result.error.reason },
          'retrying',
        );
        this.markDirty(fn);
      } else {
        const error = result.error instanceof Error ? result.error : new Error(String(result.error));
        const message =
          error instanceof ContainerExitedError && call.attempts > 1
            ? `${error.message} (after ${call.attempts} attempts)`
            : error.message;
        this.finish(call, { status: 'failed', error: { name: error.name, message } });
      }
    }
    if (c.lifecycle.state === 'draining' && c.running.size === 0) void this.requestStop(c);
    else if (c.lifecycle.state === 'ready') this.dispatch(fn);
    // Fewer inputs in flight may leave the function holding more containers than it wants.
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  private finish(call: CallRecord, outcome: CallOutcome): void {
    call.status = outcome.status;
    call.finishedAtMs = this.clock.now();
    if (outcome.status === 'failed') call.error = outcome.error;
    call.fn.app.calls.done++;
    this.finished.push(call);
    call.resolve(outcome);
    // The view only when asked for: most finished calls (a simulation's millions) are not journaled.
    this.o.onCallFinished?.(call.callId, outcome, () => this.get(call.callId) as CallView);
    for (const listener of this.finishListeners) listener(call.callId);
  }

  /**
   * Takes back a call the broker's journal kept across a restart: a finished one with its outcome (answered as
   * before), an unfinished one queued again with its id (it may run once more: execution is at least once). Throws
   * NotFoundError when its app or function is no longer deployed.
   */
  restore(call: {
    callId: string;
    tenantId: string;
    appTenantId: string;
    app: string;
    functionName: string;
    args: readonly unknown[];
    createdAtMs: number;
    attempts: number;
    startedAtMs?: number;
    finishedAtMs?: number;
    outcome?: CallOutcome;
  }): void {
    this.assertOpen();
    if (this.calls.has(call.callId)) return;
    const state = this.apps.get(appKey(call.appTenantId, call.app));
    const fn = state?.functions.get(call.functionName);
    if (!state || !fn) throw new NotFoundError(`no function "${call.functionName}" of app "${call.app}"`);
    let resolve!: (outcome: CallOutcome) => void;
    const done = new Promise<CallOutcome>((r) => {
      resolve = r;
    });
    const record: CallRecord = {
      callId: call.callId,
      tenantId: call.tenantId,
      fn,
      args: [...call.args],
      status: call.outcome?.status ?? 'pending',
      attempts: call.attempts,
      unstarted: 0,
      createdAtMs: call.createdAtMs,
      startedAtMs: call.startedAtMs,
      finishedAtMs: call.outcome ? (call.finishedAtMs ?? this.clock.now()) : undefined,
      containerId: undefined,
      error: call.outcome?.status === 'failed' ? call.outcome.error : undefined,
      done,
      resolve,
    };
    this.calls.set(call.callId, record);
    state.calls.total++;
    if (call.outcome) {
      state.calls.done++;
      this.finished.push(record);
      resolve(call.outcome);
      return;
    }
    fn.queue.enqueue(record);
    this.markDirty(fn);
  }

  /** Retires a function: no more placement or dispatch; its queued (and with `kill`, running) calls fail. */
  private retire(fn: FunctionState, message: string, how: 'drain' | 'kill'): Promise<unknown>[] {
    fn.retired = true;
    this.dirty.delete(fn);
    const error: CallError = { name: 'Stopped', message };
    for (const call of fn.queue.drain()) this.finish(call, { status: 'failed', error });
    const exits: Promise<unknown>[] = [];
    for (const c of [...fn.containers.values()]) {
      if (how === 'drain') {
        this.drain(c, message);
        continue;
      }
      for (const call of c.running.values())
        if (call.status === 'running' && call.containerId === c.containerId)
          this.finish(call, { status: 'failed', error });
      exits.push(this.kill(c, message));
    }
    return exits;
  }

  /** Forgets calls finished longer than `retainCallsMs` ago; O(calls forgotten), the array is compacted rarely. */
  private prune(): void {
    const before = this.clock.now() - this.retainCallsMs;
    let head = this.finishedHead;
    for (; head < this.finished.length; head++) {
      const call = this.finished[head] as CallRecord;
      if ((call.finishedAtMs as number) > before) break;
      this.calls.delete(call.callId);
    }
    this.finishedHead = head;
    if (head > 1024 && head * 2 > this.finished.length) {
      this.finished = this.finished.slice(head);
      this.finishedHead = 0;
    }
  }

  private appView(state: AppState): AppView {
    return {
      tenantId: state.tenantId,
      app: state.app,
      bundleId: state.bundleId,
      version: state.version,
      functions: [...state.functions.keys()],
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the runtime is closed');
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sameEnv(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
