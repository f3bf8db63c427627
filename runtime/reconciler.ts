/**
 * The reconciler: the only part of the runtime that decides. Why a container started (a function wanted more than
 * it held, or one an agent still ran was adopted), why it drained or stopped, which container an input goes to,
 * what becomes of a call after an attempt, and when all that is looked at again: it is here. The supervisor carries
 * the orders out and reports back (SupervisorEvents); the pools and the ledger keep the books.
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
 *   containers report, `pools.ts`), so that the next one starts the moment one ends instead of a round trip to the
 *   agent later; and the containers it wants are its inputs in flight over what one container holds. Until its
 *   inputs have been timed (or its first has been running for PROBE_SLOW_MS), at most PROBE_CONTAINERS are placed.
 *   A slow function's containers hold nothing beyond `concurrency`, and it wants one container per `concurrency`
 *   inputs, as where the executor queues nothing.
 *
 * An input whose container dies runs again or fails as `retryDecision` (`call-ledger.ts`) says.
 */
import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../lib/clock.ts';
import { containersToStop, desiredContainers } from './autoscaler.ts';
import { type CallLedger, type InputResult, retryDecision } from './call-ledger.ts';
import type { FreeGpuSlot, GpuCapacity } from './capacity.ts';
import { ContainerExitedError, type Executor } from './executor/executor.ts';
import { type ContainerPlacement, SlotIndex } from './placement.ts';
import type { FunctionPools } from './pools.ts';
import type { AppRecords, CallError, CallRecord, ContainerRecord, FunctionRecord } from './records.ts';
import { messageOf, Supervisor, type SupervisorEvents, type SupervisorOptions } from './supervisor.ts';
import type { GpuDemand } from './views.ts';

export const DEFAULT_TICK_MS = 1_000;
/** Consecutive containers of a function that fail to start before its queued calls fail. */
export const MAX_START_FAILURES = 3;
/** Longest wait before placing again a function whose containers fail to start (doubles from 1 s). */
const MAX_START_BACKOFF_MS = 60_000;
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
/**
 * Longest the tick sleeps when nothing is due: finished calls are pruned, and the kept function sizes checked, at
 * least this often.
 */
export const MAX_TICK_GAP_MS = 60_000;

export interface ReconcilerOptions extends Omit<SupervisorOptions, 'graceMs'> {
  readonly apps: AppRecords;
  readonly ledger: CallLedger;
  readonly tickMs: number;
  /** A container could not be placed for lack of GPUs: ask the control loop to plan again now. */
  readonly onShortfall?: () => void;
}

/** A container an agent still runs after the broker restarted (see `Runtime.adopt`). */
export interface RunningContainer {
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
}

export class Reconciler implements SupervisorEvents {
  /** Carries out this reconciler's orders; only the façade's read-only views reach it otherwise. */
  readonly supervisor: Supervisor;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly capacity: GpuCapacity;
  private readonly executor: Executor;
  private readonly pools: FunctionPools;
  private readonly apps: AppRecords;
  private readonly ledger: CallLedger;
  private readonly tickMs: number;
  private readonly dirty = new Set<FunctionRecord>();
  private kickTimer: TimerHandle | undefined;
  private tickTimer: TimerHandle | undefined;
  /** When the armed tick fires, the grid's origin (`start()`), and the last tick's time. */
  private tickAtMs = Number.POSITIVE_INFINITY;
  private tickOriginMs: number | undefined;
  private lastTickAtMs = 0;
  /** The free-GPU index of the last reconcile and the capacity answer it was built from (see `freeSlots`). */
  private slotIndex: { slots: readonly FreeGpuSlot[]; index: SlotIndex } | undefined;
  /** The containers a multi-input dispatch chooses from (see `dispatch`). */
  private readonly openScratch: ContainerRecord[] = [];
  /** The free-GPU index of the reconcile in progress, once it asked for one. */
  private snapshot: SlotIndex | undefined;
  /** Containers that could not be placed at the last reconcile; onShortfall fires when this grows. */
  private unplaced = 0;
  private closedFlag = false;
  private readonly stopListening: () => void;

  constructor(private readonly o: ReconcilerOptions) {
    this.clock = o.clock;
    this.logger = o.logger;
    this.capacity = o.capacity;
    this.executor = o.executor;
    this.pools = o.pools;
    this.apps = o.apps;
    this.ledger = o.ledger;
    this.tickMs = o.tickMs;
    // An orphan's unanswered inputs fail at the first tick a grid step after its exit.
    this.supervisor = new Supervisor({ ...o, graceMs: o.tickMs }, this);
    // Containers waiting for GPUs are placed at the first grid point after GPUs free up, not polled for.
    this.stopListening = o.capacity.onFreed(() => {
      if (this.unplaced > 0) this.wakeAt(this.clock.now());
    });
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Starts the reconcile tick (on a `tickMs` grid from now on the Clock, at grid points where work is due). */
  start(): void {
    if (this.tickOriginMs !== undefined || this.closedFlag) return;
    this.tickOriginMs = this.lastTickAtMs = this.clock.now();
    this.wakeAt(this.clock.now() + this.tickMs);
  }

  /**
   * One reconcile pass over every function (what the tick runs). Checks each function's kept counts first
   * (`FunctionPools.assertSize`): a drift throws.
   */
  tick(): void {
    this.o.stopwatch.time(() => {
      const now = this.clock.now();
      this.lastTickAtMs = Math.max(this.lastTickAtMs, now);
      this.supervisor.settleOrphans(now);
      for (const fn of this.apps.functions()) {
        this.endSlowProbe(fn);
        this.pools.assertOpen(fn);
        this.pools.assertIdle(fn);
        const current = this.pools.assertSize(fn);
        this.guard(fn, () => this.scaleDown(fn, current));
      }
      this.reconcile([...this.apps.functions()]);
      this.ledger.prune();
    });
  }

  /** Stops the tick and every container; calls not finished yet fail. Resolves when the containers have exited. */
  async close(): Promise<void> {
    this.closedFlag = true;
    this.stopListening();
    this.tickTimer?.cancel();
    this.kickTimer?.cancel();
    this.tickTimer = this.kickTimer = undefined;
    const exits: Promise<unknown>[] = [];
    for (const fn of this.apps.functions()) exits.push(...this.retire(fn, 'the runtime was closed', 'kill'));
    this.apps.clear();
    for (const c of [...this.supervisor.liveContainers()])
      exits.push(this.supervisor.kill(c, 'the runtime was closed'));
    await Promise.all(exits);
  }

  // ——— what the façade asks for ———

  /** A function was deployed (first or again): look at it now, and at when its idle containers may stop. */
  deployed(fn: FunctionRecord): void {
    this.markDirty(fn);
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  /**
   * A re-deploy changed the function's revision: it starts afresh (no failed starts, its new code or options timed
   * anew), and its containers of another revision drain.
   */
  redeployed(fn: FunctionRecord): void {
    fn.startFailures = 0;
    fn.startBackoffUntilMs = 0;
    this.pools.forgetRunTimes(fn);
    for (const c of fn.containers.values())
      if (c.revision !== fn.revision) {
        this.pools.uncount(c);
        this.supervisor.drain(c, 'redeployed');
      }
  }

  /** A call was queued (new, or restored from the journal). */
  queued(fn: FunctionRecord): void {
    this.markDirty(fn);
  }

  /** A call was cancelled: fewer inputs may leave the function holding more containers than it wants. */
  cancelled(fn: FunctionRecord): void {
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  /** Retires a function: no more placement or dispatch; its queued (and with `kill`, running) calls fail. */
  retire(fn: FunctionRecord, message: string, how: 'drain' | 'kill'): Promise<unknown>[] {
    fn.retired = true;
    this.dirty.delete(fn);
    const error: CallError = { name: 'Stopped', message };
    for (const call of fn.queue.drain()) this.ledger.finish(call, { status: 'failed', error });
    const exits: Promise<unknown>[] = [];
    for (const c of [...fn.containers.values()]) {
      if (how === 'drain') {
        this.supervisor.drain(c, message);
        continue;
      }
      for (const call of c.running.values())
        if (call.status === 'running' && call.containerId === c.containerId)
          this.ledger.finish(call, { status: 'failed', error });
      exits.push(this.supervisor.kill(c, message));
    }
    return exits;
  }

  /**
   * Containers on these instances take no new inputs and stop once idle; the autoscaler places replacements on
   * other instances (for instances the broker drains or that will be reclaimed).
   */
  drainInstances(instanceIds: readonly string[]): void {
    const ids = new Set(instanceIds);
    for (const c of [...this.supervisor.liveContainers()])
      if (ids.has(c.placement.instanceId)) {
        this.supervisor.drain(c, `instance ${c.placement.instanceId} is draining`);
        this.markDirty(c.fn);
      }
  }

  /**
   * GPUs per GPU type and gang size: those containers hold now, plus those of the containers the functions want
   * and could not place yet (counted at their first GPU preference; regions are not reported).
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
    for (const c of this.supervisor.liveContainers())
      add(c.placement.gpu, c.placement.gpuIndices.length, c.placement.gpuIndices.length);
    for (const fn of this.apps.functions()) {
      // Containers that fail to start want no more GPUs: they want a fixed bundle.
      if (fn.startFailures > 0) continue;
      const missing = this.desired(fn) - this.pools.current(fn).length;
      const first = fn.spec.gpus[0];
      if (first && missing > 0) add(first.gpu, first.count, missing * first.count);
    }
    return [...cells.values()];
  }

  /**
   * Takes over a container that an agent still runs after this broker restarted, as if it had been placed here:
   * when its app and function are deployed with the same bundle and env, and its GPUs are free on a placeable
   * instance. Returns false otherwise (the caller stops it).
   */
  adopt(container: RunningContainer): boolean {
    if (this.closedFlag || !this.executor.adopt || this.supervisor.isLive(container.containerId))
      return false;
    const state = this.apps.get(container.tenantId, container.app);
    const fn = state?.functions.get(container.functionName);
    if (!state || !fn || fn.retired || state.bundleId !== container.bundleId) return false;
    if (fn.spec.concurrency !== container.concurrency || !sameEnv(state.env, container.env)) return false;
    const slot = this.capacity.freeGpus().find((s) => s.instanceId === container.instanceId);
    if (
      !slot ||
      container.gpuIndices.length === 0 ||
      !container.gpuIndices.every((g) => slot.free.includes(g))
    )
      return false;
    this.supervisor.place(
      fn,
      { instanceId: slot.instanceId, gpu: slot.gpu, gpuIndices: [...container.gpuIndices], slot },
      { containerId: container.containerId, ready: container.ready },
    );
    this.slotIndex = undefined;
    return true;
  }

  // ——— what the supervisor reports ———

  containerReady(c: ContainerRecord): void {
    c.fn.startFailures = 0;
    if (c.revision !== c.fn.revision || c.fn.retired) this.supervisor.drain(c, 'redeployed');
    else this.dispatch(c.fn);
    this.wakeAt(this.scaleDownDueAt(c.fn));
  }

  /** Backs off placing the function (doubling); after MAX_START_FAILURES in a row its queued calls fail. */
  containerFailedToStart(c: ContainerRecord, error: unknown): void {
    const { fn } = c;
    fn.startFailures++;
    fn.startBackoffUntilMs =
      this.clock.now() + Math.min(MAX_START_BACKOFF_MS, 1_000 * 2 ** (fn.startFailures - 1));
    this.wakeAt(fn.startBackoffUntilMs);
    this.logger.warn(
      { containerId: c.containerId, reason: c.lifecycle.reason, failures: fn.startFailures },
      'container failed',
    );
    if (fn.startFailures >= MAX_START_FAILURES) {
      const message = `${fn.app.app}.${fn.name}: ${fn.startFailures} containers in a row failed to start; last: ${messageOf(error)}`;
      for (const call of fn.queue.drain())
        this.ledger.finish(call, { status: 'failed', error: { name: 'ContainerStartError', message } });
    }
    this.markDirty(fn);
  }

  containerExited(c: ContainerRecord): void {
    if (c.running.size > 0) this.wakeAt((c.exitedAtMs as number) + this.tickMs);
    if (c.lifecycle.state === 'failed') this.markDirty(c.fn);
  }

  inputRan(c: ContainerRecord, ranMs: number): void {
    if (c.revision === c.fn.revision) this.measure(c.fn, ranMs);
  }

  inputSettled(call: CallRecord, c: ContainerRecord, result: InputResult): void {
    const { fn } = c;
    // Not cancelled nor failed by a stop meanwhile, and not already given to another container.
    if (call.status === 'running' && call.containerId === c.containerId) {
      const decision = retryDecision({
        result,
        attempts: call.attempts,
        unstarted: call.unstarted,
        retries: fn.spec.retries,
        retired: fn.retired,
      });
      if (decision.kind === 'succeed')
        this.ledger.finish(call, { status: 'succeeded', value: decision.value });
      else if (decision.kind === 'fail')
        this.ledger.finish(call, { status: 'failed', error: decision.error });
      else {
        this.ledger.requeue(call, decision.counted);
        if (decision.counted && !result.ok && result.error instanceof ContainerExitedError)
          this.logger.info(
            { callId: call.callId, attempt: call.attempts, reason: result.error.reason },
            'retrying',
          );
        this.markDirty(fn);
      }
    }
    if (c.lifecycle.state === 'draining' && c.running.size === 0) void this.supervisor.requestStop(c);
    else if (c.lifecycle.state === 'ready') this.dispatch(fn);
    // Fewer inputs in flight may leave the function holding more containers than it wants.
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  // ——— the tick's schedule ———

  /**
   * Arms the tick for the first grid point at or after `atMs` that comes after the last tick (unless it is armed
   * for that point or an earlier one already).
   */
  private wakeAt(atMs: number): void {
    const origin = this.tickOriginMs;
    if (origin === undefined || this.closedFlag || !(atMs < Number.POSITIVE_INFINITY)) return;
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
   * earlier call `wakeAt` themselves, freed GPUs among them): an orphaned input is to be settled, a start backoff
   * ends, a probe turns slow, an idle container passes its scale-down window while its function holds more than
   * it wants.
   */
  private nextDueAt(): number {
    const now = this.clock.now();
    let at = Math.min(now + MAX_TICK_GAP_MS, this.supervisor.nextOrphanDueAt());
    for (const fn of this.apps.functions()) {
      if (fn.startBackoffUntilMs > now) at = Math.min(at, fn.startBackoffUntilMs);
      if (this.pools.probing(fn) && fn.probeSinceMs !== undefined)
        at = Math.min(at, fn.probeSinceMs + PROBE_SLOW_MS);
      at = Math.min(at, this.scaleDownDueAt(fn));
    }
    return at;
  }

  /** When the first idle container of a function that holds more than it wants passes its scale-down window. */
  private scaleDownDueAt(fn: FunctionRecord): number {
    if (fn.retired || fn.size.containers <= this.desired(fn)) return Number.POSITIVE_INFINITY;
    const idlest = this.pools.longestIdle(fn);
    return idlest ? (idlest.idleSinceMs as number) + fn.spec.scaledownWindowMs : Number.POSITIVE_INFINITY;
  }

  // ——— reconcile ———

  /** Asks for a reconcile of the function at the current time (one timer for a whole burst). */
  private markDirty(fn: FunctionRecord): void {
    if (this.closedFlag) return;
    this.dirty.add(fn);
    this.kickTimer ??= this.clock.setTimer(this.clock.now(), this.kick);
  }

  /** The reconcile `markDirty` asks for (one function for every kick: a call's arrival sets one). */
  private readonly kick = (): void => {
    this.kickTimer = undefined;
    const fns = [...this.dirty];
    this.dirty.clear();
    this.reconcile(fns);
  };

  /** Places the containers the functions miss and dispatches their queued inputs. */
  private reconcile(fns: readonly FunctionRecord[]): void {
    this.o.stopwatch.time(() => this.reconcileNow(fns));
  }

  private reconcileNow(fns: readonly FunctionRecord[]): void {
    this.snapshot = undefined;
    let unplaced = 0;
    for (const fn of fns) {
      if (fn.retired) continue;
      this.guard(fn, () => {
        unplaced += this.scaleUp(fn);
        this.dispatch(fn);
      });
    }
    this.snapshot = undefined;
    // Every function is counted at each tick; a kick sees only some, so it can only raise the count.
    const grew = unplaced > this.unplaced;
    if (grew || fns.length === this.apps.countFunctions()) this.unplaced = unplaced;
    if (grew) {
      this.logger.info({ unplaced }, 'containers wait for GPUs');
      this.o.onShortfall?.();
    }
  }

  /**
   * The free GPUs of this reconcile: one snapshot of `capacity.freeGpus()`, taken only if a container is to be
   * placed. Its index is kept for the next reconcile while the capacity hands out the same answer and nothing was
   * placed on it.
   */
  private freeSlots(): SlotIndex {
    if (this.snapshot) return this.snapshot;
    const slots = this.capacity.freeGpus();
    if (!this.slotIndex || slots !== this.slotIndex.slots)
      this.slotIndex = { slots, index: new SlotIndex(slots) };
    this.snapshot = this.slotIndex.index;
    return this.snapshot;
  }

  private guard(fn: FunctionRecord, work: () => void): void {
    try {
      work();
    } catch (error) {
      this.logger.error({ err: error, app: fn.app.app, function: fn.name }, 'reconcile failed');
    }
  }

  /** Containers the function wants: the autoscaler's formula, capped while a probe times its inputs. */
  private desired(fn: FunctionRecord): number {
    const wanted = desiredContainers({
      inFlight: fn.size.inFlight,
      queued: fn.queue.size,
      // What one container takes at once: its slots, and the inputs that may wait next to it.
      concurrency: this.pools.slotsOf(fn),
      bufferContainers: fn.spec.bufferContainers,
      minContainers: fn.spec.minContainers,
      maxContainers: fn.spec.maxContainers,
    });
    if (!this.pools.probing(fn)) return wanted;
    return Math.max(fn.spec.minContainers, Math.min(wanted, PROBE_CONTAINERS));
  }

  /**
   * Ends a probe whose first input is still running PROBE_SLOW_MS after it was sent: the function is slow (nothing
   * waits next to its containers) until its run times say otherwise.
   */
  private endSlowProbe(fn: FunctionRecord): void {
    if (!this.pools.probing(fn) || fn.probeSinceMs === undefined) return;
    const running = this.clock.now() - fn.probeSinceMs;
    if (running >= PROBE_SLOW_MS) this.measure(fn, running);
  }

  /** Takes a run time in; where it changed what a container holds, the function's size is looked at again. */
  private measure(fn: FunctionRecord, sampleMs: number): void {
    if (!this.pools.recordRunTime(fn, sampleMs)) return;
    this.markDirty(fn);
    this.wakeAt(this.scaleDownDueAt(fn));
  }

  /**
   * Why a container starts: its function wants more containers than it holds (`desired`), and it is not backing
   * off failed starts. Places and starts them; returns how many found no GPUs.
   */
  private scaleUp(fn: FunctionRecord): number {
    if (this.clock.now() < fn.startBackoffUntilMs) return 0;
    const missing = this.desired(fn) - fn.size.containers;
    for (let i = 0; i < missing; i++) {
      const snapshot = this.freeSlots();
      const placement: ContainerPlacement | undefined = snapshot.place({
        gpus: fn.spec.gpus,
        regions: fn.spec.regions,
      });
      if (!placement) return missing - i;
      // The kept index no longer matches the capacity's answer once it took a placement.
      this.slotIndex = undefined;
      snapshot.take(placement);
      this.supervisor.place(fn, placement);
    }
    return 0;
  }

  /** Why a container stops: idle past its scale-down window while its function holds more than it wants. */
  private scaleDown(fn: FunctionRecord, current: readonly ContainerRecord[]): void {
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
      if (c) this.supervisor.drain(c, 'idle past the scale-down window');
    }
  }

  /** Gives queued inputs to ready containers with room, the least busy first. */
  private dispatch(fn: FunctionRecord): void {
    if (fn.retired || fn.queue.size === 0 || fn.open.size === 0) return;
    if (fn.queue.size === 1) {
      // One input (a call just arrived, or one input ended while one waited): the least busy container with room,
      // the first placed among equals, as the loop below would choose, without sorting them all for it.
      let target: ContainerRecord | undefined;
      for (const c of fn.open)
        if (
          !target ||
          c.running.size < target.running.size ||
          (c.running.size === target.running.size && c.seq < target.seq)
        )
          target = c;
      this.assign(fn.queue.take() as CallRecord, target as ContainerRecord);
      return;
    }
    // The containers with room, in placement order; each input then goes to the least busy of them. (One array for
    // every dispatch: a call's end with inputs waiting dispatches, and a new array each time was garbage.)
    const open = this.openScratch.length === 0 ? this.openScratch : []; // (in use: a dispatch within a dispatch)
    for (const c of fn.open) open.push(c);
    open.sort(bySeq);
    while (fn.queue.size > 0 && open.length > 0) {
      let best = 0;
      for (let i = 1; i < open.length; i++)
        if ((open[i] as ContainerRecord).running.size < (open[best] as ContainerRecord).running.size)
          best = i;
      const target = open[best] as ContainerRecord;
      this.assign(fn.queue.take() as CallRecord, target);
      // A container that left the ready state or filled up takes no more in this round.
      if (target.lifecycle.state !== 'ready' || target.running.size >= this.pools.slotsOf(fn)) {
        open[best] = open[open.length - 1] as ContainerRecord;
        open.pop();
      }
    }
    open.length = 0;
  }

  /** Gives one call to a container; the first input of a probing function starts its probe's clock. */
  private assign(call: CallRecord, c: ContainerRecord): void {
    const now = this.clock.now();
    this.ledger.started(call, c.containerId);
    if (this.pools.probeStarted(c.fn, now)) this.wakeAt(now + PROBE_SLOW_MS);
    this.supervisor.run(c, call);
  }
}

function bySeq(a: ContainerRecord, b: ContainerRecord): number {
  return a.seq - b.seq;
}

function sameEnv(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
