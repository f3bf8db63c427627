/**
 * The clock of one set of simulated clouds, and its generators, made so that the set can be saved and restored
 * (see sim-state.ts) and behave afterwards exactly as if it had never stopped.
 *
 * - `SimTimers` numbers every timer the clouds set (boots, shutdowns, reclaims, trace drops, scenario events), so
 *   that a restored set re-arms its pending timers in the order the original set them: timers due at the same
 *   time then fire in the same order. While replaying, it holds the timers set and fires those due by a given
 *   time, each at its own due time (`now()` is that time), so that what happened while the clouds were down (an
 *   instance finished booting, a spot instance was reclaimed by the trace) happens exactly as the rules say.
 * - `CountedRandom` counts the draws of a seeded generator, so that a restored generator is the same seed advanced
 *   by the same count: the same stream from where it stopped.
 */
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { Random } from '../../lib/random.ts';

interface HeldTimer {
  readonly atMs: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
  /** The clock's timer, once replay has ended and this one is still to come. */
  armed: TimerHandle | undefined;
}

export class SimTimers implements Clock {
  private seq = 0;
  /** Timers held during a replay, a binary heap on (due time, order set). */
  private held: HeldTimer[] | undefined;
  private replayNowMs = 0;

  constructor(readonly clock: Clock) {}

  now(): number {
    return this.held ? this.replayNowMs : this.clock.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.clock.sleep(ms, signal);
  }

  /** The number of the timer set last (timers are numbered from 0 in the order they are set). */
  get lastSeq(): number {
    return this.seq - 1;
  }

  setTimer(atMs: number, callback: () => void): TimerHandle {
    const seq = this.seq++;
    if (!this.held) return this.clock.setTimer(atMs, callback);
    const timer: HeldTimer = {
      atMs: Math.max(atMs, this.replayNowMs),
      seq,
      callback,
      cancelled: false,
      armed: undefined,
    };
    push(this.held, timer);
    return {
      cancel: () => {
        timer.cancelled = true;
        timer.armed?.cancel();
      },
    };
  }

  /** From now until `endReplay`, timers are held and `now()` is `fromMs`, then the due time of the timer firing. */
  beginReplay(fromMs: number): void {
    this.held = [];
    this.replayNowMs = fromMs;
  }

  /**
   * Fires the held timers due by `untilMs` in order of (due time, order set), each at its own time; the timers
   * they set join in. The ones still to come are set on the clock, in that order. Returns how many fired.
   */
  endReplay(untilMs: number): number {
    const held = this.held;
    if (!held) return 0;
    let fired = 0;
    for (;;) {
      const next = held[0];
      if (!next || next.atMs > untilMs) break;
      pop(held);
      if (next.cancelled) continue;
      this.replayNowMs = Math.max(this.replayNowMs, next.atMs);
      next.cancelled = true;
      next.callback();
      fired++;
    }
    this.held = undefined;
    const rest: HeldTimer[] = [];
    while (held.length > 0) {
      const timer = held[0] as HeldTimer;
      pop(held);
      if (!timer.cancelled) rest.push(timer);
    }
    for (const timer of rest) {
      timer.armed = this.clock.setTimer(timer.atMs, () => {
        timer.cancelled = true;
        timer.callback();
      });
    }
    return fired;
  }
}

function before(a: HeldTimer, b: HeldTimer): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
}

function push(heap: HeldTimer[], timer: HeldTimer): void {
  heap.push(timer);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!before(timer, heap[parent] as HeldTimer)) break;
    heap[i] = heap[parent] as HeldTimer;
    i = parent;
  }
  heap[i] = timer;
}

function pop(heap: HeldTimer[]): void {
  const last = heap.pop() as HeldTimer;
  if (heap.length === 0) return;
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= heap.length) break;
    const right = left + 1;
    const child =
      right < heap.length && before(heap[right] as HeldTimer, heap[left] as HeldTimer) ? right : left;
    if (!before(heap[child] as HeldTimer, last)) break;
    heap[i] = heap[child] as HeldTimer;
    i = child;
  }
  heap[i] = last;
}

/** A generator that counts its draws; every draw comes from `source` (the same stream, in the same order). */
export class CountedRandom extends Random {
  draws = 0;

  constructor(private readonly source: Random) {
    super(0);
  }

  override nextUint32(): number {
    this.draws++;
    return this.source.nextUint32();
  }

  /** Advances the stream by `count` draws (to where a saved generator stood). */
  skip(count: number): void {
    for (let i = 0; i < count; i++) this.nextUint32();
  }
}
