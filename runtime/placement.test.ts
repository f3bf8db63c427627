import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { FreeGpuSlot } from './capacity.ts';
import { MemoryCapacity, type MemoryInstance } from './memory-capacity.ts';
import { placeContainer, SlotIndex } from './placement.ts';

const slot = (
  instanceId: string,
  gpu: string,
  free: number[],
  extra: Partial<FreeGpuSlot> = {},
): FreeGpuSlot => ({
  instanceId,
  vendor: 'aws',
  region: 'us-east-1',
  capacityType: 'on-demand',
  gpu,
  gpusPerInstance: 8,
  microsPerHour: 32_000_000,
  free,
  ...extra,
});

describe('placeContainer', () => {
  it('fills the fullest instance that still fits, then the cheapest per GPU, then by id', () => {
    const slots = [
      slot('i-empty', 'H100', [0, 1, 2, 3, 4, 5, 6, 7]),
      slot('i-two-left', 'H100', [5, 7]),
      slot('i-one-left', 'H100', [3]),
      slot('i-b', 'H100', [0, 1, 2], { microsPerHour: 24_000_000 }),
      slot('i-a', 'H100', [4, 5, 6], { microsPerHour: 24_000_000 }),
      slot('i-c', 'H100', [0, 1, 2], { microsPerHour: 16_000_000 }),
    ];
    expect(placeContainer(slots, { gpus: [{ gpu: 'H100', count: 1 }] })).toMatchObject({
      instanceId: 'i-one-left',
      gpu: 'H100',
      gpuIndices: [3],
    });
    expect(placeContainer(slots, { gpus: [{ gpu: 'H100', count: 2 }] })?.gpuIndices).toEqual([5, 7]);
    expect(placeContainer(slots, { gpus: [{ gpu: 'H100', count: 3 }] })?.instanceId).toBe('i-c');
    expect(placeContainer(slots.slice(0, 5), { gpus: [{ gpu: 'H100', count: 3 }] })?.instanceId).toBe('i-a');
    expect(placeContainer(slots, { gpus: [{ gpu: 'H100', count: 8 }] })?.instanceId).toBe('i-empty');
    expect(placeContainer(slots, { gpus: [{ gpu: 'H100', count: 9 }] })).toBeUndefined();
  });

  it('tries the preference list in order and honours regions', () => {
    const slots = [
      slot('i-h100-eu', 'H100', [0], { region: 'eu-west-1' }),
      slot('i-a100', 'A100-80GB', [0, 1]),
      slot('i-l4', 'L4', [0]),
    ];
    const gpus = [
      { gpu: 'H100', count: 1 },
      { gpu: 'A100-80GB', count: 2 },
    ];
    expect(placeContainer(slots, { gpus })?.instanceId).toBe('i-h100-eu');
    expect(placeContainer(slots, { gpus, regions: ['us-east-1'] })).toMatchObject({
      instanceId: 'i-a100',
      gpu: 'A100-80GB',
      gpuIndices: [0, 1],
    });
    expect(
      placeContainer(slots, { gpus: [{ gpu: 'L4', count: 1 }], regions: ['eu-west-1'] }),
    ).toBeUndefined();
    expect(placeContainer([], { gpus })).toBeUndefined();
  });

  const GPUS = ['H100', 'A100-80GB', 'L4'];
  const REGIONS = ['us-east-1', 'eu-west-1'];
  const fleetArb = fc
    .array(
      fc.record({
        gpu: fc.constantFrom(...GPUS),
        gpusPerInstance: fc.constantFrom(1, 2, 4, 8),
        region: fc.constantFrom(...REGIONS),
        perGpu: fc.integer({ min: 1, max: 5 }),
      }),
      { minLength: 1, maxLength: 12 },
    )
    .map((rows) =>
      rows.map(
        (r, i): MemoryInstance => ({
          instanceId: `i-${String(i).padStart(2, '0')}`,
          vendor: 'aws',
          region: r.region,
          capacityType: 'on-demand',
          gpu: r.gpu,
          gpusPerInstance: r.gpusPerInstance,
          microsPerHour: r.perGpu * 1_000_000 * r.gpusPerInstance,
        }),
      ),
    );
  const wantArb = fc.record({
    gpus: fc.uniqueArray(
      fc.record({ gpu: fc.constantFrom(...GPUS), count: fc.constantFrom(1, 1, 2, 3, 4, 8) }),
      { minLength: 1, maxLength: 3, selector: (w) => `${w.gpu}:${w.count}` },
    ),
    regions: fc.option(fc.subarray(REGIONS, { minLength: 1 }), { nil: undefined }),
  });
  const opArb = fc.oneof(
    { weight: 3, arbitrary: wantArb.map((want) => ({ kind: 'place' as const, want })) },
    { weight: 2, arbitrary: fc.nat().map((pick) => ({ kind: 'release' as const, pick })) },
  );

  it('never double-books a GPU, uses only free GPUs of the wanted type and region, and finds a fit when one exists (scan and index alike)', () => {
    fc.assert(
      fc.property(fleetArb, fc.array(opArb, { maxLength: 60 }), (fleet, ops) => {
        const capacity = new MemoryCapacity(fleet);
        // Kept up to date incrementally, as the runtime does within a reconcile: placements taken, releases re-read.
        const index = new SlotIndex(capacity.freeGpus());
        const booked = new Map<string, string[]>();
        const taken = new Set<string>();
        let next = 0;
        for (const op of ops) {
          if (op.kind === 'release') {
            const owners = [...booked.keys()];
            if (owners.length === 0) continue;
            const owner = owners[op.pick % owners.length] as string;
            const gpus = booked.get(owner) ?? [];
            for (const gpu of gpus) taken.delete(gpu);
            booked.delete(owner);
            capacity.free(owner);
            const instances = new Set(gpus.map((gpu) => gpu.split(':')[0]));
            for (const s of capacity.freeGpus()) if (instances.has(s.instanceId)) index.set(s);
            continue;
          }
          const slots = capacity.freeGpus();
          const { want } = op;
          const allowed = (s: FreeGpuSlot) => !want.regions || want.regions.includes(s.region);
          // The oracle: the first preference some instance can hold, and the best fits for it.
          const firstFit = want.gpus.find((w) =>
            slots.some((s) => s.gpu === w.gpu && s.free.length >= w.count && allowed(s)),
          );
          const placed = placeContainer(slots, want);
          expect(index.place(want)).toEqual(placed);
          if (!firstFit) {
            expect(placed).toBeUndefined();
            continue;
          }
          expect(placed).toBeDefined();
          if (!placed) continue;
          const chosen = slots.find((s) => s.instanceId === placed.instanceId) as FreeGpuSlot;
          expect(placed.gpu).toBe(firstFit.gpu);
          expect(chosen.gpu).toBe(firstFit.gpu);
          expect(allowed(chosen)).toBe(true);
          expect(placed.gpuIndices).toHaveLength(firstFit.count);
          expect(new Set(placed.gpuIndices).size).toBe(firstFit.count);
          for (const g of placed.gpuIndices) {
            expect(chosen.free).toContain(g);
            expect(taken.has(`${placed.instanceId}:${g}`)).toBe(false);
          }
          const fits = slots.filter(
            (s) => s.gpu === firstFit.gpu && s.free.length >= firstFit.count && allowed(s),
          );
          expect(chosen.free.length).toBe(Math.min(...fits.map((s) => s.free.length)));
          const perGpu = (s: FreeGpuSlot) => s.microsPerHour / s.gpusPerInstance;
          const tightest = fits.filter((s) => s.free.length === chosen.free.length);
          expect(perGpu(chosen)).toBe(Math.min(...tightest.map(perGpu)));
          const owner = `ctr-${next++}`;
          capacity.allocate(owner, placed.instanceId, placed.gpuIndices);
          index.take(placed);
          const gpus = placed.gpuIndices.map((g) => `${placed.instanceId}:${g}`);
          for (const gpu of gpus) taken.add(gpu);
          booked.set(owner, gpus);
        }
        expect(capacity.heldCount()).toBe(taken.size);
      }),
      { numRuns: 300 },
    );
  });
});
