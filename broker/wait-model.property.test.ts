import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectedWaitMs, waitProbability } from './wait-model.ts';

/** P(K ≥ held) for K ~ Poisson(load) summed the textbook way, for small loads. */
function directTail(load: number, held: number): number {
  let below = 0;
  let term = Math.exp(-load);
  for (let k = 0; k < held; k++) {
    below += term;
    term *= load / (k + 1);
  }
  return Math.max(0, 1 - below);
}

const load = fc.integer({ min: 0, max: 2_000 });
const held = fc.integer({ min: 0, max: 2_200 });

describe('the M/G/∞ wait model', () => {
  it('never waits longer with more GPUs held, and never more than one boot', () => {
    fc.assert(
      fc.property(
        load,
        held,
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 3_600_000 }),
        (a, c, more, boot) => {
          const p = waitProbability(a, c);
          expect(p).toBeGreaterThanOrEqual(0);
          expect(p).toBeLessThanOrEqual(1);
          expect(waitProbability(a, c + more)).toBeLessThanOrEqual(p);
          const wait = expectedWaitMs(a, c, boot);
          expect(Number.isInteger(wait)).toBe(true);
          expect(wait).toBeLessThanOrEqual(boot);
          expect(expectedWaitMs(a, c + more, boot)).toBeLessThanOrEqual(wait);
        },
      ),
    );
  });

  it('waits more under more load, for the same GPUs held (to rounding: each load sums its own terms)', () => {
    fc.assert(
      fc.property(load, held, fc.integer({ min: 1, max: 40 }), (a, c, more) => {
        expect(waitProbability(a + more, c)).toBeGreaterThanOrEqual(waitProbability(a, c) - 1e-9);
      }),
    );
  });

  it('is the Poisson tail', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 120 }), (a, c) => {
        expect(waitProbability(a, c)).toBeCloseTo(directTail(a, c), 9);
      }),
    );
    // Nothing held: every request waits a boot; no load: a single held GPU is always free.
    expect(expectedWaitMs(5, 0, 180_000)).toBe(180_000);
    expect(waitProbability(0, 1)).toBe(0);
    // One GPU of load on one held GPU: P(K ≥ 1) = 1 − e^−1.
    expect(waitProbability(1, 1)).toBeCloseTo(1 - Math.exp(-1), 12);
  });
});
