/**
 * What the adapter knows of each instance it has seen, and the events that knowledge implies. EC2 pushes nothing
 * to an API client, so every observation (a provision answer, a terminate answer, a list, a poll) goes through
 * `observe`, which publishes the state changes since the previous one: the first sighting comes `from: null`, and
 * states only move forward (pending → running → terminating → terminated), so a stale answer (a describe call
 * that started before a terminate) never takes an instance back.
 */
import type { Clock } from '../../lib/clock.ts';
import type { Micros } from '../../lib/money.ts';
import type { Offering } from '../catalog/offering.ts';
import { instanceSnapshot, stateChangedEvent } from '../instance-snapshot.ts';
import type { Instance, InstanceState, ProviderEvent, TerminationReason } from '../provider.ts';
import { type Observation, terminationReason } from './ec2-instance.ts';

const ORDER: Readonly<Record<InstanceState, number>> = {
  pending: 0,
  running: 1,
  terminating: 2,
  terminated: 3,
};

/** Terminated instances are forgotten this long after they ended (EC2 itself shows them for about an hour). */
const FORGET_AFTER_MS = 2 * 3_600_000;

interface Tracked {
  readonly id: string;
  readonly offering: Offering;
  readonly region: string;
  readonly zone: string;
  readonly spotRequestId: string | undefined;
  readonly microsPerHour: Micros;
  state: InstanceState;
  lastSeenMs: number;
  runningAtMs?: number;
  terminatedAtMs?: number;
  reason?: TerminationReason;
  interruptAtMs?: number;
  requestedByUs: boolean;
}

export class InstanceTracker {
  private readonly tracked = new Map<string, Tracked>();

  constructor(
    private readonly clock: Clock,
    private readonly publish: (event: ProviderEvent) => void,
  ) {}

  /**
   * Records what EC2 said of an instance and publishes what changed; returns the instance as the contract shows it.
   * `offering` and `microsPerHour` are used at the first sighting only.
   */
  observe(o: Observation, offering: Offering, microsPerHour: Micros): Instance {
    const now = this.clock.now();
    let t = this.tracked.get(o.id);
    if (!t) {
      t = {
        id: o.id,
        offering,
        region: o.region,
        zone: o.zone,
        spotRequestId: o.spotRequestId,
        microsPerHour,
        state: o.state,
        lastSeenMs: now,
        requestedByUs: false,
      };
      this.tracked.set(o.id, t);
      this.enter(t, null, o.state, o.reasonCode, o.reasonMessage);
    } else {
      t.lastSeenMs = now;
      this.advance(t, o.state, o.reasonCode, o.reasonMessage);
    }
    return instanceSnapshot(t.offering, {
      id: t.id,
      zone: t.zone,
      state: t.state,
      tags: o.tags,
      idempotencyKey: o.idempotencyKey ?? '',
      microsPerHour: t.microsPerHour,
      launchedAtMs: o.launchedAtMs,
      // Our clock and EC2's may disagree a little; running never precedes the launch.
      runningAtMs: t.runningAtMs === undefined ? undefined : Math.max(t.runningAtMs, o.launchedAtMs),
      terminatedAtMs: t.terminatedAtMs,
      terminationReason: t.reason,
      interruptAtMs: t.interruptAtMs,
    });
  }

  /** A terminate call reached EC2 for this instance; `state` is the state it answered with. */
  terminationRequested(id: string, state: InstanceState | undefined): void {
    const t = this.tracked.get(id);
    if (!t) return;
    t.requestedByUs = true;
    if (state) this.advance(t, state, 'Client.UserInitiatedShutdown', undefined);
  }

  /** A spot interruption notice: published once per instance. */
  interruptionNotice(id: string, terminateAtMs: number): void {
    const t = this.tracked.get(id);
    if (!t || t.interruptAtMs !== undefined || t.state === 'terminated') return;
    t.interruptAtMs = terminateAtMs;
    this.publish({
      kind: 'interruption-notice',
      atMs: this.clock.now(),
      vendor: t.offering.vendor,
      instanceId: t.id,
      offeringId: t.offering.id,
      zone: t.zone,
      terminateAtMs,
    });
  }

  /**
   * After a complete inventory of `region`: instances it did not show for `graceMs` are gone (EC2 stops showing
   * terminated instances after about an hour; a poll that long overdue missed the end). Long-ended ones are forgotten.
   */
  sweep(region: string, seen: ReadonlySet<string>, graceMs: number): void {
    const now = this.clock.now();
    for (const t of [...this.tracked.values()]) {
      if (t.region !== region) continue;
      if (t.state === 'terminated') {
        if (now - (t.terminatedAtMs ?? now) > FORGET_AFTER_MS) this.tracked.delete(t.id);
        continue;
      }
      if (!seen.has(t.id) && now - t.lastSeenMs > graceMs)
        this.advance(t, 'terminated', undefined, 'the instance is no longer in the inventory');
    }
  }

  regionOf(id: string): string | undefined {
    return this.tracked.get(id)?.region;
  }

  /** Spot instances of a region that are not over and have had no notice yet: the ones to watch for one. */
  watchedSpot(region: string): string[] {
    return [...this.tracked.values()]
      .filter(
        (t) =>
          t.region === region &&
          t.spotRequestId !== undefined &&
          t.interruptAtMs === undefined &&
          (t.state === 'pending' || t.state === 'running'),
      )
      .map((t) => t.id);
  }

  private advance(
    t: Tracked,
    to: InstanceState,
    reasonCode: string | undefined,
    reasonMessage: string | undefined,
  ): void {
    if (ORDER[to] <= ORDER[t.state]) return;
    const from = t.state;
    t.state = to;
    this.enter(t, from, to, reasonCode, reasonMessage);
  }

  private enter(
    t: Tracked,
    from: InstanceState | null,
    to: InstanceState,
    reasonCode: string | undefined,
    reasonMessage: string | undefined,
  ): void {
    const now = this.clock.now();
    if (to === 'running') t.runningAtMs = now;
    if (to !== 'terminated') {
      this.publish(stateChangedEvent(now, t.offering, t, from, to));
      return;
    }
    t.terminatedAtMs = now;
    t.reason = terminationReason(reasonCode, t.requestedByUs, t.interruptAtMs !== undefined);
    if (t.reason === 'failed')
      this.publish({
        kind: 'failure',
        atMs: now,
        vendor: t.offering.vendor,
        instanceId: t.id,
        region: t.region,
        zone: t.zone,
        message: reasonMessage ?? reasonCode ?? 'the instance ended without a termination request',
      });
    this.publish(stateChangedEvent(now, t.offering, t, from, to, t.reason));
  }
}
