/**
 * A GCE Instance resource (https://cloud.google.com/compute/docs/reference/rest/v1/instances) as the adapter sees
 * it: our id (`zone/name`, enough to address it without a lookup), the offering it was launched from, the exact
 * tags from its `gpubroker` metadata item, and its lifecycle state.
 */
import type { protos } from '@google-cloud/compute';
import { type Micros, micros } from '../../lib/money.ts';
import { type Offering, offeringId } from '../catalog/offering.ts';
import type { InstanceState, Tags } from '../provider.ts';
import { decodeLaunchRecord, KEY_TAG, METADATA_KEY } from './labels.ts';
import { N1_ACCELERATORS } from './machine-spec.ts';
import { regionOf } from './zone-directory.ts';

export interface InstanceView {
  /** `zone/name`: GCE names are unique per zone. */
  readonly id: string;
  /** GCE's numeric id, which operations name as their `targetId`. */
  readonly gceId: string;
  readonly zone: string;
  readonly name: string;
  /** GCE status: PROVISIONING, STAGING, RUNNING, STOPPING, TERMINATED, … */
  readonly status: string;
  readonly offering: Offering;
  readonly tags: Tags;
  readonly idempotencyKey: string;
  /** Fingerprint of the provision request, when the instance carries our launch record. */
  readonly fingerprint: string | undefined;
  readonly microsPerHour: Micros;
  readonly launchedAtMs: number;
  readonly lastStartMs: number | undefined;
  readonly spot: boolean;
}

export function instanceId(zone: string, name: string): string {
  return `${zone}/${name}`;
}

/** The zone and name of one of our ids, or undefined when `id` cannot be one. */
export function parseInstanceId(id: string): { zone: string; name: string } | undefined {
  const match = /^([a-z][a-z0-9-]*[a-z0-9])\/([a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)$/.exec(id);
  return match ? { zone: match[1] as string, name: match[2] as string } : undefined;
}

/**
 * The state a GCE status means for the broker. A stopped or suspended VM runs nothing, and gpubroker never
 * restarts one, so it counts as terminated (https://cloud.google.com/compute/docs/instances/instance-life-cycle).
 */
export function stateOfStatus(status: string): InstanceState {
  switch (status) {
    case 'PENDING':
    case 'PROVISIONING':
    case 'STAGING':
      return 'pending';
    case 'RUNNING':
    case 'REPAIRING':
      return 'running';
    case 'STOPPING':
    case 'SUSPENDING':
    case 'DEPROVISIONING':
      return 'terminating';
    default:
      return 'terminated';
  }
}

/** The last path segment of a GCE URL (`…/zones/us-central1-a` → `us-central1-a`). */
export function lastSegment(url: string | null | undefined): string {
  return (url ?? '').split('/').pop() ?? '';
}

function timestamp(text: string | null | undefined): number | undefined {
  const ms = text ? Date.parse(text) : Number.NaN;
  return Number.isFinite(ms) ? ms : undefined;
}

/**
 * Reads an Instance resource; `catalog` resolves offering ids. An instance without our launch record (made by
 * hand, or by an older adapter) is matched to the catalog by machine type and provisioning model, or described
 * by what GCE says about it.
 */
export function viewOf(
  instance: protos.google.cloud.compute.v1.IInstance,
  catalog: ReadonlyMap<string, Offering>,
  vendor: string,
): InstanceView | undefined {
  const zone = lastSegment(instance.zone);
  const name = instance.name ?? '';
  if (!zone || !name) return undefined;
  const record = decodeLaunchRecord(instance.metadata?.items?.find((i) => i.key === METADATA_KEY)?.value);
  const spot = instance.scheduling?.provisioningModel === 'SPOT' || instance.scheduling?.preemptible === true;
  const offering =
    (record && catalog.get(record.offeringId)) ?? offeringOfMachine(instance, zone, spot, catalog, vendor);
  const tags = record?.tags ?? { ...(instance.labels ?? {}) };
  return {
    id: instanceId(zone, name),
    gceId: String(instance.id ?? ''),
    zone,
    name,
    status: instance.status ?? 'PROVISIONING',
    offering,
    tags,
    idempotencyKey: record?.idempotencyKey ?? tags[KEY_TAG] ?? '',
    fingerprint: record?.fingerprint,
    microsPerHour: micros(record?.microsPerHour ?? offering.microsPerHour),
    launchedAtMs: timestamp(instance.creationTimestamp) ?? 0,
    lastStartMs: timestamp(instance.lastStartTimestamp),
    spot,
  };
}

function offeringOfMachine(
  instance: protos.google.cloud.compute.v1.IInstance,
  zone: string,
  spot: boolean,
  catalog: ReadonlyMap<string, Offering>,
  vendor: string,
): Offering {
  const region = regionOf(zone);
  const machine = lastSegment(instance.machineType);
  const accelerator = instance.guestAccelerators?.[0];
  const acceleratorType = lastSegment(accelerator?.acceleratorType);
  const gpu =
    Object.entries(N1_ACCELERATORS).find(([, type]) => type === acceleratorType)?.[0] ?? acceleratorType;
  const instanceType = accelerator ? `${machine}+${accelerator.acceleratorCount ?? 1}x${gpu}` : machine;
  const capacityType = spot ? 'spot' : 'on-demand';
  const id = offeringId(vendor, region, instanceType, capacityType);
  return (
    catalog.get(id) ?? {
      id,
      vendor,
      region,
      regionGroup: 'unknown',
      instanceType,
      gpu: accelerator ? gpu : 'unknown',
      gpusPerInstance: Math.max(1, accelerator?.acceleratorCount ?? 1),
      gpuMemoryGiB: 0,
      vcpus: 0,
      memoryGiB: 0,
      capacityType,
      microsPerHour: micros(0),
    }
  );
}
