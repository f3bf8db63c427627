/**
 * Where a lease's GPUs go, among the free GPUs of running instances. Pure: the lease service persists the answer.
 * Cheapest GPUs first; among equals, the fullest instance that fits (best fit keeps whole nodes free for gangs).
 * Free GPUs and their orders are the runtime placement's (`FreeGpuSlot`, `priceThenFit`, `priceThenRoomiest` in
 * `runtime/capacity.ts`, which says why a lease leads with price and a container with fit).
 */
import { type FreeGpuSlot, priceThenFit, priceThenRoomiest } from '../runtime/capacity.ts';

export type Placement = 'single-node' | 'same-region' | 'any';
export type LeaseCapacityType = 'on-demand' | 'spot' | 'any';

export interface LeaseWants {
  readonly gpu: string;
  readonly count: number;
  readonly placement: Placement;
  readonly regions?: readonly string[] | undefined;
  readonly vendors?: readonly string[] | undefined;
  readonly capacityType: LeaseCapacityType;
  readonly maxMicrosPerHour?: number | undefined;
}

export interface Allocation {
  readonly instanceId: string;
  readonly gpuIndices: number[];
  /** This allocation's share of the instance's price. */
  readonly microsPerHour: number;
}

/** Whether an instance (or offering) of this kind may serve the lease, ignoring free GPUs. */
export function serves(
  wants: LeaseWants,
  o: Omit<FreeGpuSlot, 'free' | 'instanceId' | 'microsPerHour'>,
): boolean {
  if (o.gpu !== wants.gpu) return false;
  if (wants.regions && !wants.regions.includes(o.region)) return false;
  if (wants.vendors && !wants.vendors.includes(o.vendor)) return false;
  if (wants.capacityType === 'on-demand' && o.capacityType === 'spot') return false;
  if (wants.capacityType === 'spot' && o.capacityType !== 'spot') return false;
  return true;
}

/** Share of an hourly price for `gpus` of an instance's GPUs, in whole micros. */
export function shareOf(microsPerHour: number, gpus: number, gpusPerInstance: number): number {
  return Math.round((microsPerHour * gpus) / gpusPerInstance);
}

export function findAllocation(
  wants: LeaseWants,
  candidates: readonly FreeGpuSlot[],
): Allocation[] | undefined {
  const usable = candidates.filter((c) => c.free.length > 0 && serves(wants, c));
  let best: Allocation[] | undefined;
  if (wants.placement === 'single-node') {
    const chosen = usable.filter((c) => c.free.length >= wants.count).sort(priceThenFit)[0];
    if (chosen) best = [take(chosen, wants.count)];
  } else if (wants.placement === 'same-region') {
    for (const region of [...new Set(usable.map((c) => c.region))].sort()) {
      const option = greedy(
        usable.filter((c) => c.region === region),
        wants.count,
      );
      if (option && (!best || total(option) < total(best))) best = option;
    }
  } else {
    best = greedy(usable, wants.count);
  }
  if (!best) return undefined;
  if (wants.maxMicrosPerHour !== undefined && total(best) > wants.maxMicrosPerHour) return undefined;
  return best;
}

export function total(allocations: readonly Allocation[]): number {
  return allocations.reduce((sum, a) => sum + a.microsPerHour, 0);
}

/** Cheapest GPUs first, taking from instances with more free GPUs first so a lease spans few instances. */
function greedy(candidates: readonly FreeGpuSlot[], count: number): Allocation[] | undefined {
  const sorted = [...candidates].sort(priceThenRoomiest);
  const result: Allocation[] = [];
  let left = count;
  for (const c of sorted) {
    if (left === 0) break;
    const n = Math.min(left, c.free.length);
    result.push(take(c, n));
    left -= n;
  }
  return left === 0 ? result : undefined;
}

function take(c: FreeGpuSlot, n: number): Allocation {
  return {
    instanceId: c.instanceId,
    gpuIndices: c.free.slice(0, n),
    microsPerHour: shareOf(c.microsPerHour, n, c.gpusPerInstance),
  };
}
