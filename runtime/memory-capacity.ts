/**
 * A GpuCapacity held in memory: a fixed set of instances and which owner holds which GPU. The fake the runtime is
 * tested against (the broker's Fleet is the real one), and what the placement benchmark churns. Double booking a
 * GPU throws, as the Fleet does.
 */
import type { FreeGpuSlot, GpuCapacity } from './capacity.ts';

export type MemoryInstance = Omit<FreeGpuSlot, 'free'>;

export class MemoryCapacity implements GpuCapacity {
  private readonly instances = new Map<string, MemoryInstance>();
  /** instanceId → GPU index → owner. */
  private readonly held = new Map<string, Map<number, string>>();
  /** owner → instanceId → GPU indices. */
  private readonly byOwner = new Map<string, Map<string, number[]>>();
  /** Cached slots, rebuilt only for instances whose allocation changed. */
  private readonly slots = new Map<string, FreeGpuSlot>();
  private readonly draining = new Set<string>();
  private readonly freedListeners = new Set<() => void>();

  constructor(instances: readonly MemoryInstance[] = []) {
    for (const instance of instances) this.add(instance);
  }

  add(instance: MemoryInstance): void {
    if (this.instances.has(instance.instanceId)) throw new Error(`instance ${instance.instanceId} exists`);
    this.instances.set(instance.instanceId, instance);
    this.held.set(instance.instanceId, new Map());
    this.slots.delete(instance.instanceId);
    this.freed();
  }

  onFreed(listener: () => void): () => void {
    this.freedListeners.add(listener);
    return () => this.freedListeners.delete(listener);
  }

  private freed(): void {
    for (const listener of this.freedListeners) listener();
  }

  /** Removes an instance (terminated); what was held on it is forgotten. */
  remove(instanceId: string): void {
    for (const [owner, on] of this.byOwner) {
      on.delete(instanceId);
      if (on.size === 0) this.byOwner.delete(owner);
    }
    this.instances.delete(instanceId);
    this.held.delete(instanceId);
    this.slots.delete(instanceId);
    this.draining.delete(instanceId);
  }

  /** Takes the instance out of `freeGpus` (as the Fleet does with draining instances); holdings stay. */
  drain(instanceId: string): void {
    this.draining.add(instanceId);
  }

  freeGpus(): FreeGpuSlot[] {
    const result: FreeGpuSlot[] = [];
    for (const instance of this.instances.values()) {
      if (this.draining.has(instance.instanceId)) continue;
      let slot = this.slots.get(instance.instanceId);
      if (!slot) {
        const held = this.held.get(instance.instanceId) as Map<number, string>;
        const free: number[] = [];
        for (let g = 0; g < instance.gpusPerInstance; g++) if (!held.has(g)) free.push(g);
        slot = { ...instance, free };
        this.slots.set(instance.instanceId, slot);
      }
      result.push(slot);
    }
    return result;
  }

  allocate(ownerId: string, instanceId: string, gpuIndices: readonly number[]): void {
    const instance = this.instances.get(instanceId);
    const held = this.held.get(instanceId);
    if (!instance || !held) throw new Error(`no instance ${instanceId}`);
    for (const g of gpuIndices) {
      if (!Number.isInteger(g) || g < 0 || g >= instance.gpusPerInstance)
        throw new Error(`instance ${instanceId} has no GPU ${g}`);
      const holder = held.get(g);
      if (holder !== undefined && holder !== ownerId)
        throw new Error(`GPU ${g} of ${instanceId} is already held by ${holder}`);
    }
    const on = this.byOwner.get(ownerId) ?? new Map<string, number[]>();
    const indices = on.get(instanceId) ?? [];
    for (const g of gpuIndices) {
      if (held.get(g) === ownerId) continue;
      held.set(g, ownerId);
      indices.push(g);
    }
    on.set(instanceId, indices);
    this.byOwner.set(ownerId, on);
    this.slots.delete(instanceId);
  }

  free(ownerId: string): void {
    const on = this.byOwner.get(ownerId);
    if (!on) return;
    for (const [instanceId, indices] of on) {
      const held = this.held.get(instanceId);
      for (const g of indices) if (held?.get(g) === ownerId) held.delete(g);
      this.slots.delete(instanceId);
    }
    this.byOwner.delete(ownerId);
    this.freed();
  }

  /** GPUs held, per owner: `instanceId:index` strings. */
  holdings(): Map<string, string[]> {
    const result = new Map<string, string[]>();
    for (const [owner, on] of this.byOwner)
      result.set(
        owner,
        [...on].flatMap(([instanceId, indices]) => indices.map((g) => `${instanceId}:${g}`)),
      );
    return result;
  }

  /** GPUs held in all. */
  heldCount(): number {
    let n = 0;
    for (const held of this.held.values()) n += held.size;
    return n;
  }
}
