/**
 * The runtime's capacity when containers run through agents: the fleet's free GPUs on instances whose agent has
 * joined and is healthy (booted → joined → ready). An agent joining, recovering or being lost is a change of free
 * GPUs like any other, so work waiting for GPUs is placed when an agent joins, never polled for.
 */
import type { FreeGpuSlot, GpuCapacity } from '../../runtime/capacity.ts';
import type { AgentHub } from './agent-hub.ts';

export class AgentCapacity implements GpuCapacity {
  private snapshot:
    | { readonly of: readonly FreeGpuSlot[]; readonly slots: readonly FreeGpuSlot[] }
    | undefined;

  constructor(
    private readonly fleet: GpuCapacity,
    private readonly hub: AgentHub,
  ) {
    hub.onChange(() => {
      this.snapshot = undefined;
    });
  }

  freeGpus(): readonly FreeGpuSlot[] {
    const all = this.fleet.freeGpus();
    // The fleet hands out the same array until something changes; so can this.
    if (this.snapshot?.of !== all)
      this.snapshot = { of: all, slots: all.filter((slot) => this.hub.placeable(slot.instanceId)) };
    return this.snapshot.slots;
  }

  allocate(ownerId: string, instanceId: string, gpuIndices: readonly number[]): void {
    this.fleet.allocate(ownerId, instanceId, gpuIndices);
  }

  free(ownerId: string): void {
    this.fleet.free(ownerId);
  }

  onFreed(listener: () => void): () => void {
    const fromFleet = this.fleet.onFreed(listener);
    const fromHub = this.hub.onChange(listener);
    return () => {
      fromFleet();
      fromHub();
    };
  }
}
