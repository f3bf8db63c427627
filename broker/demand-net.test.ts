import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DemandClass } from '../solver/types.ts';
import { type HeldInstance, netOfHeld } from './demand.ts';

const gpu = fc.constantFrom('H100', 'A100');
const group = fc.constantFrom('us', 'eu');
const classes = fc.array(
  fc
    .record({ gpu, regionGroup: group, gangSize: fc.constantFrom(1, 2, 4, 8) })
    .chain((c) =>
      fc
        .array(fc.integer({ min: 0, max: 6 }), { minLength: 3, maxLength: 3 })
        .map((n) => ({ ...c, gpus: n.map((k) => k * c.gangSize) }) as DemandClass),
    ),
  { maxLength: 6 },
);
const held = fc.array(
  fc.record({
    gpu,
    regionGroup: group,
    gpusPerInstance: fc.constantFrom(1, 2, 4, 8),
  }) as fc.Arbitrary<HeldInstance>,
  { maxLength: 5 },
);

describe('netOfHeld (machines of your own count as capacity already there)', () => {
  it('covers whole gangs on machines big enough, then single GPUs', () => {
    const net = netOfHeld(
      [
        { gpu: 'H100', regionGroup: 'us', gangSize: 8, gpus: [16] },
        { gpu: 'H100', regionGroup: 'us', gangSize: 1, gpus: [5] },
        { gpu: 'H100', regionGroup: 'eu', gangSize: 1, gpus: [3] },
      ],
      [
        { gpu: 'H100', regionGroup: 'us', gpusPerInstance: 8 },
        { gpu: 'H100', regionGroup: 'us', gpusPerInstance: 4 },
      ],
    );
    expect(net.map((c) => c.gpus)).toEqual([[8], [1], [3]]);
  });

  it('never adds demand, never goes below zero, keeps gangs whole, and takes at most what is held', () => {
    fc.assert(
      fc.property(classes, held, (cs, hs) => {
        const net = netOfHeld(cs, hs);
        const heldGpus = (g: string, r: string) =>
          hs.filter((h) => h.gpu === g && h.regionGroup === r).reduce((a, h) => a + h.gpusPerInstance, 0);
        for (const [n, c] of net.entries()) {
          const before = cs[n] as DemandClass;
          for (let t = 0; t < c.gpus.length; t++) {
            const g = c.gpus[t] as number;
            expect(g).toBeGreaterThanOrEqual(0);
            expect(g).toBeLessThanOrEqual(before.gpus[t] as number);
            expect(g % before.gangSize).toBe(0);
          }
        }
        for (let t = 0; t < 3; t++)
          for (const g of ['H100', 'A100'])
            for (const r of ['us', 'eu']) {
              const taken = cs.reduce(
                (a, c, n) =>
                  c.gpu === g && c.regionGroup === r
                    ? a + (c.gpus[t] as number) - (net[n]?.gpus[t] as number)
                    : a,
                0,
              );
              expect(taken).toBeLessThanOrEqual(heldGpus(g, r));
            }
        if (hs.length === 0) expect(net).toEqual(cs);
      }),
    );
  });
});
