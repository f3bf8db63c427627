/**
 * The broker's view of its instances and of which GPU of which instance serves which lease. The database is the
 * record; this class keeps the live part in memory (rebuilt from the database on start) so that serving a lease
 * from the warm buffer needs no query.
 */
import { eq, inArray, ne, sql } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import type { Clock } from '../lib/clock.ts';
import type { Instance, InstanceState, TerminationReason } from '../providers/provider.ts';
import type { FreeGpuSlot } from '../runtime/capacity.ts';
import type { FleetPool } from '../solver/types.ts';
import type { Database } from './db/open-database.ts';
import { instances, leaseAllocations, leases } from './db/schema.ts';

export interface LiveInstance {
  readonly id: string;
  readonly vendor: string;
  readonly offeringId: string;
  readonly region: string;
  readonly zone: string;
  readonly instanceType: string;
  readonly capacityType: 'on-demand' | 'spot' | 'reserved';
  readonly gpu: string;
  readonly gpusPerInstance: number;
  readonly microsPerHour: number;
  readonly launchedAt: number;
  state: InstanceState;
  runningAt: number | null;
  interruptAt: number | null;
  draining: boolean;
  /** GPU index → lease id. */
  readonly allocated: Map<number, string>;
}

export class Fleet {
  /** `setState`'s statement, built once: instances change state tens of thousands of times in a simulation. */
  private setStateQuery: ReturnType<typeof prepareSetState> | undefined;
  private readonly live = new Map<string, LiveInstance>();
  /**
   * `freeGpus()` as last computed, until something changes it: the runtime asks at every placement, far more often
   * than instances, states or holdings change.
   */
  private freeSnapshot: readonly FreeGpuSlot[] | undefined;
  private readonly freedListeners = new Set<() => void>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Loads instances not yet terminated and the allocations of ready leases. */
  async load(): Promise<void> {
    this.live.clear();
    this.freeSnapshot = undefined;
    const rows = await this.db.select().from(instances).where(ne(instances.state, 'terminated'));
    for (const row of rows) this.live.set(row.id, fromRow(row));
    const allocations = await this.db
      .select({
        leaseId: leaseAllocations.leaseId,
        instanceId: leaseAllocations.instanceId,
        gpuIndices: leaseAllocations.gpuIndices,
      })
      .from(leaseAllocations)
      .innerJoin(leases, eq(leases.id, leaseAllocations.leaseId))
      .where(eq(leases.status, 'ready'));
    for (const a of allocations) {
      const instance = this.live.get(a.instanceId);
      if (instance) for (const index of a.gpuIndices) instance.allocated.set(index, a.leaseId);
    }
    this.freeGpusChanged();
  }

  get(id: string): LiveInstance | undefined {
    return this.live.get(id);
  }

  all(): LiveInstance[] {
    return [...this.live.values()];
  }

  /** Records an instance a provider reported (new or known). */
  async record(instance: Instance): Promise<LiveInstance> {
    return (await this.recordAll([instance]))[0] as LiveInstance;
  }

  /** Records instances a provider reported (a launch's batch) in one statement. */
  async recordAll(reported: readonly Instance[]): Promise<LiveInstance[]> {
    if (reported.length === 0) return [];
    const rows = reported.map(rowOf);
    await this.db
      .insert(instances)
      .values(rows)
      .onConflictDoUpdate({
        target: instances.id,
        set: {
          state: sql`excluded.state`,
          runningAt: sql`excluded.running_at`,
          terminatedAt: sql`excluded.terminated_at`,
          terminationReason: sql`excluded.termination_reason`,
          interruptAt: sql`excluded.interrupt_at`,
        },
      });
    return reported.map((instance, n) => this.remember(instance, rows[n] as InstanceInsert));
  }

  private remember(instance: Instance, row: InstanceInsert): LiveInstance {
    const known = this.live.get(instance.id);
    let result: LiveInstance;
    if (instance.state === 'terminated') {
      this.live.delete(instance.id);
      result = {
        ...fromRow({ ...row, draining: known?.draining ?? false }),
        allocated: known?.allocated ?? new Map(),
      };
    } else if (known) {
      known.state = instance.state;
      known.runningAt = row.runningAt;
      known.interruptAt = row.interruptAt;
      result = known;
    } else {
      result = fromRow({ ...row, draining: false });
      this.live.set(result.id, result);
    }
    // Listeners read the fleet as it is now.
    this.freeGpusChanged();
    return result;
  }

  async setState(
    id: string,
    state: InstanceState,
    fields: { runningAt?: number; interruptAt?: number; reason?: TerminationReason } = {},
  ): Promise<LiveInstance | undefined> {
    const instance = this.live.get(id);
    this.setStateQuery ??= prepareSetState(this.db);
    const terminated = state === 'terminated';
    await this.setStateQuery.execute({
      id,
      state,
      runningAt: fields.runningAt ?? null,
      interruptAt: fields.interruptAt ?? null,
      terminatedAt: terminated ? this.clock.now() : null,
      reason: terminated ? (fields.reason ?? null) : null,
    });
    if (!instance) return undefined;
    instance.state = state;
    if (fields.runningAt !== undefined) instance.runningAt = fields.runningAt;
    if (fields.interruptAt !== undefined) instance.interruptAt = fields.interruptAt;
    if (terminated) this.live.delete(id);
    // After the change: a listener (the local agent host joining running instances) reads the new state.
    this.freeGpusChanged();
    return instance;
  }

  async markDraining(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db
      .update(instances)
      .set({ draining: true })
      .where(inArray(instances.id, [...ids]));
    for (const id of ids) {
      const instance = this.live.get(id);
      if (instance) instance.draining = true;
    }
    this.freeGpusChanged();
  }

  /** Free GPUs per GPU type: the warm buffer that is ready now. */
  freeGpusByType(): Map<string, number> {
    const ready = new Map<string, number>();
    for (const slot of this.freeGpus()) ready.set(slot.gpu, (ready.get(slot.gpu) ?? 0) + slot.free.length);
    return ready;
  }

  /**
   * Free GPUs of running instances that take new work (not draining, not warned of a reclaim), one entry per
   * instance with any. The same array comes back until the fleet changes; callers must not modify it.
   */
  freeGpus(): readonly FreeGpuSlot[] {
    if (this.freeSnapshot) return this.freeSnapshot;
    const result: FreeGpuSlot[] = [];
    for (const i of this.live.values()) {
      if (i.state !== 'running' || i.draining || i.interruptAt !== null) continue;
      const free: number[] = [];
      for (let g = 0; g < i.gpusPerInstance; g++) if (!i.allocated.has(g)) free.push(g);
      if (free.length === 0) continue;
      result.push({
        instanceId: i.id,
        vendor: i.vendor,
        region: i.region,
        capacityType: i.capacityType,
        gpu: i.gpu,
        gpusPerInstance: i.gpusPerInstance,
        microsPerHour: i.microsPerHour,
        free,
      });
    }
    this.freeSnapshot = result;
    return result;
  }

  /** See GpuCapacity.onFreed: called after any change but an allocation (which frees nothing). */
  onFreed(listener: () => void): () => void {
    this.freedListeners.add(listener);
    return () => this.freedListeners.delete(listener);
  }

  private freeGpusChanged(): void {
    this.freeSnapshot = undefined;
    for (const listener of this.freedListeners) listener();
  }

  allocate(leaseId: string, instanceId: string, gpuIndices: readonly number[]): void {
    const instance = this.live.get(instanceId);
    if (!instance) return;
    this.freeSnapshot = undefined;
    for (const g of gpuIndices) {
      const holder = instance.allocated.get(g);
      // An invariant, not an input check: a GPU is never given to two leases.
      if (holder !== undefined && holder !== leaseId)
        throw new Error(`GPU ${g} of ${instanceId} is already leased to ${holder}`);
      instance.allocated.set(g, leaseId);
    }
  }

  free(leaseId: string): void {
    for (const instance of this.live.values())
      for (const [g, holder] of instance.allocated) if (holder === leaseId) instance.allocated.delete(g);
    this.freeGpusChanged();
  }

  leasesOn(instanceId: string): string[] {
    return [...new Set(this.live.get(instanceId)?.allocated.values() ?? [])];
  }

  /** Instances that count as capacity: booting or running, not being stopped, drained or reclaimed. */
  capacity(): LiveInstance[] {
    return this.all().filter((i) => !leaving(i));
  }

  /** The fleet as the optimizer sees it: instances per offering that count as capacity. */
  pools(): FleetPool[] {
    const byOffering = new Map<string, number[]>();
    const now = this.clock.now();
    for (const i of this.capacity()) {
      // Machines of your own are held outside the plan (agents/machines.ts).
      if (i.vendor === 'machines') continue;
      const ages = byOffering.get(i.offeringId) ?? [];
      ages.push(now - i.launchedAt);
      byOffering.set(i.offeringId, ages);
    }
    return [...byOffering].map(([offeringId, ages]) => ({
      offeringId,
      count: ages.length,
      instanceAgesMs: ages,
    }));
  }

  /** Draining instances with nothing leased on them: ready to terminate. */
  idleDraining(): LiveInstance[] {
    return [...this.live.values()].filter(
      (i) => i.draining && i.allocated.size === 0 && i.state !== 'terminating',
    );
  }
}

function fromRow(row: typeof instances.$inferSelect): LiveInstance {
  return {
    id: row.id,
    vendor: row.vendor,
    offeringId: row.offeringId,
    region: row.region,
    zone: row.zone,
    instanceType: row.instanceType,
    capacityType: row.capacityType as LiveInstance['capacityType'],
    gpu: row.gpu,
    gpusPerInstance: row.gpusPerInstance,
    microsPerHour: row.microsPerHour,
    launchedAt: row.launchedAt,
    state: row.state as InstanceState,
    runningAt: row.runningAt,
    interruptAt: row.interruptAt,
    draining: row.draining,
    allocated: new Map(),
  };
}

type InstanceInsert = ReturnType<typeof rowOf>;

/** The database row of an instance a provider reported. */
function rowOf(instance: Instance) {
  return {
    id: instance.id,
    vendor: instance.vendor,
    offeringId: instance.offeringId,
    region: instance.region,
    zone: instance.zone,
    instanceType: instance.instanceType,
    capacityType: instance.capacityType,
    gpu: instance.gpu,
    gpusPerInstance: instance.gpusPerInstance,
    state: instance.state,
    microsPerHour: instance.microsPerHour,
    idempotencyKey: instance.idempotencyKey,
    launchedAt: instance.launchedAtMs,
    runningAt: instance.runningAtMs ?? null,
    terminatedAt: instance.terminatedAtMs ?? null,
    terminationReason: instance.terminationReason ?? null,
    interruptAt: instance.interruptAtMs ?? null,
  };
}

/** Whether an instance is on its way out: being stopped, drained for scale-down, or warned of a reclaim. */
function leaving(i: LiveInstance): boolean {
  return i.state === 'terminating' || i.draining || i.interruptAt !== null;
}

/** One instance's new state; a field given as null keeps what the row has. */
function prepareSetState(db: Database) {
  const keep = (value: string, column: AnyPgColumn) => sql`coalesce(${sql.placeholder(value)}, ${column})`;
  return db
    .update(instances)
    .set({
      state: sql`${sql.placeholder('state')}`,
      runningAt: keep('runningAt', instances.runningAt),
      interruptAt: keep('interruptAt', instances.interruptAt),
      terminatedAt: keep('terminatedAt', instances.terminatedAt),
      terminationReason: keep('reason', instances.terminationReason),
    })
    .where(eq(instances.id, sql.placeholder('id')))
    .prepare('fleet_set_state');
}
