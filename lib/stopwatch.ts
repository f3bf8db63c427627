/**
 * Where the wall time goes, for profiles (a simulation's `wallShare`): a part of the broker takes a Stopwatch and runs
 * its entry points through `time`, which adds the wall time until the work ends (the promise settles, for async work)
 * to the account. Work that overlaps in time counts once. Measurement only: `time` returns what the work returns and
 * throws what it throws. Parts default to `untimed`, which only runs the work.
 *
 * Wall time, not the Clock's: a profile measures this process, whatever clock the broker runs on.
 */
export interface Stopwatch {
  time<T>(work: () => T): T;
}

/** Runs the work and measures nothing. */
export const untimed: Stopwatch = { time: (work) => work() };

/**
 * A Stopwatch that sums the wall time its work took, in milliseconds. With `sampleOneIn` N > 1 it times about one
 * stretch of work in N (drawn by a fixed-seed xorshift, so no pattern in the work lines up with it) and counts it N
 * times: where the work comes in millions of microsecond pieces (a simulation's runtime), reading the clock around
 * each cost 5 % of the run.
 */
export class WallAccount implements Stopwatch {
  ms = 0;
  private depth = 0;
  private since = 0;
  /** Whether the stretch of work in progress is timed. */
  private timed = false;
  private draw = 0x2545f491;
  /** How many stretches one timed stretch stands for (`sampleOneIn`). */
  private readonly weight: number;
  private readonly threshold: number;
  private readonly now: () => number;

  constructor(
    options: {
      readonly sampleOneIn?: number;
      /** Wall-clock reading, ms (tests give their own). */
      readonly now?: () => number;
    } = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    this.weight = options.sampleOneIn ?? 1;
    if (!(Number.isInteger(this.weight) && this.weight >= 1))
      throw new RangeError('sampleOneIn must be an integer of at least 1');
    this.threshold = 2 ** 32 / this.weight;
  }

  time<T>(work: () => T): T {
    this.enter();
    let result: T;
    try {
      result = work();
    } catch (error) {
      this.leave();
      throw error;
    }
    if (result instanceof Promise) return result.finally(() => this.leave()) as T;
    this.leave();
    return result;
  }

  private enter(): void {
    if (this.depth++ !== 0) return;
    this.timed = this.sampled();
    if (this.timed) this.since = this.now();
  }

  private leave(): void {
    if (--this.depth === 0 && this.timed) this.ms += (this.now() - this.since) * this.weight;
  }

  private sampled(): boolean {
    if (this.weight === 1) return true;
    let x = this.draw;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.draw = x >>> 0;
    return this.draw < this.threshold;
  }
}
