import { describe, expect, it } from 'vitest';
import { BackoffExhausted, type BackoffPolicy, backoffDelayMs, withBackoff } from './backoff.ts';
import { VirtualClock } from './clock.ts';
import { Random } from './random.ts';

const POLICY: BackoffPolicy = { maxRetries: 3, baseDelayMs: 100, maxDelayMs: 300 };

class Throttled extends Error {
  constructor(readonly askedMs?: number) {
    super('throttled');
  }
}

/** A call that fails with `failures` in turn, then answers 'ok'; `at` records when each attempt was made. */
function flaky(clock: VirtualClock, failures: readonly Error[]) {
  const at: number[] = [];
  const call = async () => {
    at.push(clock.now());
    const failure = failures[at.length - 1];
    if (failure) throw failure;
    return 'ok';
  };
  return { at, call };
}

/** Runs the clock until `work` ends (a bounded number of turns, so that a broken loop fails instead of spinning). */
async function settle<T>(clock: VirtualClock, work: Promise<T>): Promise<T> {
  let ended = false;
  const tracked = work.finally(() => {
    ended = true;
  });
  for (let turn = 0; !ended && turn < 100; turn++) await clock.runUntilIdle();
  return tracked;
}

describe('backoff', () => {
  it('doubles the wait from the base up to the cap; equal jitter draws the upper half from the seed', () => {
    expect([0, 1, 2, 3].map((retry) => backoffDelayMs(POLICY, retry))).toEqual([100, 200, 300, 300]);
    const jittered = (seed: number) =>
      [0, 1, 2, 3].map((retry) => backoffDelayMs(POLICY, retry, new Random(seed)));
    const waits = jittered(7);
    expect(jittered(7)).toEqual(waits);
    waits.forEach((wait, retry) => {
      const ceiling = backoffDelayMs(POLICY, retry);
      expect(Number.isInteger(wait)).toBe(true);
      expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
      expect(wait).toBeLessThanOrEqual(ceiling);
    });
  });

  it('retries what is retryable on the clock, waits at least as long as a failure asks, and rethrows the rest at once', async () => {
    const clock = new VirtualClock(0);
    const retryable = (e: unknown) => e instanceof Throttled;
    const { at, call } = flaky(clock, [new Throttled(), new Throttled(1_000), new Throttled()]);
    const atLeastMs = (e: unknown) => (e as Throttled).askedMs;
    expect(await settle(clock, withBackoff({ clock, policy: POLICY, retryable, atLeastMs }, call))).toBe(
      'ok',
    );
    expect(at).toEqual([0, 100, 1_100, 1_400]);

    const other = flaky(clock, [new Error('refused')]);
    await expect(withBackoff({ clock, policy: POLICY, retryable }, other.call)).rejects.toThrow('refused');
    expect(other.at).toHaveLength(1);
  });

  it('takes the first wait from the failure when told to', async () => {
    const clock = new VirtualClock(0);
    const { at, call } = flaky(clock, [new Throttled(50), new Throttled(50)]);
    const options = {
      clock,
      policy: { ...POLICY, maxDelayMs: Number.POSITIVE_INFINITY },
      retryable: (e: unknown) => e instanceof Throttled,
      baseDelayFrom: (e: unknown) => (e as Throttled).askedMs ?? 0,
    };
    expect(await settle(clock, withBackoff(options, call))).toBe('ok');
    expect(at).toEqual([0, 50, 150]);
  });

  it('gives up after the last retry with the last error, the attempts made and the wait that would have come next', async () => {
    const clock = new VirtualClock(0);
    const last = new Throttled();
    const { at, call } = flaky(clock, [new Throttled(), new Throttled(), new Throttled(), last]);
    const error = await settle(
      clock,
      withBackoff({ clock, policy: POLICY, retryable: (e) => e instanceof Throttled }, call).catch(
        (e: unknown) => e,
      ),
    );
    expect(error).toBeInstanceOf(BackoffExhausted);
    expect(error).toMatchObject({ last, attempts: 4, retryAfterMs: 300 });
    expect(at).toEqual([0, 100, 300, 600]);
  });

  it('ends a wait when its signal is aborted', async () => {
    const clock = new VirtualClock(0);
    const stop = new AbortController();
    const { at, call } = flaky(clock, [new Throttled()]);
    const waiting = withBackoff(
      { clock, policy: POLICY, retryable: (e) => e instanceof Throttled, signal: stop.signal },
      call,
    );
    await Promise.resolve();
    stop.abort(new Error('closing'));
    await expect(waiting).rejects.toThrow('closing');
    expect(at).toEqual([0]);
  });
});
