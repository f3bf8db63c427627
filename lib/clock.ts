/**
 * The one source of time. Everything time-dependent takes a Clock, so that tests and simulations can drive the
 * real code on a virtual clock. Times are integer milliseconds since the Unix epoch.
 */
export interface Clock {
  /** Current time, integer ms since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds of this clock's time; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Wall-clock time. The only place in gpubroker that reads `Date.now()` or calls `setTimeout`. */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

interface PendingTimer {
  at: number;
  seq: number;
  resolve: () => void;
}

/**
 * Virtual time for simulations and tests: time moves only when `advanceTo`/`advanceBy` is called, and timers fire in
 * (due time, creation order), so a run is deterministic.
 */
export class VirtualClock implements Clock {
  private current: number;
  private seq = 0;
  private timers: PendingTimer[] = [];

  constructor(startMs = 0) {
    assertIntegerMs(startMs, 'startMs');
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    assertIntegerMs(ms, 'ms');
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer: PendingTimer = { at: this.current + Math.max(0, ms), seq: this.seq++, resolve };
      this.timers.push(timer);
      signal?.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((t) => t !== timer);
          reject(signal.reason);
        },
        { once: true },
      );
    });
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextTimerAt(): number | undefined {
    let next: number | undefined;
    for (const t of this.timers) if (next === undefined || t.at < next) next = t.at;
    return next;
  }

  /** Moves time forward to `targetMs`, firing every timer due on the way (awaiting their continuations). */
  async advanceTo(targetMs: number): Promise<void> {
    assertIntegerMs(targetMs, 'targetMs');
    if (targetMs < this.current)
      throw new RangeError(`cannot move a clock back from ${this.current} to ${targetMs}`);
    for (;;) {
      const due = this.timers.filter((t) => t.at <= targetMs).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.resolve();
      // Let the woken continuation run (and possibly schedule more timers) before the next one fires.
      await flushMicrotasks();
    }
    this.current = targetMs;
  }

  advanceBy(ms: number): Promise<void> {
    return this.advanceTo(this.current + ms);
  }
}

async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

function assertIntegerMs(value: number, name: string): void {
  if (!Number.isSafeInteger(value))
    throw new RangeError(`${name} must be an integer number of ms, got ${value}`);
}

/** Measures elapsed wall time of a computation (solve times); not for scheduling, which goes through a Clock. */
export function stopwatch(): () => number {
  const start = performance.now();
  return () => Math.round(performance.now() - start);
}
