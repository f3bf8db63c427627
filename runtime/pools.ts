/**
 * Each function's pool of containers and the counts derived from it, kept as containers and inputs come and go:
 * its size (containers that count, their inputs in flight), its open containers (those that can take an input
 * now), and its time per input with what a container may hold beyond `concurrency`.
 *
 * The counts are kept rather than counted because counting hundreds of containers at every call was most of the
 * runtime's time. At each tick `assertCounts` checks them against a count from scratch; a miss is a bookkeeping
 * bug and throws PoolDriftError (a simulation that drifts stops there, reproducible from its seed) instead of
 * being repaired quietly.
 */
import type { Clock } from '../lib/clock.ts';
import { GpubrokerError } from '../lib/errors.ts';
import { ContainerLifecycle } from './container.ts';
import type { Executor } from './executor/executor.ts';
import type { ContainerPlacement } from './placement.ts';
import type { CallRecord, ContainerRecord, FunctionRecord } from './records.ts';

/**
 * Work one container may hold beyond what it runs, where its executor queues inputs (Executor.queuesInputs): about
 * this many ms of it per slot, so that a quick input is sent before the one ahead of it ends, and an input that waits
 * behind others where a newer container could have taken it waits about this long at most.
 */
export const QUEUED_WORK_MS = 100;
/** Most inputs waiting next to one container, per slot (`concurrency`). */
export const MAX_QUEUED_PER_SLOT = 256;
/** Run times a function's time per input is the median of (the latest ones). */
const SERVICE_SAMPLES = 63;

/** A kept count of a function's pool no longer matches a count from scratch: a bug in the bookkeeping. */
export class PoolDriftError extends GpubrokerError {
  constructor(
    readonly functionName: string,
    readonly what: 'size' | 'open' | 'idle',
    kept: unknown,
    counted: unknown,
  ) {
    super(
      'pool_drift',
      `${functionName}: the kept ${what} drifted: kept ${JSON.stringify(kept)}, counted ${JSON.stringify(counted)}`,
    );
  }
}

export class FunctionPools {
  constructor(private readonly executor: Pick<Executor, 'queuesInputs'>) {}

  /**
   * A container just placed, as its function's pool keeps it: counted in the function's size, and told of each
   * transition of its lifecycle (it leaves the count once draining, stopped or failed; the open set follows it).
   */
  join(
    containerId: string,
    seq: number,
    fn: FunctionRecord,
    placement: ContainerPlacement,
    clock: Clock,
  ): ContainerRecord {
    const c: ContainerRecord = {
      containerId,
      seq,
      fn,
      revision: fn.revision,
      bundleId: fn.app.bundleId,
      lifecycle: new ContainerLifecycle(containerId, clock, (to) => {
        if (to === 'draining' || to === 'stopped' || to === 'failed') this.uncount(c);
        if (to !== 'ready') fn.idle.delete(c);
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
    return c;
  }

  /** Forgets a released container once none of its inputs is in flight. */
  leave(c: ContainerRecord): void {
    if (c.released && c.running.size === 0) c.fn.containers.delete(c.containerId);
  }

  /** Takes a container out of its function's size, once (it left for good: drained, ended, lost, redeployed). */
  uncount(c: ContainerRecord): void {
    if (!c.counted) return;
    c.counted = false;
    c.fn.idle.delete(c);
    c.fn.size.containers--;
    c.fn.size.inFlight -= c.running.size;
  }

  /** The container has nothing in flight from now on (it became ready, or its last input ended). */
  idleFrom(c: ContainerRecord, atMs: number): void {
    c.idleSinceMs = atMs;
    c.fn.idle.delete(c);
    if (c.counted) c.fn.idle.add(c);
  }

  /** The container took an input. */
  busy(c: ContainerRecord): void {
    c.idleSinceMs = undefined;
    c.fn.idle.delete(c);
  }

  /** The container of `fn` idle the longest: the first of `fn.idle` (checked at each tick by `assertIdle`). */
  longestIdle(fn: FunctionRecord): ContainerRecord | undefined {
    for (const c of fn.idle) return c;
    return undefined;
  }

  inputStarted(c: ContainerRecord, call: CallRecord): void {
    c.running.set(call.callId, call);
    if (c.counted) c.fn.size.inFlight++;
    this.refreshOpen(c);
  }

  inputEnded(c: ContainerRecord, call: CallRecord): void {
    c.running.delete(call.callId);
    if (c.counted) c.fn.size.inFlight--;
  }

  /** Puts a container in its function's `open` set or takes it out, after anything `takesInputs` reads changed. */
  refreshOpen(c: ContainerRecord): void {
    if (this.takesInputs(c)) c.fn.open.add(c);
    else c.fn.open.delete(c);
  }

  /** Whether a container can take an input now: ready, of its function's revision, not lost, with room. */
  takesInputs(c: ContainerRecord): boolean {
    return (
      c.lifecycle.state === 'ready' &&
      !c.lost &&
      c.revision === c.fn.revision &&
      c.running.size < this.slotsOf(c.fn)
    );
  }

  /** Inputs one container of the function may hold: its concurrency, and those that may wait next to it. */
  slotsOf(fn: FunctionRecord): number {
    return fn.spec.concurrency + fn.queuedPerContainer;
  }

  /** Containers of the current revision that count towards the function's size, counted from scratch. */
  current(fn: FunctionRecord): ContainerRecord[] {
    const result: ContainerRecord[] = [];
    for (const c of fn.containers.values()) {
      const state = c.lifecycle.state;
      if (c.lost || c.revision !== fn.revision) continue;
      if (state === 'placed' || state === 'starting' || state === 'ready') result.push(c);
    }
    return result;
  }

  /** The kept size against a count from scratch; returns the containers that count. Throws PoolDriftError. */
  assertSize(fn: FunctionRecord): ContainerRecord[] {
    const current = this.current(fn);
    let inFlight = 0;
    for (const c of current) inFlight += c.running.size;
    if (current.length !== fn.size.containers || inFlight !== fn.size.inFlight)
      throw new PoolDriftError(`${fn.app.app}.${fn.name}`, 'size', fn.size, {
        containers: current.length,
        inFlight,
      });
    return current;
  }

  /** The kept `open` set against a scan. Throws PoolDriftError. */
  assertOpen(fn: FunctionRecord): void {
    let open = 0;
    let wrong = false;
    for (const c of fn.containers.values())
      if (this.takesInputs(c)) {
        open++;
        if (!fn.open.has(c)) wrong = true;
      }
    if (wrong || open !== fn.open.size)
      throw new PoolDriftError(`${fn.app.app}.${fn.name}`, 'open', fn.open.size, open);
  }

  /**
   * The kept `idle` set against a scan: exactly the counted, ready containers with nothing in flight, in the order
   * they became idle. Throws PoolDriftError.
   */
  assertIdle(fn: FunctionRecord): void {
    let idle = 0;
    let wrong = false;
    let lastSinceMs = Number.NEGATIVE_INFINITY;
    for (const c of fn.idle) {
      if (!isIdle(c) || (c.idleSinceMs as number) < lastSinceMs) wrong = true;
      lastSinceMs = c.idleSinceMs ?? lastSinceMs;
    }
    for (const c of fn.containers.values()) if (isIdle(c)) idle++;
    if (wrong || idle !== fn.idle.size)
      throw new PoolDriftError(`${fn.app.app}.${fn.name}`, 'idle', fn.idle.size, idle);
  }

  /** Whether the function is sized by a probe: its executor queues inputs and none of its inputs was timed yet. */
  probing(fn: FunctionRecord): boolean {
    return this.executor.queuesInputs === true && fn.serviceMs === undefined;
  }

  /** Marks when a probing function's first input was sent; true when this one was it. */
  probeStarted(fn: FunctionRecord, nowMs: number): boolean {
    if (!this.probing(fn) || fn.probeSinceMs !== undefined) return false;
    fn.probeSinceMs = nowMs;
    return true;
  }

  /**
   * Takes one input's run time into the function's time per input and, where the executor queues inputs,
   * resizes what waits next to each container: `concurrency` × the power of two (up to MAX_QUEUED_PER_SLOT) of
   * inputs that fit in QUEUED_WORK_MS. Powers of two: the size changes rarely, and each change re-reads which of
   * its containers have room. Returns true when what a container holds changed or the probe is over: how many
   * containers the function wants follows.
   *
   * A median of the latest SERVICE_SAMPLES: an input that waited for the CPU behind a busy neighbour, or a pause of
   * the collector, does not shrink what the containers hold and so call for more of them.
   */
  recordRunTime(fn: FunctionRecord, sampleMs: number): boolean {
    const probed = this.probing(fn);
    fn.ranMs[fn.ranCount++ % SERVICE_SAMPLES] = sampleMs;
    // The median, read again every few samples (and at the first).
    if (fn.serviceMs !== undefined && fn.ranCount % 8 !== 0) return false;
    const sorted = [...fn.ranMs].sort((a, b) => a - b);
    fn.serviceMs = sorted[sorted.length >> 1] as number;
    if (!this.executor.queuesInputs) return false;
    const fits = Math.min(MAX_QUEUED_PER_SLOT, Math.floor(QUEUED_WORK_MS / Math.max(fn.serviceMs, 0.01)));
    const queued = fits < 1 ? 0 : fn.spec.concurrency * 2 ** Math.floor(Math.log2(fits));
    if (queued === fn.queuedPerContainer && !probed) return false;
    fn.queuedPerContainer = queued;
    for (const c of fn.containers.values()) this.refreshOpen(c);
    return true;
  }

  /** New code or options are timed afresh (a re-deploy). */
  forgetRunTimes(fn: FunctionRecord): void {
    fn.serviceMs = undefined;
    fn.ranMs.length = 0;
    fn.ranCount = 0;
    fn.queuedPerContainer = 0;
    fn.probeSinceMs = undefined;
  }
}

/** Counted, ready, nothing in flight: a container whose scale-down window runs. */
function isIdle(c: ContainerRecord): boolean {
  return c.counted && c.idleSinceMs !== undefined && c.lifecycle.state === 'ready' && c.running.size === 0;
}
