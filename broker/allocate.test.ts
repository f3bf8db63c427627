import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FreeGpuSlot } from '../runtime/capacity.ts';
import { findAllocation, type LeaseWants, serves, shareOf, total } from './allocate.ts';

const H100_NODE = 98_320_000; // micro-USD per hour for 8 GPUs: 12,290,000 per GPU

function slot(instanceId: string, free: number[], o: Partial<FreeGpuSlot> = {}): FreeGpuSlot {
  return {
    instanceId,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'on-demand',
    gpu: 'H100',
    gpusPerInstance: 8,
    microsPerHour: H100_NODE,
    free,
    ...o,
  };
}

const wants = (o: Partial<LeaseWants> = {}): LeaseWants => ({
  gpu: 'H100',
  count: 1,
  placement: 'any',
  capacityType: 'any',
  ...o,
});

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('serves', () => {
  it('matches the GPU type, the regions and vendors asked for, and the capacity type', () => {
    const spot = slot('s', [0], { capacityType: 'spot' });
    const reserved = slot('r', [0], { capacityType: 'reserved' });
    expect(serves(wants(), slot('a', [0]))).toBe(true);
    expect(serves(wants({ gpu: 'A100-80GB' }), slot('a', [0]))).toBe(false);
    expect(serves(wants({ regions: ['us-west-2'] }), slot('a', [0]))).toBe(false);
    expect(serves(wants({ regions: ['us-west-2', 'us-east-1'] }), slot('a', [0]))).toBe(true);
    expect(serves(wants({ vendors: ['gcp'] }), slot('a', [0]))).toBe(false);
    // On-demand leases take on-demand and reserved capacity, never spot; spot leases only spot.
    expect(serves(wants({ capacityType: 'on-demand' }), spot)).toBe(false);
    expect(serves(wants({ capacityType: 'on-demand' }), reserved)).toBe(true);
    expect(serves(wants({ capacityType: 'spot' }), spot)).toBe(true);
    expect(serves(wants({ capacityType: 'spot' }), reserved)).toBe(false);
    expect(serves(wants({ capacityType: 'any' }), spot)).toBe(true);
  });
});

describe('findAllocation', () => {
  it('puts a single-node lease on the fullest instance that fits, among the cheapest', () => {
    const candidates = [slot('roomy', range(0, 8)), slot('snug', [4, 5, 6, 7]), slot('small', [0, 1])];
    expect(findAllocation(wants({ count: 4, placement: 'single-node' }), candidates)).toEqual([
      { instanceId: 'snug', gpuIndices: [4, 5, 6, 7], microsPerHour: H100_NODE / 2 },
    ]);
    // A cheaper instance wins over a better fit.
    const cheap = slot('cheap', range(0, 8), { capacityType: 'spot', microsPerHour: 40_000_000 });
    expect(findAllocation(wants({ count: 4, placement: 'single-node' }), [...candidates, cheap])).toEqual([
      { instanceId: 'cheap', gpuIndices: [0, 1, 2, 3], microsPerHour: 20_000_000 },
    ]);
    expect(findAllocation(wants({ count: 9, placement: 'single-node' }), candidates)).toBeUndefined();
  });

  it('spreads an any-placement lease over the cheapest GPUs, from the instances with most free first', () => {
    const candidates = [
      slot('b', [0, 1]),
      slot('a', [5, 6, 7]),
      slot('dear', range(0, 8), { microsPerHour: 2 * H100_NODE }),
    ];
    expect(findAllocation(wants({ count: 4 }), candidates)).toEqual([
      { instanceId: 'a', gpuIndices: [5, 6, 7], microsPerHour: shareOf(H100_NODE, 3, 8) },
      { instanceId: 'b', gpuIndices: [0], microsPerHour: shareOf(H100_NODE, 1, 8) },
    ]);
    expect(findAllocation(wants({ count: 13 }), candidates)?.map((a) => a.instanceId)).toEqual([
      'a',
      'b',
      'dear',
    ]);
    expect(findAllocation(wants({ count: 14 }), candidates)).toBeUndefined();
  });

  it('keeps a same-region lease in the region where it costs least', () => {
    const candidates = [
      slot('east', [0, 1], { microsPerHour: 2 * H100_NODE }),
      slot('east2', [0, 1], { microsPerHour: 2 * H100_NODE }),
      slot('west', [0, 1, 2], { region: 'us-west-2' }),
      slot('west2', [3], { region: 'us-west-2' }),
    ];
    const allocation = findAllocation(wants({ count: 4, placement: 'same-region' }), candidates);
    expect(allocation?.map((a) => a.instanceId)).toEqual(['west', 'west2']);
    // Four GPUs in no single region but in two: an any-placement lease gets them, a same-region one does not.
    expect(findAllocation(wants({ count: 5, placement: 'same-region' }), candidates)).toBeUndefined();
    expect(findAllocation(wants({ count: 5 }), candidates)).toBeDefined();
  });

  it('refuses an allocation above the lease’s price cap', () => {
    const candidates = [slot('a', range(0, 8))];
    const half = shareOf(H100_NODE, 4, 8);
    expect(findAllocation(wants({ count: 4, maxMicrosPerHour: half }), candidates)).toHaveLength(1);
    expect(findAllocation(wants({ count: 4, maxMicrosPerHour: half - 1 }), candidates)).toBeUndefined();
  });

  it('ignores instances of another kind or with nothing free', () => {
    const candidates = [
      slot('full', []),
      slot('a100', range(0, 8), { gpu: 'A100-80GB', microsPerHour: 1 }),
      slot('gcp', range(0, 8), { vendor: 'gcp', microsPerHour: 1 }),
      slot('ok', [2, 3]),
    ];
    expect(findAllocation(wants({ count: 2, vendors: ['aws'] }), candidates)).toEqual([
      { instanceId: 'ok', gpuIndices: [2, 3], microsPerHour: shareOf(H100_NODE, 2, 8) },
    ]);
  });

  const slotArb = fc.record({
    instanceId: fc.constantFrom('i-a', 'i-b', 'i-c', 'i-d', 'i-e', 'i-f'),
    vendor: fc.constantFrom('aws', 'gcp'),
    region: fc.constantFrom('us-east-1', 'us-west-2', 'europe-west4'),
    capacityType: fc.constantFrom('on-demand' as const, 'spot' as const, 'reserved' as const),
    gpu: fc.constantFrom('H100', 'H100', 'H100', 'A100-80GB'),
    gpusPerInstance: fc.constantFrom(1, 4, 8, 8),
    microsPerHour: fc.integer({ min: 1, max: 200_000_000 }),
    freeMask: fc.integer({ min: 0, max: 255 }),
  });
  const candidatesArb = fc
    .uniqueArray(slotArb, { selector: (s) => s.instanceId, maxLength: 6 })
    .map((slots) =>
      slots.map(
        ({ freeMask, ...s }): FreeGpuSlot => ({
          ...s,
          free: range(0, s.gpusPerInstance).filter((i) => (freeMask >> i) & 1),
        }),
      ),
    );
  /** Mostly no restriction, sometimes one (so that many leases fit and some do not). */
  const sometimes = <T>(arb: fc.Arbitrary<T>) =>
    fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: arb, weight: 1 });
  const wantsArb = fc.record({
    gpu: fc.constantFrom('H100', 'H100', 'H100', 'A100-80GB'),
    count: fc.integer({ min: 1, max: 12 }),
    placement: fc.constantFrom('single-node' as const, 'same-region' as const, 'any' as const),
    capacityType: fc.constantFrom('on-demand' as const, 'spot' as const, 'any' as const, 'any' as const),
    regions: sometimes(fc.subarray(['us-east-1', 'us-west-2', 'europe-west4'], { minLength: 1 })),
    vendors: sometimes(fc.subarray(['aws', 'gcp'], { minLength: 1 })),
    maxMicrosPerHour: sometimes(fc.integer({ min: 0, max: 400_000_000 })),
  });

  it('gives exactly the GPUs asked for, free ones of instances that serve the lease, within its placement and cap', () => {
    let allocated = 0;
    fc.assert(
      fc.property(wantsArb, candidatesArb, (w, candidates) => {
        const allocation = findAllocation(w, candidates);
        if (allocation) allocated++;
        const byId = new Map(candidates.map((c) => [c.instanceId, c]));
        if (!allocation) {
          // Nothing is refused that plainly fits: enough free GPUs on one serving instance, at no cap.
          if (w.maxMicrosPerHour === undefined)
            expect(candidates.some((c) => serves(w, c) && c.free.length >= w.count)).toBe(false);
          return;
        }
        expect(allocation.reduce((n, a) => n + a.gpuIndices.length, 0)).toBe(w.count);
        expect(new Set(allocation.map((a) => a.instanceId)).size).toBe(allocation.length);
        for (const a of allocation) {
          const c = byId.get(a.instanceId) as FreeGpuSlot;
          expect(serves(w, c)).toBe(true);
          expect(a.gpuIndices.length).toBeGreaterThan(0);
          for (const i of a.gpuIndices) expect(c.free).toContain(i);
          expect(new Set(a.gpuIndices).size).toBe(a.gpuIndices.length);
          expect(a.microsPerHour).toBe(shareOf(c.microsPerHour, a.gpuIndices.length, c.gpusPerInstance));
        }
        if (w.placement === 'single-node') expect(allocation).toHaveLength(1);
        if (w.placement === 'same-region')
          expect(new Set(allocation.map((a) => byId.get(a.instanceId)?.region)).size).toBe(1);
        if (w.maxMicrosPerHour !== undefined)
          expect(total(allocation)).toBeLessThanOrEqual(w.maxMicrosPerHour);
      }),
      { numRuns: 500, seed: 17 },
    );
    // Not vacuous: many of the leases were placed.
    expect(allocated).toBeGreaterThan(100);
  });
});
