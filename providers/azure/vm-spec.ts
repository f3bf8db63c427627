/**
 * What the adapter writes to Azure for one instance: its name (derived from the idempotency key, so that a repeated
 * call targets the same VMs: ARM PUT is idempotent by resource name), its ownership tags and its VM body.
 *
 * Tag names are case-insensitive in Azure, at most 512 characters, and cannot contain `< > % & \ ? /`; values are at
 * most 256 characters; a resource has at most 50 tags. A colon is allowed, so `gpubroker:*` needs no mapping.
 * https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/tag-resources#limitations
 */
import { createHash } from 'node:crypto';
import type { VirtualMachine } from '@azure/arm-compute';
import type { Offering } from '../catalog/offering.ts';
import type { Tags } from '../provider.ts';

/** The broker (fleet) that owns the VM. */
export const BROKER_TAG = 'gpubroker:broker';
/** The offering id the VM was provisioned from. */
export const OFFERING_TAG = 'gpubroker:offering';
/** The idempotency key of the provision call that created it. */
export const KEY_TAG = 'gpubroker:key';
/** A hash of the call's parameters, to refuse a key reused with other parameters after a restart. */
export const REQUEST_TAG = 'gpubroker:request';
/** Tags the adapter sets itself; callers may not use this prefix. */
export const RESERVED_TAG_PREFIX = 'gpubroker:';
export const MAX_USER_TAGS = 50 - 4;

const FORBIDDEN_TAG_CHARS = /[<>%&\\?/]/;

/** Why a caller's tag cannot be set on an Azure resource, or undefined when it can. */
export function tagProblem(name: string, value: unknown): string | undefined {
  if (typeof value !== 'string') return 'tag values are strings';
  if (name.length === 0 || name.length > 512) return 'tag names are 1 to 512 characters';
  if (FORBIDDEN_TAG_CHARS.test(name)) return 'tag names cannot contain < > % & \\ ? /';
  if (/^(microsoft|azure|windows)/i.test(name))
    return 'tag names starting with microsoft, azure or windows are reserved';
  if (name.toLowerCase().startsWith(RESERVED_TAG_PREFIX))
    return `the ${RESERVED_TAG_PREFIX} prefix is the adapter's`;
  if (value.length > 256) return 'tag values are at most 256 characters';
  return undefined;
}

/** A tag's value, looking the name up case-insensitively as Azure does. */
export function tagValue(
  tags: Readonly<Record<string, string>> | undefined,
  name: string,
): string | undefined {
  if (!tags) return undefined;
  if (name in tags) return tags[name];
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(tags)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

/** The caller's tags of a VM: everything but the adapter's own. */
export function userTags(tags: Readonly<Record<string, string>> | undefined): Tags {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags ?? {}))
    if (!k.toLowerCase().startsWith(RESERVED_TAG_PREFIX)) out[k] = v;
  return Object.freeze(out);
}

/**
 * VM names of one provision call: `gpb-<16 hex>-<n>`. The hash covers the broker id too, so two brokers sharing a
 * resource group never collide on a key. 24 characters at most for n < 1000: valid for Linux and Windows computer names.
 */
export function vmNames(brokerId: string, idempotencyKey: string, count: number): string[] {
  const hash = createHash('sha256').update(`${brokerId}\0${idempotencyKey}`).digest('hex').slice(0, 16);
  return Array.from({ length: count }, (_, i) => `gpb-${hash}-${i}`);
}

/**
 * Hash of the parameters that must match when a key is repeated (the zone only when the caller chose it), and the
 * agent's start-up script when there is one: Azure refuses a PUT that changes a VM's customData
 * (PropertyChangeNotAllowed), which would fail the repeat after its VMs exist, so another script is a reused key.
 */
export function requestFingerprint(
  offeringId: string,
  count: number,
  zone: string | undefined,
  tags: Tags | undefined,
  startupScript?: string,
): string {
  const sortedTags = Object.entries(tags ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const parts: unknown[] = [offeringId, count, zone ?? null, sortedTags];
  if (startupScript !== undefined) parts.push(createHash('sha256').update(startupScript).digest('hex'));
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 32);
}

/** Zone ids as the adapter names them: `eastus-1` for Azure zone "1" of eastus; the region itself when it has none. */
export function zoneId(region: string, azureZone: string | undefined): string {
  return azureZone === undefined ? region : `${region}-${azureZone}`;
}

/** The Azure zone ("1") of an adapter zone id, or undefined for a region without zones. */
export function azureZoneOf(region: string, zone: string): string | undefined {
  return zone === region ? undefined : zone.slice(region.length + 1);
}

export function vmResourceId(subscriptionId: string, resourceGroup: string, name: string): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/virtualMachines/${name}`;
}

/** The VM name of an instance id of this subscription and resource group (ids compare case-insensitively in ARM). */
export function vmNameOf(id: string, subscriptionId: string, resourceGroup: string): string | undefined {
  const prefix = vmResourceId(subscriptionId, resourceGroup, '').toLowerCase();
  if (typeof id !== 'string' || !id.toLowerCase().startsWith(prefix)) return undefined;
  const name = id.slice(prefix.length);
  return /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name) ? name : undefined;
}

/** How the adapter's VMs are built (image, network, login); the same for every offering. */
export interface VmSettings {
  /** Subnet resource id per region (a VNet is regional). */
  readonly subnetIds: Readonly<Record<string, string>>;
  readonly adminUsername: string;
  readonly sshPublicKey: string;
  readonly image: {
    readonly publisher: string;
    readonly offer: string;
    readonly sku: string;
    readonly version: string;
  };
  readonly osDiskSizeGb?: number;
  /** Cloud-init or script text, sent base64-encoded as the VM's userData. */
  readonly userData?: string;
}

/**
 * The body of Virtual Machines - Create Or Update for one instance. Spot offerings become `priority: Spot` with
 * `evictionPolicy: Delete` (an evicted VM and its disks go away, so nothing is billed after eviction) and
 * `billingProfile.maxPrice: -1` (pay up to the on-demand price; never evicted for price).
 * https://learn.microsoft.com/en-us/rest/api/compute/virtual-machines/create-or-update
 * https://learn.microsoft.com/en-us/azure/virtual-machines/spot-vms
 * The NIC is created with the VM (`networkInterfaceConfigurations`, networkApiVersion 2020-11-01) and deleted with it.
 */
export function vmBody(
  offering: Offering,
  name: string,
  azureZone: string | undefined,
  tags: Record<string, string>,
  settings: VmSettings,
  startupScript?: string,
): VirtualMachine {
  const spot = offering.capacityType === 'spot';
  const subnetId = settings.subnetIds[offering.region] ?? '';
  return {
    location: offering.region,
    tags,
    ...(azureZone === undefined ? {} : { zones: [azureZone] }),
    hardwareProfile: { vmSize: offering.instanceType },
    storageProfile: {
      imageReference: { ...settings.image },
      osDisk: {
        createOption: 'FromImage',
        deleteOption: 'Delete',
        managedDisk: { storageAccountType: 'Premium_LRS' },
        ...(settings.osDiskSizeGb === undefined ? {} : { diskSizeGB: settings.osDiskSizeGb }),
      },
    },
    osProfile: {
      computerName: name,
      adminUsername: settings.adminUsername,
      // The agent's start-up script: cloud-init runs customData at first boot. The SDK sends it as given; ARM
      // wants base64 decoding to at most 65,535 bytes, and never returns it.
      ...(startupScript === undefined
        ? {}
        : { customData: Buffer.from(startupScript, 'utf8').toString('base64') }),
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: {
          publicKeys: [
            { path: `/home/${settings.adminUsername}/.ssh/authorized_keys`, keyData: settings.sshPublicKey },
          ],
        },
      },
    },
    networkProfile: {
      networkApiVersion: '2020-11-01',
      networkInterfaceConfigurations: [
        {
          name: `${name}-nic`,
          primary: true,
          deleteOption: 'Delete',
          ipConfigurations: [{ name: 'ipconfig1', subnet: { id: subnetId } }],
        },
      ],
    },
    ...(spot ? { priority: 'Spot', evictionPolicy: 'Delete', billingProfile: { maxPrice: -1 } } : {}),
    ...(settings.userData === undefined
      ? {}
      : { userData: Buffer.from(settings.userData).toString('base64') }),
  };
}
