/**
 * What the runtime needs of the fleet: free GPUs of running instances, and a way to hold and give back GPUs under
 * an owner id (a container id here; the broker's Fleet also holds leases this way, so the two never collide).
 */

export interface FreeGpuSlot {
  readonly instanceId: string;
  readonly vendor: string;
  readonly region: string;
  readonly capacityType: 'on-demand' | 'spot' | 'reserved';
  readonly gpu: string;
  readonly gpusPerInstance: number;
  /** The instance's price per hour, micro-USD. */
  readonly microsPerHour: number;
  /** Free GPU indices, ascending. */
  readonly free: readonly number[];
}

/**
 * How free-GPU slots are ranked, once for both packers over them: container placement (`placement.ts`) and lease
 * allocation (`broker/allocate.ts`). Every order is built from the same keys and ends on the same tie-break:
 *   - fit: fewer free GPUs first (best fit: busy instances fill up, idle ones drain, whole nodes stay free for gangs);
 *   - price: cheaper per GPU first, compared exactly (µa·nb against µb·na, no division);
 *   - tie-break: the smaller instanceId, so that every answer is deterministic.
 * Which key leads differs on purpose, and the tests pin both: a container is billed at the price book's rate, not
 * at its instance's price, so containers pack (`fitThenPrice`); a lease costs its share of its instances' price, so
 * a lease on one node gets the cheapest GPUs (`priceThenFit`), and a lease spread over nodes the cheapest GPUs from
 * the roomiest instances, so that it spans few (`priceThenRoomiest`).
 */
export type SlotOrder = (a: FreeGpuSlot, b: FreeGpuSlot) => number;

export const fitThenPrice: SlotOrder = (a, b) => fewerFree(a, b) || cheaperPerGpu(a, b) || byInstanceId(a, b);
export const priceThenFit: SlotOrder = (a, b) => cheaperPerGpu(a, b) || fewerFree(a, b) || byInstanceId(a, b);
export const priceThenRoomiest: SlotOrder = (a, b) =>
  cheaperPerGpu(a, b) || fewerFree(b, a) || byInstanceId(a, b);

function fewerFree(a: FreeGpuSlot, b: FreeGpuSlot): number {
  return a.free.length - b.free.length;
}

function cheaperPerGpu(a: FreeGpuSlot, b: FreeGpuSlot): number {
  const pa = a.microsPerHour * b.gpusPerInstance;
  const pb = b.microsPerHour * a.gpusPerInstance;
  return pa < pb ? -1 : pa > pb ? 1 : 0;
}

function byInstanceId(a: FreeGpuSlot, b: FreeGpuSlot): number {
  return a.instanceId < b.instanceId ? -1 : a.instanceId > b.instanceId ? 1 : 0;
}

export interface GpuCapacity {
  /** Callers must not modify the answer (an implementation may hand the same array out again). */
  freeGpus(): readonly FreeGpuSlot[];
  allocate(ownerId: string, instanceId: string, gpuIndices: readonly number[]): void;
  free(ownerId: string): void;
  /**
   * Calls `listener` whenever free GPUs may have appeared (an instance became ready, GPUs were freed), so that work
   * waiting for GPUs is placed then instead of polled for. Returns the unsubscribe.
   */
  onFreed(listener: () => void): () => void;
}
