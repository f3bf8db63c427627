/**
 * The meter: opens and closes usage intervals (one per container run or lease allocation) and writes their starts
 * and stops in batches. On a heartbeat (default every 5 s) it writes what is buffered together with one checkpoint
 * of its own, which vouches for every interval it has open: a heartbeat costs one row, however many containers
 * run. If the process dies, the intervals it had open stay at its last checkpoint and
 * `UsageStore.closeOpenAtCheckpoint` closes them there on the next start: at most one heartbeat of observed time
 * goes unbilled, and nothing unobserved or twice is billed.
 */
import { randomUUID } from 'node:crypto';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { type Stopwatch, untimed } from '../../lib/stopwatch.ts';
import { type IntervalFacts, type UsageEvent, usageEventId } from './usage-event.ts';
import type { MeterCheckpoint, UsageStore } from './usage-store.ts';

export interface MeterOptions {
  readonly clock: Clock;
  readonly store: UsageStore;
  /** How often open intervals are checkpointed and buffered events written; default 5,000 ms. */
  readonly heartbeatMs?: number;
  /** Writes at once when this many events wait; default 5,000. */
  readonly maxBuffered?: number;
  /** A failed write (the events stay buffered and are written with the next batch). */
  readonly onWriteError?: (error: unknown) => void;
  /** This meter's id in the store (its intervals and checkpoints); default a random UUID, new per process. */
  readonly meterId?: string;
  /** Times the meter's work (a simulation's profile); default untimed. */
  readonly stopwatch?: Stopwatch;
}

export const DEFAULT_HEARTBEAT_MS = 5_000;

export class Meter {
  private readonly open = new Map<string, IntervalFacts>();
  private buffer: UsageEvent[] = [];
  private timer: TimerHandle | undefined;
  private writing: Promise<void> = Promise.resolve();
  readonly heartbeatMs: number;
  readonly meterId: string;
  private readonly stopwatch: Stopwatch;

  constructor(private readonly o: MeterOptions) {
    this.heartbeatMs = o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
    this.meterId = o.meterId ?? randomUUID();
    this.stopwatch = o.stopwatch ?? untimed;
  }

  /**
   * Starts the heartbeat. Beats keep to a fixed grid (start + k × heartbeat): a beat that fires late does not push
   * the next one later, so the last checkpoint is never much older than one heartbeat (what a crash leaves
   * unbilled); a beat missed altogether (a long stall) is not made up, the next one is on the grid.
   */
  start(): void {
    if (this.timer) return;
    let due = this.o.clock.now();
    const beat = () => {
      const now = this.o.clock.now();
      due += this.heartbeatMs;
      if (due <= now) due += Math.ceil((now - due + 1) / this.heartbeatMs) * this.heartbeatMs;
      this.timer = this.o.clock.setTimer(due, () => {
        this.heartbeat();
        beat();
      });
    };
    beat();
  }

  /** Opens an interval now (or at `facts.startMs`). */
  openInterval(facts: Omit<IntervalFacts, 'startMs'> & { startMs?: number }): IntervalFacts {
    return this.stopwatch.time(() => {
      const interval: IntervalFacts = { ...facts, startMs: facts.startMs ?? this.o.clock.now() };
      this.open.set(interval.intervalId, interval);
      this.push(interval, 'start', interval.startMs);
      return interval;
    });
  }

  /** Ends an interval now (or at `atMs`); unknown or already closed ids are ignored. */
  closeInterval(intervalId: string, atMs = this.o.clock.now()): void {
    this.stopwatch.time(() => {
      const interval = this.open.get(intervalId);
      if (!interval) return;
      this.open.delete(intervalId);
      this.push(interval, 'stop', Math.max(atMs, interval.startMs));
    });
  }

  /** Intervals open now. */
  openIntervals(): IntervalFacts[] {
    return [...this.open.values()];
  }

  /** The open interval of this id, if any (without copying them all, as `openIntervals` does). */
  openFacts(intervalId: string): IntervalFacts | undefined {
    return this.open.get(intervalId);
  }

  /** How many intervals are open, of each kind. */
  openCount(kind: IntervalFacts['kind']): number {
    let count = 0;
    for (const i of this.open.values()) if (i.kind === kind) count++;
    return count;
  }

  /** Writes what is buffered and checkpoints every open interval (one row: the meter's checkpoint). */
  heartbeat(): Promise<void> {
    return this.flush(this.open.size > 0 ? { meterId: this.meterId, atMs: this.o.clock.now() } : undefined);
  }

  /**
   * Writes buffered events (one batch at a time, in order), then the checkpoint if given: in one statement, so a
   * checkpoint is never recorded without the stops that came before it.
   */
  flush(checkpoint?: MeterCheckpoint): Promise<void> {
    this.writing = this.writing.then(() => this.stopwatch.time(() => this.write(checkpoint)));
    return this.writing;
  }

  private async write(checkpoint: MeterCheckpoint | undefined): Promise<void> {
    if (this.buffer.length === 0 && !checkpoint) return;
    const batch = this.buffer;
    this.buffer = [];
    try {
      await this.o.store.ingest(batch, checkpoint);
    } catch (error) {
      // Keep them: ingestion is idempotent, so writing them again with the next batch is safe. The checkpoint is
      // dropped: the next heartbeat makes a later one.
      this.buffer = batch.concat(this.buffer);
      this.o.onWriteError?.(error);
    }
  }

  /** Stops the heartbeat, closes every open interval now and writes everything (a clean shutdown). */
  async shutdown(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    const now = this.o.clock.now();
    for (const id of [...this.open.keys()]) this.closeInterval(id, now);
    await this.flush();
  }

  private push(interval: IntervalFacts, type: UsageEvent['type'], atMs: number): void {
    this.buffer.push({
      ...interval,
      meterId: this.meterId,
      id: usageEventId(interval.intervalId, type, atMs),
      type,
      atMs,
    });
    if (this.buffer.length >= (this.o.maxBuffered ?? 5_000)) void this.flush();
  }
}
