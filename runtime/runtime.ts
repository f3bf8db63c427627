/**
 * The serverless runtime: deployed apps, their functions' input queues, and the containers that run them on the
 * fleet's free GPUs. Independent of HTTP; the broker's API calls it.
 *
 * This is its façade; the work is split by ownership, events flowing one way (executor → supervisor → reconciler
 * → supervisor):
 * - `records.ts`: the apps, functions, containers and calls, as plain data;
 * - `pools.ts`: each function's containers and the counts derived from them (asserted at each tick, never repaired);
 * - `supervisor.ts`: faces the executor (the part that lives in the agent): carries out orders, reports events;
 * - `call-ledger.ts`: every call and its outcome, with the one pure `retryDecision`;
 * - `reconciler.ts`: the only part that decides (why a container started or stopped, where an input goes), and
 *   when the tick runs;
 * - `views.ts`: what callers see.
 */
import { randomBytes } from 'node:crypto';
import pino, { type Logger } from 'pino';
import type { Clock } from '../lib/clock.ts';
import { NotFoundError, ValidationError } from '../lib/errors.ts';
import { IdGenerator } from '../lib/ids.ts';
import { Random } from '../lib/random.ts';
import { type Stopwatch, untimed } from '../lib/stopwatch.ts';
import { CallLedger, DEFAULT_RETAIN_CALLS_MS, type JournaledCall } from './call-ledger.ts';
import type { GpuCapacity } from './capacity.ts';
import type { Executor } from './executor/executor.ts';
import type { FunctionSpec } from './function-spec.ts';
import type { Meter } from './meter/meter.ts';
import { FunctionPools } from './pools.ts';
import { DEFAULT_TICK_MS, Reconciler, type RunningContainer } from './reconciler.ts';
import { AppRecords, type CallOutcome, type CallStatus, newFunctionRecord } from './records.ts';
import {
  type AppView,
  appView,
  type CallsInFlight,
  type CallView,
  type ContainerView,
  containerView,
  type GpuDemand,
  type RuntimeLogLine,
} from './views.ts';

export { DEFAULT_RETAIN_CALLS_MS } from './call-ledger.ts';
export { MAX_QUEUED_PER_SLOT, QUEUED_WORK_MS } from './pools.ts';
export {
  DEFAULT_TICK_MS,
  MAX_START_FAILURES,
  MAX_TICK_GAP_MS,
  PROBE_CONTAINERS,
  PROBE_SLOW_MS,
} from './reconciler.ts';
export type { CallError, CallOutcome, CallStatus } from './records.ts';
export type {
  AppView,
  CallsInFlight,
  CallView,
  ContainerView,
  GpuDemand,
  RuntimeLogLine,
} from './views.ts';

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
  /** Times the runtime's work: calls, ticks and what the executor's answers set off (a simulation's profile). */
  readonly stopwatch?: Stopwatch;
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

export interface CallOptions {
  /** Idempotency key: a call with a known id returns that id and enqueues nothing. */
  readonly callId?: string;
  /** Owner of the app when it is not the caller (default: the calling tenant). */
  readonly appTenantId?: string;
}

export class Runtime {
  private readonly logger: Logger;
  private readonly apps = new AppRecords();
  private readonly ledger: CallLedger;
  private readonly reconciler: Reconciler;
  private readonly stopwatch: Stopwatch;

  constructor(o: RuntimeOptions) {
    this.logger = o.logger ?? pino({ level: 'silent' });
    this.stopwatch = o.stopwatch ?? untimed;
    const ids = o.ids ?? new IdGenerator(o.clock, new Random(randomBytes(4).readUInt32LE(0)));
    this.ledger = new CallLedger({
      clock: o.clock,
      ids,
      retainCallsMs: o.retainCallsMs ?? DEFAULT_RETAIN_CALLS_MS,
      ...(o.onCallFinished ? { onCallFinished: o.onCallFinished } : {}),
    });
    this.reconciler = new Reconciler({
      ...o,
      logger: this.logger,
      ids,
      pools: new FunctionPools(o.executor),
      apps: this.apps,
      ledger: this.ledger,
      tickMs: o.tickMs ?? DEFAULT_TICK_MS,
      stopwatch: this.stopwatch,
    });
  }

  /** Starts the reconcile tick (on a `tickMs` grid from now on the Clock, at grid points where work is due). */
  start(): void {
    this.reconciler.start();
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
    const state = this.apps.getOrAdd(tenantId, app, bundleId, env);
    state.bundleId = bundleId;
    state.env = env;
    state.version++;
    for (const [name, fn] of state.functions)
      if (!(name in deployment.functions)) {
        state.functions.delete(name);
        this.reconciler.retire(fn, `function ${app}.${name} is no longer deployed`, 'drain');
      }
    for (const name of names) {
      const spec = deployment.functions[name] as FunctionSpec;
      const revision = JSON.stringify({ bundleId, env, spec });
      let fn = state.functions.get(name);
      if (!fn) {
        fn = newFunctionRecord(state, name, spec, revision);
        state.functions.set(name, fn);
      } else if (fn.revision !== revision) {
        fn.spec = spec;
        fn.revision = revision;
        this.reconciler.redeployed(fn);
      }
      this.reconciler.deployed(fn);
    }
    this.logger.info({ tenantId, app, bundleId, version: state.version }, 'app deployed');
    return appView(state);
  }

  /** The deployed app, if any. */
  getApp(tenantId: string, app: string): AppView | undefined {
    const state = this.apps.get(tenantId, app);
    return state && appView(state);
  }

  /** The longest scale-down window of the app's functions: how long its last idle container may stay up. */
  scaledownWindowMs(tenantId: string, app: string): number | undefined {
    const state = this.apps.get(tenantId, app);
    if (!state) return undefined;
    let longest = 0;
    for (const fn of state.functions.values()) longest = Math.max(longest, fn.spec.scaledownWindowMs);
    return longest;
  }

  /** Calls of a deployed app since its first deploy: finished (in any way) and in all. */
  callCounts(tenantId: string, app: string): { done: number; total: number } {
    const state = this.apps.get(tenantId, app);
    return state ? { ...state.calls } : { done: 0, total: 0 };
  }

  /** Stops an app: its containers stop now, its queued and running calls fail. Resolves when they have exited. */
  async stopApp(tenantId: string, app: string): Promise<void> {
    const state = this.apps.get(tenantId, app);
    if (!state) throw new NotFoundError(`no app "${app}"`);
    this.apps.delete(tenantId, app);
    const exits: Promise<unknown>[] = [];
    for (const fn of state.functions.values())
      exits.push(...this.reconciler.retire(fn, `app ${app} was stopped`, 'kill'));
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
    return this.stopwatch.time(() => {
      this.assertOpen();
      const owner = options.appTenantId ?? tenantId;
      const state = this.apps.get(owner, app);
      if (!state) throw new NotFoundError(`no app "${app}"`);
      const f = state.functions.get(fn);
      if (!f) throw new NotFoundError(`app "${app}" has no function "${fn}"`);
      if (!Array.isArray(args)) throw new ValidationError('args', 'must be an array');
      if (options.callId !== undefined) {
        if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(options.callId))
          throw new ValidationError('callId', 'use 1 to 128 letters, digits, "_", ".", ":" or "-"');
        const known = this.ledger.get(options.callId);
        if (known) {
          if (known.tenantId === tenantId && known.fn.app === state && known.fn.name === fn)
            return known.callId;
          throw new ValidationError('callId', 'already used by another call');
        }
      }
      const record = this.ledger.enqueue(tenantId, f, args, options.callId);
      this.reconciler.queued(f);
      return record.callId;
    });
  }

  /** Resolves when the call has finished (succeeded, failed or cancelled). */
  async result(callId: string): Promise<CallOutcome> {
    const call = this.ledger.get(callId);
    if (!call) throw new NotFoundError(`no call "${callId}"`);
    return this.ledger.outcome(call);
  }

  /** Calls queued (pending) or running, counted per tenant, app, function and status. */
  callsInFlight(): CallsInFlight[] {
    return this.ledger.inFlight();
  }

  /**
   * Cancels a pending or running call; returns false when it had already finished. A running input is left to end
   * on its container (its result is dropped): the executor contract has no way to stop one input alone.
   */
  cancel(callId: string): boolean {
    const call = this.ledger.get(callId);
    if (!call) throw new NotFoundError(`no call "${callId}"`);
    if (!this.ledger.cancel(call)) return false;
    this.reconciler.cancelled(call.fn);
    return true;
  }

  /** The call's status, without making its view (undefined for an unknown call). */
  statusOf(callId: string): CallStatus | undefined {
    return this.ledger.get(callId)?.status;
  }

  /** The calling tenant of a call, without making its view (undefined for an unknown call). */
  callerOf(callId: string): string | undefined {
    return this.ledger.get(callId)?.tenantId;
  }

  get(callId: string): CallView | undefined {
    return this.ledger.view(callId);
  }

  /** Each line a container writes, tagged with its tenant, app and function. Returns the unsubscribe. */
  onLog(listener: (line: RuntimeLogLine) => void): () => void {
    return this.reconciler.supervisor.onLog(listener);
  }

  /** Each call that finishes from now on (succeeded, failed or cancelled), by id. Returns the unsubscribe. */
  onFinished(listener: (callId: string) => void): () => void {
    return this.ledger.onFinished(listener);
  }

  /** Containers holding GPUs (placed, starting, ready or draining). */
  containers(): ContainerView[] {
    return [...this.reconciler.supervisor.liveContainers()].map(containerView);
  }

  /**
   * GPUs per GPU type and gang size: those containers hold now, plus those of the containers the functions want
   * and could not place yet (counted at their first GPU preference; regions are not reported). The broker adds the
   * region group.
   */
  demand(): GpuDemand[] {
    return this.reconciler.demand();
  }

  /**
   * Containers on these instances take no new inputs and stop once idle; the autoscaler places replacements on
   * other instances (for instances the broker drains or that will be reclaimed).
   */
  drainInstances(instanceIds: readonly string[]): void {
    this.stopwatch.time(() => this.reconciler.drainInstances(instanceIds));
  }

  /** One reconcile pass over every function (what the tick runs); throws PoolDriftError if a kept count drifted. */
  tick(): void {
    this.reconciler.tick();
  }

  /** Stops the tick and every container; calls not finished yet fail. */
  async close(): Promise<void> {
    if (this.reconciler.closed) return;
    await this.reconciler.close();
  }

  /**
   * Takes over a container that an agent still runs after this broker restarted, as if it had been placed here:
   * when its app and function are deployed with the same bundle and env, and its GPUs are free on a placeable
   * instance. Returns false otherwise (the caller stops it). Its usage is metered again from now.
   */
  adopt(container: RunningContainer): boolean {
    return this.reconciler.adopt(container);
  }

  /**
   * Takes back a call the broker's journal kept across a restart: a finished one with its outcome (answered as
   * before), an unfinished one queued again with its id (it may run once more: execution is at least once). Throws
   * NotFoundError when its app or function is no longer deployed.
   */
  restore(call: JournaledCall): void {
    this.assertOpen();
    if (this.ledger.get(call.callId)) return;
    const fn = this.apps.get(call.appTenantId, call.app)?.functions.get(call.functionName);
    if (!fn) throw new NotFoundError(`no function "${call.functionName}" of app "${call.app}"`);
    this.ledger.restore(call, fn);
    if (!call.outcome) this.reconciler.queued(fn);
  }

  private assertOpen(): void {
    if (this.reconciler.closed) throw new Error('the runtime is closed');
  }
}
