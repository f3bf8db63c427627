/**
 * The read-only views a provider hands out of the instances it tracks: an `Instance` (its offering's facts plus
 * what the provider records per instance) and a `state-changed` event. Shared so that every implementation
 * reports them the same way.
 */
import type { Micros } from '../lib/money.ts';
import type { Offering } from './catalog/offering.ts';
import type { Instance, InstanceState, ProviderEvent, Tags, TerminationReason } from './provider.ts';

/** What a provider records per instance; everything else comes from the offering. */
export interface InstanceRecord {
  readonly id: string;
  readonly zone: string;
  readonly state: InstanceState;
  readonly tags: Tags;
  readonly idempotencyKey: string;
  readonly microsPerHour: Micros;
  readonly launchedAtMs: number;
  readonly runningAtMs?: number | undefined;
  readonly terminatedAtMs?: number | undefined;
  readonly terminationReason?: TerminationReason | undefined;
  readonly interruptAtMs?: number | undefined;
}

export function instanceSnapshot(o: Offering, i: InstanceRecord): Instance {
  return {
    id: i.id,
    vendor: o.vendor,
    offeringId: o.id,
    region: o.region,
    zone: i.zone,
    instanceType: o.instanceType,
    capacityType: o.capacityType,
    gpu: o.gpu,
    gpusPerInstance: o.gpusPerInstance,
    state: i.state,
    tags: i.tags,
    idempotencyKey: i.idempotencyKey,
    microsPerHour: i.microsPerHour,
    launchedAtMs: i.launchedAtMs,
    ...(i.runningAtMs !== undefined ? { runningAtMs: i.runningAtMs } : {}),
    ...(i.terminatedAtMs !== undefined ? { terminatedAtMs: i.terminatedAtMs } : {}),
    ...(i.terminationReason !== undefined ? { terminationReason: i.terminationReason } : {}),
    ...(i.interruptAtMs !== undefined ? { interruptAtMs: i.interruptAtMs } : {}),
  };
}

export function stateChangedEvent(
  atMs: number,
  o: Offering,
  i: { readonly id: string; readonly zone: string },
  from: InstanceState | null,
  to: InstanceState,
  reason?: TerminationReason,
): ProviderEvent {
  return {
    kind: 'state-changed',
    atMs,
    vendor: o.vendor,
    instanceId: i.id,
    offeringId: o.id,
    zone: i.zone,
    from,
    to,
    ...(reason ? { reason } : {}),
  };
}
