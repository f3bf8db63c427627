/**
 * Where a container goes, among the free GPUs of running instances. Pure: the runtime holds the answer through
 * `GpuCapacity.allocate`. The GPU preference list is tried in order; for one entry the choice is best fit, the first
 * instance with `count` free GPUs in `fitThenPrice` order (`capacity.ts`):
 *   1. the fewest free GPUs (fill the busiest instances first, so that idle ones drain and whole nodes stay free
 *      for gangs),
 *   2. then the cheapest per GPU,
 *   3. then the smallest instanceId (deterministic).
 * The GPUs taken are the lowest free indices, so two containers never share a GPU of a snapshot.
 *
 * `placeContainer` scans the slots (the reference, fine for a few hundred instances); `SlotIndex` gives the same
 * answers from slots bucketed by GPU type and free count, and takes placements as it goes, so a reconcile that
 * places many containers on a 1,000-instance snapshot looks only at instances that can fit.
 */
import { type FreeGpuSlot, fitThenPrice } from './capacity.ts';
import type { GpuWant } from './function-spec.ts';

export interface PlacementWants {
  /** Preference order; each entry needs `count` GPUs on one instance. */
  readonly gpus: readonly GpuWant[];
  readonly regions?: readonly string[] | undefined;
}

export interface ContainerPlacement {
  readonly instanceId: string;
  readonly gpu: string;
  readonly gpuIndices: number[];
  /** The instance it goes on (vendor, region, capacity type and price for the meter). */
  readonly slot: FreeGpuSlot;
}

/** A single pass over the slots per preference: O(slots × preferences), no allocation but the answer. */
export function placeContainer(
  slots: readonly FreeGpuSlot[],
  want: PlacementWants,
): ContainerPlacement | undefined {
  const regions = want.regions && want.regions.length > 0 ? want.regions : undefined;
  for (const { gpu, count } of want.gpus) {
    let best: FreeGpuSlot | undefined;
    for (const slot of slots) {
      if (slot.gpu !== gpu || slot.free.length < count) continue;
      if (regions && !regions.includes(slot.region)) continue;
      if (!best || fitThenPrice(slot, best) < 0) best = slot;
    }
    if (best) return { instanceId: best.instanceId, gpu, gpuIndices: best.free.slice(0, count), slot: best };
  }
  return undefined;
}

/**
 * Free GPUs indexed by GPU type, then by free count. `place` looks at the buckets of the wanted type from `count`
 * free GPUs upwards and stops at the first bucket with a fit (best fit), scanning only that bucket for the cheapest.
 */
export class SlotIndex {
  private readonly slots = new Map<string, FreeGpuSlot>();
  /** gpu → [free count] → instanceId → slot (instances with no free GPU are not bucketed). */
  private readonly byGpu = new Map<string, Map<string, FreeGpuSlot>[]>();

  constructor(slots: Iterable<FreeGpuSlot> = []) {
    for (const slot of slots) this.set(slot);
  }

  get size(): number {
    return this.slots.size;
  }

  get(instanceId: string): FreeGpuSlot | undefined {
    return this.slots.get(instanceId);
  }

  /** Adds or replaces an instance's slot. */
  set(slot: FreeGpuSlot): void {
    this.delete(slot.instanceId);
    this.slots.set(slot.instanceId, slot);
    const n = slot.free.length;
    if (n === 0) return;
    let buckets = this.byGpu.get(slot.gpu);
    if (!buckets) {
      buckets = [];
      this.byGpu.set(slot.gpu, buckets);
    }
    while (buckets.length <= n) buckets.push(new Map());
    (buckets[n] as Map<string, FreeGpuSlot>).set(slot.instanceId, slot);
  }

  delete(instanceId: string): void {
    const old = this.slots.get(instanceId);
    if (!old) return;
    this.slots.delete(instanceId);
    this.byGpu.get(old.gpu)?.[old.free.length]?.delete(instanceId);
  }

  /** The same answer as `placeContainer` over the indexed slots. */
  place(want: PlacementWants): ContainerPlacement | undefined {
    const regions = want.regions && want.regions.length > 0 ? want.regions : undefined;
    for (const { gpu, count } of want.gpus) {
      const buckets = this.byGpu.get(gpu);
      if (!buckets) continue;
      for (let n = count; n < buckets.length; n++) {
        let best: FreeGpuSlot | undefined;
        for (const slot of (buckets[n] as Map<string, FreeGpuSlot>).values()) {
          if (regions && !regions.includes(slot.region)) continue;
          if (!best || fitThenPrice(slot, best) < 0) best = slot;
        }
        if (best)
          return { instanceId: best.instanceId, gpu, gpuIndices: best.free.slice(0, count), slot: best };
      }
    }
    return undefined;
  }

  /** Records that a placement took its GPUs. */
  take(placement: Pick<ContainerPlacement, 'instanceId' | 'gpuIndices'>): void {
    const slot = this.slots.get(placement.instanceId);
    if (slot) this.set(withoutPlaced(slot, placement.gpuIndices));
  }
}

/** The slot left after `placement` took its GPUs (for placing several containers on one snapshot). */
export function withoutPlaced(slot: FreeGpuSlot, gpuIndices: readonly number[]): FreeGpuSlot {
  const taken = new Set(gpuIndices);
  return { ...slot, free: slot.free.filter((g) => !taken.has(g)) };
}
