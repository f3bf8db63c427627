/**
 * The meter: opens and closes usage intervals (one per container run or lease allocation), checkpoints the open
 * ones on a heartbeat (default every 5 s) and writes events in batches. If the process dies, the intervals it had
 * open stay at their last checkpoint and `UsageStore.closeOpenAtCheckpoint` closes them there on the next start:
 * at most one heartbeat of observed time goes unbilled, and nothing unobserved or twice is billed.
 */
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { type IntervalFacts, type UsageEvent, usageEventId } from './usage-event.ts';
import type { UsageStore } from './usage-store.ts';

export interface MeterOptions {
  readonly clock: Clock;
  readonly store: UsageStore;
  /** How often open intervals are checkpointed and buffered events written; default 5,000 ms. */
  readonly heartbeatMs?: number;
  /** Writes at once when this many events wait; default 5,000. */
  readonly maxBuffered?: number;
  /** A failed write (the events stay buffered and are written with the next batch). */
  readonly onWriteError?: (error: unknown) => void;
}

export const DEFAULT_HEARTBEAT_MS = 5_000;

export class Meter {
  private readonly open = new Map<string, IntervalFacts>();
  private buffer: UsageEvent[] = [];
  private timer: TimerHandle | undefined;
  private writing: Promise<void> = Promise.resolve();
  readonly heartbeatMs: number;

  constructor(private readonly o: MeterOptions) {
    this.heartbeatMs = o.heartbeatMs ?? DEFAULT_HEARTBEAT_MS;
  }

  /** Starts the heartbeat. */
  start(): void {
    if (this.timer) return;
    const beat = () => {
      this.timer = this.o.clock.setTimer(this.o.clock.now() + this.heartbeatMs, () => {
        this.heartbeat();
        beat();
      });
    };
    beat();
  }

  /** Opens an interval now (or at `facts.startMs`). */
  openInterval(facts: Omit<IntervalFacts, 'startMs'> & { startMs?: number }): IntervalFacts {
    const interval: IntervalFacts = { ...facts, startMs: facts.startMs ?? this.o.clock.now() };
    this.open.set(interval.intervalId, interval);
    this.push(interval, 'start', interval.startMs);
    return interval;
  }

  /** Ends an interval now (or at `atMs`); unknown or already closed ids are ignored. */
  closeInterval(intervalId: string, atMs = this.o.clock.now()): void {
    const interval = this.open.get(intervalId);
    if (!interval) return;
    this.open.delete(intervalId);
    this.push(interval, 'stop', Math.max(atMs, interval.startMs));
  }

  /** Intervals open now. */
  openIntervals(): IntervalFacts[] {
    return [...this.open.values()];
  }

  /** Checkpoints every open interval and writes what is buffered. */
  heartbeat(): Promise<void> {
    const now = this.o.clock.now();
    for (const interval of this.open.values()) this.push(interval, 'heartbeat', now, false);
    return this.flush();
  }

  /** Writes buffered events (one batch at a time, in order). */
  flush(): Promise<void> {
    this.writing = this.writing.then(async () => {
      if (this.buffer.length === 0) return;
      const batch = this.buffer;
      this.buffer = [];
      try {
        await this.o.store.ingest(batch);
      } catch (error) {
        // Keep them: ingestion is idempotent, so writing them again with the next batch is safe.
        this.buffer = batch.concat(this.buffer);
        this.o.onWriteError?.(error);
      }
    });
    return this.writing;
  }

  /** Stops the heartbeat, closes every open interval now and writes everything (a clean shutdown). */
  async shutdown(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    const now = this.o.clock.now();
    for (const id of [...this.open.keys()]) this.closeInterval(id, now);
    await this.flush();
  }

  private push(interval: IntervalFacts, type: UsageEvent['type'], atMs: number, mayFlush = true): void {
    this.buffer.push({ ...interval, id: usageEventId(interval.intervalId, type, atMs), type, atMs });
    if (mayFlush && this.buffer.length >= (this.o.maxBuffered ?? 5_000)) void this.flush();
  }
}
