/**
 * The one source of time. Everything time-dependent takes a Clock, so that tests and simulations can drive the
 * real code on a virtual clock. Times are integer milliseconds since the Unix epoch.
 */
export interface Clock {
  /** Current time, integer ms since the epoch. */
  now(): number;
  /** Resolves after `ms` milliseconds of this clock's time; rejects with the signal's reason when aborted. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `callback` once when this clock reaches `atMs` (on the next turn when `atMs` is already past). On the
   * virtual clock, timers due at the same time fire in the order they were set; the real clock is as precise as
   * `setTimeout`. Returns a handle that cancels the timer.
   */
  setTimer(atMs: number, callback: () => void): TimerHandle;
}

export interface TimerHandle {
  /** Cancels the timer; does nothing when it already fired or was cancelled. */
  cancel(): void;
}

/** Longest delay `setTimeout` takes without overflowing (about 24.8 days). */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** Wall-clock time. The only place in gpubroker that reads `Date.now()` or calls `setTimeout`. */
export class RealClock implements Clock {
  now(): number {
    return Date.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        timer.cancel();
        reject(signal?.reason);
      };
      const timer = this.setTimer(this.now() + ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  setTimer(atMs: number, callback: () => void): TimerHandle {
    let handle: ReturnType<typeof setTimeout> | undefined;
    let cancelled = false;
    // Long delays are chained, because setTimeout fires at once when its delay overflows 32 bits.
    const arm = () => {
      const delay = atMs - Date.now();
      if (delay > MAX_TIMEOUT_MS) handle = setTimeout(arm, MAX_TIMEOUT_MS);
      else handle = setTimeout(() => cancelled || callback(), Math.max(0, delay));
    };
    arm();
    return {
      cancel: () => {
        cancelled = true;
        if (handle !== undefined) clearTimeout(handle);
      },
    };
  }
}

/** A timer in the heap; it is its own handle (one object per timer: a simulation sets millions). */
class PendingTimer implements TimerHandle {
  cancelled = false;

  constructor(
    readonly at: number,
    readonly seq: number,
    readonly callback: () => void,
    private readonly onCancel: () => void,
  ) {}

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.onCancel();
  }
}

/**
 * Virtual time for simulations and tests: time moves only when `advanceTo`/`advanceBy` is called, and timers fire in
 * (due time, creation order), so a run is deterministic. Timers live in a binary heap, so a simulation with a
 * million pending timers still fires each in O(log n).
 */
export class VirtualClock implements Clock {
  private current: number;
  private seq = 0;
  private readonly heap: PendingTimer[] = [];
  private live = 0;
  /** What a timer's `cancel` does here (one function for all of them). */
  private readonly cancelled = () => {
    this.live--;
  };

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
      const onAbort = () => {
        timer.cancel();
        reject(signal?.reason);
      };
      const timer = this.setTimer(this.current + Math.max(0, ms), () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  setTimer(atMs: number, callback: () => void): TimerHandle {
    assertIntegerMs(atMs, 'atMs');
    const timer = new PendingTimer(Math.max(atMs, this.current), this.seq++, callback, this.cancelled);
    this.push(timer);
    this.live++;
    return timer;
  }

  /** Number of timers that have neither fired nor been cancelled. */
  pendingTimers(): number {
    return this.live;
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextTimerAt(): number | undefined {
    this.dropCancelledTop();
    return this.heap[0]?.at;
  }

  /** Moves time forward to `targetMs`, firing every timer due on the way (awaiting their continuations). */
  async advanceTo(targetMs: number): Promise<void> {
    assertIntegerMs(targetMs, 'targetMs');
    if (targetMs < this.current)
      throw new RangeError(`cannot move a clock back from ${this.current} to ${targetMs}`);
    // Let each woken continuation run (and possibly set more timers) before the next timer fires.
    while (this.fireDue(targetMs)) await flushMicrotasks();
    this.current = targetMs;
  }

  /**
   * For discrete-event drivers (`simulations/engine/drive.ts`): fires the earliest pending timer when it is due by
   * `targetMs`, moving time to it, synchronously. Returns whether another timer is due by `targetMs` too; the caller
   * lets this one's continuations run first (as `advanceTo` does), then calls again.
   */
  fireNext(targetMs: number): boolean {
    if (!this.fireDue(targetMs)) return false;
    const next = this.nextTimerAt();
    return next !== undefined && next <= targetMs;
  }

  /** Fires the earliest pending timer if it is due by `targetMs` (time moves to it); whether one fired. */
  private fireDue(targetMs: number): boolean {
    this.dropCancelledTop();
    const due = this.heap[0];
    if (!due || due.at > targetMs) return false;
    this.pop();
    due.cancelled = true;
    this.live--;
    this.current = due.at;
    due.callback();
    return true;
  }

  advanceBy(ms: number): Promise<void> {
    return this.advanceTo(this.current + ms);
  }

  /** Fires timers until none is pending or the next one lies beyond `limitMs`; returns the time reached. */
  async runUntilIdle(limitMs = Number.MAX_SAFE_INTEGER): Promise<number> {
    for (;;) {
      const next = this.nextTimerAt();
      if (next === undefined || next > limitMs) return this.current;
      await this.advanceTo(next);
    }
  }

  private dropCancelledTop(): void {
    while (this.heap.length > 0 && (this.heap[0] as PendingTimer).cancelled) this.pop();
  }

  private push(timer: PendingTimer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(timer, heap[parent] as PendingTimer)) break;
      heap[i] = heap[parent] as PendingTimer;
      i = parent;
    }
    heap[i] = timer;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop() as PendingTimer;
    if (heap.length === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && before(heap[right] as PendingTimer, heap[left] as PendingTimer) ? right : left;
      if (!before(heap[child] as PendingTimer, last)) break;
      heap[i] = heap[child] as PendingTimer;
      i = child;
    }
    heap[i] = last;
  }
}

function before(a: PendingTimer, b: PendingTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
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

/** Calls `callback` every `periodMs` of the clock's time until the returned handle is cancelled. */
export function every(clock: Clock, periodMs: number, callback: () => void): TimerHandle {
  let timer: TimerHandle | undefined;
  let cancelled = false;
  const arm = () => {
    timer = clock.setTimer(clock.now() + periodMs, () => {
      if (cancelled) return;
      callback();
      arm();
    });
  };
  arm();
  return {
    cancel: () => {
      cancelled = true;
      timer?.cancel();
    },
  };
}
