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

/** A Stopwatch that sums the wall time its work took, in milliseconds. */
export class WallAccount implements Stopwatch {
  ms = 0;
  private depth = 0;
  private since = 0;

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
    if (this.depth++ === 0) this.since = performance.now();
  }

  private leave(): void {
    if (--this.depth === 0) this.ms += performance.now() - this.since;
  }
}
