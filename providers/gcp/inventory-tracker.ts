/**
 * The adapter's memory of the instances it has seen, and the source of its `state-changed` events. GCE is only
 * observed (by polling, by `list`, by the adapter's own writes), so the tracker merges observations: states only
 * move forward (pending → running → terminating → terminated), a stale answer never moves one back, and an
 * instance missing from a complete listing has ended. GCE forgets deleted VMs at once, so ended ones are kept here
 * for a while, as other clouds keep them visible.
 */
import type { Clock } from '../../lib/clock.ts';
import type { EventHub } from '../event-hub.ts';
import { instanceSnapshot, stateChangedEvent } from '../instance-snapshot.ts';
import type { Instance, InstanceState, ProviderEvent, TerminationReason } from '../provider.ts';
import type { InstanceView } from './instance-view.ts';
import { stateOfStatus } from './instance-view.ts';

const RANK: Readonly<Record<InstanceState, number>> = {
  pending: 0,
  running: 1,
  terminating: 2,
  terminated: 3,
};

interface Tracked {
  view: InstanceView;
  state: InstanceState;
  /** When the tracker first knew of it: listings that started earlier cannot prove it gone. */
  readonly knownSinceMs: number;
  runningAtMs?: number;
  terminatedAtMs?: number;
  reason?: TerminationReason;
  interruptAtMs?: number;
  /** When GCE started reclaiming it, once a `compute.instances.preempted` operation said so. */
  preemptedAtMs?: number;
  /** gpubroker asked GCE to delete it: its end is `requested`. */
  deleteRequested: boolean;
}

/** Why instances stopped or vanished without gpubroker asking, as far as GCE could tell. */
export interface Explanations {
  /** Instance id → when GCE started reclaiming it (its `compute.instances.preempted` operation). */
  readonly preemptedAtMs: ReadonlyMap<string, number>;
  /** Instances whose cause could not be looked up this time: their end waits for a later observation. */
  readonly unresolved: ReadonlySet<string>;
}

export const NO_EXPLANATIONS: Explanations = { preemptedAtMs: new Map(), unresolved: new Set() };

/** GCE gives a spot VM 30 s between the preemption notice and the stop (https://cloud.google.com/compute/docs/instances/spot). */
export const PREEMPTION_NOTICE_MS = 30_000;

export class InventoryTracker {
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    private readonly clock: Clock,
    private readonly hub: EventHub<ProviderEvent>,
    private readonly vendor: string,
    private readonly retentionMs: number,
  ) {}

  /** Instances gpubroker just launched: known from now on, `pending` (unless an observation got there first). */
  launched(views: readonly InstanceView[]): void {
    for (const view of views) if (!this.tracked.has(view.id)) this.add(view, 'pending');
  }

  /** gpubroker asked GCE to delete `id`; says `terminating` at once, since GCE takes a while to show it. */
  deleting(id: string): void {
    const t = this.tracked.get(id);
    if (!t) return;
    t.deleteRequested = true;
    if (RANK[t.state] < RANK.terminating) this.move(t, 'terminating');
  }

  knows(id: string): boolean {
    return this.tracked.has(id);
  }

  deleteRequested(id: string): boolean {
    return this.tracked.get(id)?.deleteRequested === true;
  }

  isDeleting(id: string): boolean {
    const t = this.tracked.get(id);
    return t !== undefined && (t.deleteRequested || t.state === 'terminated');
  }

  gceIdOf(id: string): string | undefined {
    return this.tracked.get(id)?.view.gceId;
  }

  /** Instances (of `candidates`) that stopped or vanished without gpubroker asking: their cause needs a look-up. */
  unexplained(views: readonly InstanceView[], complete: boolean, startedAtMs: number): InstanceView[] {
    const seen = new Set(views.map((v) => v.id));
    const stopped = views.filter((v) => {
      const t = this.tracked.get(v.id);
      return (
        RANK[stateOfStatus(v.status)] >= RANK.terminating &&
        !t?.deleteRequested &&
        t?.preemptedAtMs === undefined &&
        t?.state !== 'terminated'
      );
    });
    const vanished = complete
      ? [...this.tracked.values()]
          .filter(
            (t) => this.vanished(t, seen, startedAtMs) && !t.deleteRequested && t.preemptedAtMs === undefined,
          )
          .map((t) => t.view)
      : [];
    return [...stopped, ...vanished];
  }

  /**
   * Merges one observation. `complete` means `views` is every instance gpubroker owns, as of a listing that
   * started at `startedAtMs`; only such a listing can show that an instance is gone.
   */
  observe(views: readonly InstanceView[], complete: boolean, startedAtMs: number, why: Explanations): void {
    const now = this.clock.now();
    for (const [id, t] of this.tracked)
      if (t.state === 'terminated' && (t.terminatedAtMs ?? now) + this.retentionMs < now)
        this.tracked.delete(id);
    const seen = new Set<string>();
    for (const view of views) {
      seen.add(view.id);
      const target = stateOfStatus(view.status);
      if (RANK[target] >= RANK.terminating && why.unresolved.has(view.id)) continue;
      let t = this.tracked.get(view.id);
      const preemptedAt = why.preemptedAtMs.get(view.id);
      if (!t) {
        t = this.add(view, target, this.reasonOf(undefined, preemptedAt), preemptedAt);
        continue;
      }
      t.view = view;
      this.notice(t, preemptedAt);
      if (RANK[target] > RANK[t.state]) this.move(t, target, this.reasonOf(t, preemptedAt));
    }
    if (!complete) return;
    for (const t of this.tracked.values()) {
      if (!this.vanished(t, seen, startedAtMs) || why.unresolved.has(t.view.id)) continue;
      const preemptedAt = why.preemptedAtMs.get(t.view.id);
      this.notice(t, preemptedAt);
      this.move(t, 'terminated', this.reasonOf(t, preemptedAt));
    }
  }

  /** The Instance the broker sees for a tracked id. */
  snapshot(id: string): Instance | undefined {
    const t = this.tracked.get(id);
    if (!t) return undefined;
    return instanceSnapshot(t.view.offering, {
      id: t.view.id,
      zone: t.view.zone,
      state: t.state,
      tags: t.view.tags,
      idempotencyKey: t.view.idempotencyKey,
      microsPerHour: t.view.microsPerHour,
      launchedAtMs: t.view.launchedAtMs,
      runningAtMs: t.runningAtMs,
      terminatedAtMs: t.terminatedAtMs,
      terminationReason: t.reason,
      interruptAtMs: t.interruptAtMs,
    });
  }

  /** Our instances not terminated yet. */
  live(): Instance[] {
    return [...this.tracked.values()]
      .filter((t) => t.state !== 'terminated')
      .map((t) => this.snapshot(t.view.id) as Instance);
  }

  /** Ended instances still remembered. */
  ended(): Instance[] {
    return [...this.tracked.values()]
      .filter((t) => t.state === 'terminated')
      .map((t) => this.snapshot(t.view.id) as Instance);
  }

  private vanished(t: Tracked, seen: ReadonlySet<string>, startedAtMs: number): boolean {
    return t.state !== 'terminated' && !seen.has(t.view.id) && t.knownSinceMs < startedAtMs;
  }

  private reasonOf(t: Tracked | undefined, preemptedAt: number | undefined): TerminationReason {
    if (t?.deleteRequested) return 'requested';
    return (preemptedAt ?? t?.preemptedAtMs) !== undefined ? 'preempted' : 'failed';
  }

  private add(
    view: InstanceView,
    state: InstanceState,
    reason?: TerminationReason,
    preemptedAt?: number,
  ): Tracked {
    const t: Tracked = { view, state, knownSinceMs: this.clock.now(), deleteRequested: false };
    this.tracked.set(view.id, t);
    this.notice(t, preemptedAt);
    this.record(t, state, reason);
    this.publish(t, null, state, state === 'terminated' ? reason : undefined);
    return t;
  }

  /** Publishes the spot interruption notice once, when GCE started reclaiming the instance. */
  private notice(t: Tracked, preemptedAt: number | undefined): void {
    if (preemptedAt === undefined || t.preemptedAtMs !== undefined || t.deleteRequested) return;
    t.preemptedAtMs = preemptedAt;
    t.interruptAtMs = preemptedAt + PREEMPTION_NOTICE_MS;
    this.hub.publish({
      kind: 'interruption-notice',
      atMs: this.clock.now(),
      vendor: this.vendor,
      instanceId: t.view.id,
      offeringId: t.view.offering.id,
      zone: t.view.zone,
      terminateAtMs: t.interruptAtMs,
    });
  }

  private move(t: Tracked, to: InstanceState, reason?: TerminationReason): void {
    const from = t.state;
    t.state = to;
    this.record(t, to, reason);
    this.publish(t, from, to, to === 'terminated' ? reason : undefined);
  }

  private record(t: Tracked, state: InstanceState, reason: TerminationReason | undefined): void {
    const now = this.clock.now();
    if (state === 'running' && t.runningAtMs === undefined)
      t.runningAtMs = Math.max(t.view.lastStartMs ?? now, t.view.launchedAtMs);
    if (state === 'terminated') {
      t.terminatedAtMs = now;
      t.reason = reason ?? 'failed';
    }
  }

  private publish(
    t: Tracked,
    from: InstanceState | null,
    to: InstanceState,
    reason?: TerminationReason,
  ): void {
    const now = this.clock.now();
    this.hub.publish(stateChangedEvent(now, t.view.offering, t.view, from, to, reason));
    if (to === 'terminated' && reason === 'failed')
      this.hub.publish({
        kind: 'failure',
        atMs: now,
        vendor: this.vendor,
        instanceId: t.view.id,
        region: t.view.offering.region,
        zone: t.view.zone,
        message: `${t.view.name} stopped or vanished without gpubroker asking (GCE status ${t.view.status})`,
      });
  }
}
