/**
 * The supervisor faces the executor (the part that lives in the agent): it carries out the reconciler's orders
 * (place and start a container, give it an input, drain it, kill it) and reports what the executor says back
 * (ready, failed to start, exited, an input settled, an input's run time) as SupervisorEvents. It decides nothing:
 * which container starts, where, and what becomes of a call is the reconciler's.
 *
 * Each container is metered as one usage interval from placement to exit. A container that exits with inputs in
 * flight is an orphan until `settleOrphans` (at a tick, `graceMs` after its exit) fails what the executor never
 * answered.
 */
import type { Logger } from 'pino';
import type { Clock } from '../lib/clock.ts';
import type { IdGenerator } from '../lib/ids.ts';
import type { Stopwatch } from '../lib/stopwatch.ts';
import type { InputResult } from './call-ledger.ts';
import type { GpuCapacity } from './capacity.ts';
import {
  type ContainerExit,
  ContainerExitedError,
  type ContainerHandle,
  type ContainerSpec,
  type Executor,
  type LogLine,
} from './executor/executor.ts';
import type { Meter } from './meter/meter.ts';
import type { ContainerPlacement } from './placement.ts';
import type { FunctionPools } from './pools.ts';
import type { CallRecord, ContainerRecord, FunctionRecord } from './records.ts';
import type { RuntimeLogLine } from './views.ts';

/** What the executor said, told to the reconciler (after the supervisor's own bookkeeping). */
export interface SupervisorEvents {
  containerReady(c: ContainerRecord): void;
  /** It failed before it was ready (its GPUs are released already). */
  containerFailedToStart(c: ContainerRecord, error: unknown): void;
  /** It exited after it was ready (released; `running` holds its inputs the executor has not answered yet). */
  containerExited(c: ContainerRecord): void;
  inputSettled(call: CallRecord, c: ContainerRecord, result: InputResult): void;
  /** The executor timed an input of the container. */
  inputRan(c: ContainerRecord, ranMs: number): void;
}

export interface SupervisorOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly ids: IdGenerator;
  readonly capacity: GpuCapacity;
  readonly executor: Executor;
  readonly meter?: Meter;
  readonly pools: FunctionPools;
  /** Absolute path of a deployed bundle. */
  readonly bundlePathOf: (bundleId: string) => string;
  /** The SHA-256 of a tenant's image layer (`PUT /v1/layers/{id}`), when it has it. */
  readonly layerSha256Of?: (tenantId: string, layerId: string) => string | undefined;
  /** How long after its exit an orphan's unanswered inputs are failed. */
  readonly graceMs: number;
  /** Times what the executor's answers set off (a simulation's profile). */
  readonly stopwatch: Stopwatch;
}

/** A container that an agent still runs after the broker restarted, taken over where it stands. */
export interface AdoptedContainer {
  readonly containerId: string;
  readonly ready: boolean;
}

export class Supervisor {
  /** Containers holding GPUs, by id. */
  private readonly live = new Map<string, ContainerRecord>();
  /** Exited containers whose in-flight inputs the executor has not settled yet. */
  private readonly orphans = new Set<ContainerRecord>();
  private readonly logListeners = new Set<(line: RuntimeLogLine) => void>();
  /** Containers placed so far (their `seq`). */
  private placed = 0;

  constructor(
    private readonly o: SupervisorOptions,
    private readonly events: SupervisorEvents,
  ) {}

  /** Containers holding GPUs (placed, starting, ready or draining), in placement order. */
  liveContainers(): IterableIterator<ContainerRecord> {
    return this.live.values();
  }

  isLive(containerId: string): boolean {
    return this.live.has(containerId);
  }

  /** Each line a container writes, tagged with its tenant, app and function. Returns the unsubscribe. */
  onLog(listener: (line: RuntimeLogLine) => void): () => void {
    this.logListeners.add(listener);
    return () => this.logListeners.delete(listener);
  }

  /**
   * Holds the placement's GPUs, opens the container's usage interval and starts it on the executor (or, for an
   * adopted one, takes over the one the agent runs).
   */
  place(fn: FunctionRecord, placement: ContainerPlacement, adopted?: AdoptedContainer): void {
    const { o } = this;
    const containerId = adopted?.containerId ?? o.ids.next('ctr');
    const { app: state, spec } = fn;
    o.capacity.allocate(containerId, placement.instanceId, placement.gpuIndices);
    const c = o.pools.join(containerId, this.placed++, fn, placement, o.clock);
    this.live.set(containerId, c);
    o.meter?.openInterval({
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
      const executor = o.executor;
      const begin =
        adopted && executor.adopt
          ? (spec: ContainerSpec) => executor.adopt?.(spec, adopted.ready) as ContainerHandle
          : (spec: ContainerSpec) => executor.start(spec);
      const image = spec.image;
      const layerSha256 = image?.layer ? o.layerSha256Of?.(state.tenantId, image.layer) : undefined;
      if (image?.layer && !layerSha256) throw new Error(`its image layer ${image.layer} is missing`);
      handle = begin({
        containerId,
        tenantId: state.tenantId,
        app: state.app,
        functionName: fn.name,
        bundleId: state.bundleId,
        bundlePath: o.bundlePathOf(state.bundleId),
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
    c.unsubscribeRan = handle.onInputRan?.((_callId, ranMs) => this.events.inputRan(c, ranMs));
    o.logger.info(
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
      () => this.o.stopwatch.time(() => this.ready(c)),
      (error) => this.o.stopwatch.time(() => this.startFailed(c, error)),
    );
    handle.exited.then(
      (exit) => this.o.stopwatch.time(() => this.exited(c, exit)),
      (error) =>
        this.o.stopwatch.time(() => this.exited(c, { code: null, signal: null, reason: messageOf(error) })),
    );
  }

  /** Gives a ready container one input. */
  run(c: ContainerRecord, call: CallRecord): void {
    this.o.pools.inputStarted(c, call);
    this.o.pools.busy(c);
    let pending: Promise<unknown>;
    try {
      pending = (c.handle as ContainerHandle).invoke(call.callId, call.args, {
        timeoutMs: c.fn.spec.timeoutMs,
      });
    } catch (error) {
      pending = Promise.reject(error);
    }
    pending.then(
      (value) => this.o.stopwatch.time(() => this.settled(call, c, { ok: true, value })),
      (error) => this.o.stopwatch.time(() => this.settled(call, c, { ok: false, error })),
    );
  }

  /** Takes no new inputs; stops once its in-flight inputs have ended. */
  drain(c: ContainerRecord, reason: string): void {
    const state = c.lifecycle.state;
    if (state === 'placed' && !c.handle) return;
    if (state === 'starting' || state === 'ready') c.lifecycle.moveTo('draining', reason);
    if (c.lifecycle.state === 'draining' && c.running.size === 0) void this.requestStop(c);
  }

  /** Stops it now, in-flight inputs or not. */
  kill(c: ContainerRecord, reason: string): Promise<unknown> {
    const state = c.lifecycle.state;
    if (state === 'starting' || state === 'ready') c.lifecycle.moveTo('draining', reason);
    return this.requestStop(c);
  }

  /** Asks the executor to stop it (once); resolves when it has exited. */
  requestStop(c: ContainerRecord): Promise<unknown> {
    if (!c.handle || c.lifecycle.ended) return Promise.resolve();
    if (!c.stopRequested) {
      c.stopRequested = true;
      c.handle.stop().then(
        (exit) => this.o.stopwatch.time(() => this.exited(c, exit)),
        (error) =>
          this.o.stopwatch.time(() => this.exited(c, { code: null, signal: null, reason: messageOf(error) })),
      );
    }
    return c.handle.exited.catch(() => undefined);
  }

  /** Fails the inputs that orphans exited `graceMs` or more ago still hold: the executor will not answer them. */
  settleOrphans(nowMs: number): void {
    for (const c of [...this.orphans])
      if (nowMs - (c.exitedAtMs as number) >= this.o.graceMs)
        for (const call of [...c.running.values()])
          this.settled(call, c, {
            ok: false,
            error: new ContainerExitedError(c.containerId, c.exitReason ?? ''),
          });
  }

  /** When the next orphan's unanswered inputs are to be failed (infinity when there is none). */
  nextOrphanDueAt(): number {
    let at = Number.POSITIVE_INFINITY;
    for (const c of this.orphans) at = Math.min(at, (c.exitedAtMs as number) + this.o.graceMs);
    return at;
  }

  private ready(c: ContainerRecord): void {
    if (c.lifecycle.state !== 'starting') return;
    c.lifecycle.moveTo('ready');
    this.o.pools.idleFrom(c, this.o.clock.now());
    this.o.logger.info(
      { containerId: c.containerId, coldStartMs: c.lifecycle.coldStartMs },
      'container ready',
    );
    this.events.containerReady(c);
  }

  private startFailed(c: ContainerRecord, error: unknown): void {
    const { lifecycle } = c;
    // Asked to stop before it was ready: its exit settles it.
    if (lifecycle.state !== 'placed' && lifecycle.state !== 'starting') return;
    lifecycle.moveTo('failed', `failed to start: ${messageOf(error)}`);
    this.release(c);
    if (c.handle && c.exitedAtMs === undefined) void c.handle.stop().catch(() => undefined);
    this.events.containerFailedToStart(c, error);
  }

  private exited(c: ContainerRecord, exit: ContainerExit): void {
    if (c.exitedAtMs !== undefined) return;
    c.exitedAtMs = this.o.clock.now();
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
      this.o.logger.info(
        { containerId: c.containerId, state: lifecycle.state, reason: exit.reason },
        'container exited',
      );
    }
    this.release(c);
    if (c.running.size > 0) this.orphans.add(c);
    this.events.containerExited(c);
  }

  private settled(call: CallRecord, c: ContainerRecord, result: InputResult): void {
    if (c.running.get(call.callId) !== call) return;
    const { pools } = this.o;
    pools.inputEnded(c, call);
    if (!result.ok && result.error instanceof ContainerExitedError) {
      c.lost = true;
      pools.uncount(c);
    }
    pools.refreshOpen(c);
    if (c.running.size === 0) {
      this.o.pools.idleFrom(c, this.o.clock.now());
      this.orphans.delete(c);
      pools.leave(c);
    }
    this.events.inputSettled(call, c, result);
  }

  /** Gives its GPUs back and closes its usage interval (once). */
  private release(c: ContainerRecord): void {
    if (c.released) return;
    c.released = true;
    this.o.capacity.free(c.containerId);
    this.o.meter?.closeInterval(c.containerId, c.usageEndsAtMs ?? this.o.clock.now());
    c.unsubscribeLog?.();
    c.unsubscribeRan?.();
    this.live.delete(c.containerId);
    this.o.pools.leave(c);
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
        this.o.logger.warn({ err: error }, 'log listener failed');
      }
    }
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
