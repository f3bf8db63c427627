/**
 * What the adapter reads from an EC2 instance description
 * (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_Instance.html): its state in the contract's terms,
 * its zone, its spot request, and the tags that say who launched it, from which offering and for which key.
 */
import type { Instance as Ec2Instance } from '@aws-sdk/client-ec2';
import type { InstanceState, Tags, TerminationReason } from '../provider.ts';

/** Ownership tags the adapter sets on every instance it launches. */
export const TAG_BROKER = 'gpubroker:broker';
export const TAG_OFFERING = 'gpubroker:offering';
export const TAG_KEY = 'gpubroker:key';
export const OWN_TAGS: ReadonlySet<string> = new Set([TAG_BROKER, TAG_OFFERING, TAG_KEY]);

export interface Observation {
  readonly id: string;
  readonly region: string;
  readonly zone: string;
  readonly instanceType: string;
  readonly spot: boolean;
  readonly spotRequestId: string | undefined;
  readonly state: InstanceState;
  /** EC2's state reason (`Server.SpotInstanceTermination`, `Client.UserInitiatedShutdown`, …). */
  readonly reasonCode: string | undefined;
  readonly reasonMessage: string | undefined;
  /** The instance's tags without the adapter's own. */
  readonly tags: Tags;
  readonly offeringId: string | undefined;
  readonly idempotencyKey: string | undefined;
  readonly launchedAtMs: number;
}

/**
 * EC2's instance states in the contract's terms. `stopping` and `stopped` count as on the way out: the adapter
 * launches with shutdown behaviour `terminate`, so only someone stopping an instance by hand gets there.
 */
const STATES: Readonly<Record<string, InstanceState>> = {
  pending: 'pending',
  running: 'running',
  'shutting-down': 'terminating',
  stopping: 'terminating',
  stopped: 'terminating',
  terminated: 'terminated',
};

export function observationOf(instance: Ec2Instance, region: string, nowMs: number): Observation | undefined {
  const id = instance.InstanceId;
  if (!id) return undefined;
  const tags: Record<string, string> = {};
  let offeringId: string | undefined;
  let idempotencyKey: string | undefined;
  for (const { Key, Value } of instance.Tags ?? []) {
    if (Key === undefined) continue;
    if (Key === TAG_OFFERING) offeringId = Value;
    else if (Key === TAG_KEY) idempotencyKey = Value;
    else if (!OWN_TAGS.has(Key)) tags[Key] = Value ?? '';
  }
  return {
    id,
    region,
    zone: instance.Placement?.AvailabilityZone ?? '',
    instanceType: instance.InstanceType ?? '',
    spot: instance.InstanceLifecycle === 'spot',
    spotRequestId: instance.SpotInstanceRequestId,
    state: STATES[instance.State?.Name ?? ''] ?? 'pending',
    reasonCode: instance.StateReason?.Code,
    reasonMessage: instance.StateReason?.Message,
    tags,
    offeringId,
    idempotencyKey,
    launchedAtMs: instance.LaunchTime?.getTime() ?? nowMs,
  };
}

/** Why an instance ended: asked by us or a user, reclaimed by the spot market, or anything else (a failure). */
export function terminationReason(
  reasonCode: string | undefined,
  requestedByUs: boolean,
  interrupted: boolean,
): TerminationReason {
  if (requestedByUs || reasonCode === 'Client.UserInitiatedShutdown') return 'requested';
  if (interrupted || reasonCode === 'Server.SpotInstanceTermination') return 'preempted';
  return 'failed';
}

/** EC2's state names in the contract's terms (TerminateInstances answers with them). */
export function stateOf(name: string | undefined): InstanceState | undefined {
  return STATES[name ?? ''];
}
