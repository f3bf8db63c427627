/**
 * Leases on the meter: one usage interval per allocation (instance × GPUs) of a ready lease, closed when the lease
 * moves or ends. After a restart, intervals a crash left open are closed at their last checkpoint and the leases
 * still ready start new ones from now: time nobody observed is not billed.
 */
import type { Meter } from '../runtime/meter/meter.ts';
import type { UsageStore } from '../runtime/meter/usage-store.ts';
import type { Allocation } from './allocate.ts';
import type { Fleet } from './fleet.ts';
import type { LeaseRow } from './leases.ts';

export class LeaseMetering {
  private readonly intervals = new Map<string, string[]>();

  constructor(
    private readonly meter: Meter,
    private readonly store: UsageStore,
    private readonly fleet: Fleet,
  ) {}

  /** The lease's GPUs changed (or it ended: no allocations): close its intervals and open one per allocation. */
  allocationsChanged(lease: LeaseRow, allocations: readonly Allocation[], atMs: number): void {
    for (const id of this.intervals.get(lease.id) ?? []) this.meter.closeInterval(id, atMs);
    this.intervals.delete(lease.id);
    if (allocations.length === 0) return;
    const opened: string[] = [];
    for (const a of allocations) {
      const instance = this.fleet.get(a.instanceId);
      const interval = this.meter.openInterval({
        intervalId: `${lease.id}@${a.instanceId}@${atMs}`,
        tenantId: lease.tenantId,
        kind: 'lease',
        subject: lease.id,
        gpu: lease.gpu,
        gpus: a.gpuIndices.length,
        vendor: instance?.vendor ?? 'unknown',
        region: instance?.region ?? 'unknown',
        capacityType: instance?.capacityType ?? 'unknown',
        startMs: atMs,
      });
      opened.push(interval.intervalId);
    }
    this.intervals.set(lease.id, opened);
  }

  /** After a start or a takeover: close what was left open at its checkpoint, then meter the ready leases anew. */
  async resume(
    ready: readonly { lease: LeaseRow; allocations: Allocation[] }[],
    nowMs: number,
  ): Promise<void> {
    await this.meter.flush();
    await this.store.closeOpenAtCheckpoint();
    this.intervals.clear();
    for (const { lease, allocations } of ready) this.allocationsChanged(lease, allocations, nowMs);
    await this.meter.flush();
    this.meter.start();
  }
}
