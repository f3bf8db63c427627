/**
 * Where the wall time goes, for `wallShare`: the named methods of an object are wrapped so that the time spent
 * inside them (until the promise settles, for async ones) adds to an account. Nested calls of the same account
 * count once. Measurement only: the wrapped methods behave exactly as before.
 */

export class WallAccount {
  ms = 0;
  private depth = 0;
  private since = 0;

  enter(): void {
    if (this.depth++ === 0) this.since = performance.now();
  }

  leave(): void {
    if (--this.depth === 0) this.ms += performance.now() - this.since;
  }
}

/** Wraps `names` on `target` (own or inherited, public or private methods) to time them into `account`. */
export function timeMethods(target: object, names: readonly string[], account: WallAccount): void {
  const object = target as Record<string, unknown>;
  for (const name of names) {
    const original = object[name];
    if (typeof original !== 'function') throw new Error(`cannot time ${name}: not a method`);
    object[name] = function timed(this: unknown, ...args: unknown[]) {
      account.enter();
      let result: unknown;
      try {
        result = original.apply(this, args);
      } catch (error) {
        account.leave();
        throw error;
      }
      if (result instanceof Promise)
        return result.finally(() => {
          account.leave();
        });
      account.leave();
      return result;
    };
  }
}
