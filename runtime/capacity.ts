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
