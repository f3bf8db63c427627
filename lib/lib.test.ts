import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sameElements } from './arrays.ts';
import { VirtualClock } from './clock.ts';
import { IdGenerator } from './ids.ts';
import {
  costOf,
  costOfSecondsRoundedUp,
  formatUsd,
  micros,
  microsToUsd,
  parseUsd,
  perHourRate,
  perSecondRateRoundedUp,
  roundUsdToMicro,
  unroundedCostOf,
  usdToMicros,
} from './money.ts';
import { Random } from './random.ts';

describe('money', () => {
  it('parses catalog prices exactly', () => {
    expect(parseUsd('55.04')).toBe(55_040_000);
    expect(parseUsd('0.0001')).toBe(100);
    expect(parseUsd('113.9328')).toBe(113_932_800);
    expect(() => parseUsd('1.0000001')).toThrow(/precision/);
    expect(() => parseUsd('-1')).toThrow();
  });

  it('bills a split interval as the sum of its parts within one micro per part', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200_000_000 }),
        fc.array(fc.integer({ min: 0, max: 86_400_000 }), { minLength: 1, maxLength: 20 }),
        (price, parts) => {
          const whole = costOf(
            micros(price),
            parts.reduce((a, b) => a + b, 0),
          );
          const sum = parts.reduce((acc, ms) => acc + costOf(micros(price), ms), 0);
          expect(Math.abs(whole - sum)).toBeLessThanOrEqual(parts.length);
          expect(Number.isSafeInteger(whole)).toBe(true);
        },
      ),
    );
  });

  it('formats USD', () => {
    expect(formatUsd(usdToMicros(1234.5))).toBe('$1,234.50');
    expect(formatUsd(micros(100))).toBe('$0.0001');
  });

  it('converts between micros and USD floats, rounding only where it says so', () => {
    expect(microsToUsd(12_290_000)).toBe(12.29);
    expect(usdToMicros(12.2900004)).toBe(12_290_000);
    expect(roundUsdToMicro(98.3200004)).toBe(98.32);
    expect(roundUsdToMicro(0.0000005)).toBe(0.000001);
  });

  it('converts rates per hour and per second, and costs seconds and milliseconds', () => {
    // 12,290,000 micro-USD an hour is 3,413.88… a second: the price book's rate rounds up.
    expect(perSecondRateRoundedUp(12_290_000)).toBe(3_414);
    expect(perSecondRateRoundedUp(3_600)).toBe(1);
    expect(perHourRate(3_414)).toBe(12_290_400);
    // 61 s of a 98.32 $/h instance: 1,665,977.77… micros, rounded up.
    expect(costOfSecondsRoundedUp(98_320_000, 61)).toBe(1_665_978);
    expect(unroundedCostOf(98_320_000, 61_000)).toBeCloseTo(1_665_977.7778, 3);
    // Rounded up: the least whole micro that is not below the cost (exact integer arithmetic on both sides).
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200_000_000 }),
        fc.integer({ min: 0, max: 86_400 }),
        (price, s) => {
          const cost = costOfSecondsRoundedUp(price, s);
          expect(cost * 3_600).toBeGreaterThanOrEqual(s * price);
          expect((cost - 1) * 3_600).toBeLessThan(s * price);
        },
      ),
    );
  });
});

describe('Random', () => {
  it('repeats a sequence for a seed and differs across seeds', () => {
    const a = new Random(42);
    const b = new Random(42);
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    expect(new Random(43).next()).not.toBe(seqA[0]);
  });

  it('draws integers within bounds', () => {
    const r = new Random('bounds');
    for (let i = 0; i < 1000; i++) {
      const v = r.int(-3, 3);
      expect(v).toBeGreaterThanOrEqual(-3);
      expect(v).toBeLessThanOrEqual(3);
    }
  });
});

describe('VirtualClock', () => {
  it('fires timers in due order only when advanced', async () => {
    const clock = new VirtualClock(1_000);
    const fired: number[] = [];
    void clock.sleep(500).then(() => fired.push(clock.now()));
    void clock.sleep(100).then(() => fired.push(clock.now()));
    await clock.advanceBy(50);
    expect(fired).toEqual([]);
    await clock.advanceBy(1_000);
    expect(fired).toEqual([1_100, 1_500]);
    expect(clock.now()).toBe(2_050);
  });

  it('fires callback timers in (due time, creation order), skipping cancelled ones', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ delay: fc.integer({ min: 0, max: 50 }), cancel: fc.boolean() }), {
          maxLength: 60,
        }),
        async (specs) => {
          const clock = new VirtualClock(0);
          const fired: { at: number; index: number }[] = [];
          const handles = specs.map((spec, index) =>
            clock.setTimer(spec.delay, () => fired.push({ at: clock.now(), index })),
          );
          for (const [index, spec] of specs.entries()) if (spec.cancel) handles[index]?.cancel();
          expect(clock.pendingTimers()).toBe(specs.filter((s) => !s.cancel).length);
          await clock.runUntilIdle();
          const expected = specs
            .map((spec, index) => ({ at: spec.delay, index, cancel: spec.cancel }))
            .filter((t) => !t.cancel)
            .sort((a, b) => a.at - b.at || a.index - b.index)
            .map(({ at, index }) => ({ at, index }));
          expect(fired).toEqual(expected);
          expect(clock.pendingTimers()).toBe(0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('fireNext: fires one due timer at a time, says whether another is due, and leaves continuations to the caller', async () => {
    const clock = new VirtualClock(0);
    const log: string[] = [];
    // Two sleepers due at 10, each with a two-step continuation; a third at 20 that the advance must not reach.
    for (const name of ['a', 'b'])
      void clock
        .sleep(10)
        .then(() => log.push(`${name}1`))
        .then(() => log.push(`${name}2`));
    void clock.sleep(20).then(() => log.push('c'));
    const turn = () => new Promise((resolve) => setImmediate(resolve));
    expect(clock.fireNext(9)).toBe(false);
    expect(clock.now()).toBe(0);
    expect(clock.fireNext(10)).toBe(true);
    expect(clock.now()).toBe(10);
    await turn();
    expect(log).toEqual(['a1', 'a2']);
    expect(clock.fireNext(10)).toBe(false);
    await turn();
    expect(log).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(clock.fireNext(10)).toBe(false);
    expect(clock.fireNext(20)).toBe(false);
    await turn();
    expect(log).toEqual(['a1', 'a2', 'b1', 'b2', 'c']);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('aborts a sleep through its signal', async () => {
    const clock = new VirtualClock(0);
    const controller = new AbortController();
    const slept = clock.sleep(1_000, controller.signal);
    controller.abort(new Error('stop'));
    await expect(slept).rejects.toThrow('stop');
    expect(clock.nextTimerAt()).toBeUndefined();
  });

  it('makes sortable, reproducible ids', () => {
    const clock = new VirtualClock(1_700_000_000_000);
    const a = new IdGenerator(clock, new Random(1)).next('lease');
    const b = new IdGenerator(clock, new Random(1)).next('lease');
    expect(a).toBe(b);
    expect(a).toMatch(/^lease_[0-9a-z]{20}$/);
  });
});

describe('sameElements', () => {
  it('is true exactly when both arrays hold the same elements in the same order', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 })),
        fc.array(fc.integer({ min: 0, max: 3 })),
        (a, b) => {
          expect(sameElements(a, b)).toBe(JSON.stringify(a) === JSON.stringify(b));
          expect(sameElements(a, [...a])).toBe(true);
        },
      ),
    );
  });
});
