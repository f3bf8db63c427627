import { describe, expect, it } from 'vitest';
import { untimed, WallAccount } from './stopwatch.ts';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('WallAccount', () => {
  it('sums the wall time of synchronous and asynchronous work, and returns and throws what the work does', async () => {
    const account = new WallAccount();
    expect(
      account.time(() => {
        busy(5);
        return 42;
      }),
    ).toBe(42);
    expect(account.ms).toBeGreaterThanOrEqual(5);
    const before = account.ms;
    await expect(
      account.time(() => new Promise((resolve) => setTimeout(() => resolve('done'), 20))),
    ).resolves.toBe('done');
    expect(account.ms - before).toBeGreaterThanOrEqual(15);
    expect(() =>
      account.time(() => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    await expect(account.time(() => Promise.reject(new Error('late')))).rejects.toThrow('late');
  });

  it('counts overlapping and nested work once', async () => {
    const account = new WallAccount();
    const wait = (ms: number) => account.time(() => new Promise((resolve) => setTimeout(resolve, ms)));
    const started = performance.now();
    await Promise.all([wait(30), wait(30), account.time(() => wait(30))]);
    const elapsed = performance.now() - started;
    expect(account.ms).toBeGreaterThanOrEqual(25);
    expect(account.ms).toBeLessThanOrEqual(elapsed + 1);
  });

  it('sampling one stretch of work in N estimates the whole', () => {
    // A clock that each stretch of work moves by 1 to 3 ms, in a pattern of period 2 that a sample of every 8th
    // stretch would get wrong.
    let nowMs = 0;
    const now = () => nowMs;
    const exact = new WallAccount({ now });
    const sampled = new WallAccount({ sampleOneIn: 8, now });
    for (let i = 0; i < 4_000; i++)
      exact.time(() =>
        sampled.time(() => {
          nowMs += i % 2 === 0 ? 1 : 3;
        }),
      );
    expect(exact.ms).toBe(8_000);
    expect(sampled.ms).toBeGreaterThan(8_000 * 0.85);
    expect(sampled.ms).toBeLessThan(8_000 * 1.15);
    expect(() => new WallAccount({ sampleOneIn: 0 })).toThrow('sampleOneIn');
  });

  it('untimed runs the work alone', () => {
    expect(untimed.time(() => 'x')).toBe('x');
  });
});
