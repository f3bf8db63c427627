/**
 * Configuration of the Azure adapter: what it needs to create VMs (subscription, resource group, a subnet per region,
 * an SSH key), how it behaves (poll intervals, throttling backoff), and the test hooks (endpoint, TLS CA, credential).
 * Checked once, up front, into one ValidationError naming the option.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { BackoffPolicy } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import type { Offering } from '../catalog/offering.ts';
import type { PriceLog } from '../list-prices.ts';
import type { VmSettings } from './vm-spec.ts';

export interface AzureProviderOptions {
  readonly subscriptionId: string;
  /** Existing resource group the VMs are created in (its location does not limit theirs). */
  readonly resourceGroup: string;
  /** Regions to buy in, each with the subnet resource id its VMs join (a VNet is regional). */
  readonly regions: Readonly<Record<string, { readonly subnetId: string }>>;
  /** SSH public key (OpenSSH format) installed for `adminUsername`; password login is disabled. */
  readonly sshPublicKey: string;
  /** Owner tag value (`gpubroker:broker`): instances of other brokers in the group are not ours (default `gpubroker`). */
  readonly brokerId?: string;
  readonly adminUsername?: string;
  /** Marketplace image (default `microsoft-dsvm:ubuntu-hpc:2204:latest`, NVIDIA driver and CUDA preinstalled). */
  readonly image?: VmSettings['image'];
  readonly osDiskSizeGb?: number;
  /** Cloud-init or script text for the VMs (sent base64-encoded as userData). */
  readonly userData?: string;
  /** Explicit credential; default DefaultAzureCredential (environment, workload identity, managed identity, CLI, …). */
  readonly credential?: TokenCredential;
  /** ARM endpoint (default https://management.azure.com); tests point it at the fake. */
  readonly endpoint?: string;
  /** Extra CA certificate (PEM) to trust for the endpoint: the fake's self-signed certificate in tests. */
  readonly tlsCa?: string;
  /**
   * Retail Prices API origin (default https://prices.azure.com). Without it, an `endpoint` override turns live
   * prices off (catalog prices): the public price list is not behind a test's or a sovereign cloud's ARM endpoint.
   */
  readonly pricesEndpoint?: string;
  /** How long prices from the Retail Prices API are used before they are read again (default 1 hour). */
  readonly priceRefreshMs?: number;
  /** Told at debug level where prices came from when not from the Retail Prices API (failures, missing entries). */
  readonly log?: PriceLog;
  readonly clock?: Clock;
  /** Catalog offerings (default: the bundled catalog); those of other vendors are ignored. */
  readonly catalog?: readonly Offering[];
  /** Inventory poll interval for events (default 5 s). */
  readonly pollIntervalMs?: number;
  /** Poll interval of long-running operations (default 2 s). */
  readonly operationPollIntervalMs?: number;
  /** How long provision waits for Azure to allocate before answering "unknown, repeat" (default 20 min). */
  readonly provisionTimeoutMs?: number;
  /** Throttled ARM calls: retries after the first try (default 4), first wait (500 ms, doubling), longest (30 s). */
  readonly throttle?: Partial<BackoffPolicy>;
  /** How long an offering/zone that ran out of capacity is reported unavailable (default 10 min). */
  readonly capacityRetryAfterMs?: number;
  /** How long terminated instances stay listed (`includeTerminated`); Azure forgets deleted VMs at once (default 1 h). */
  readonly terminatedRetentionMs?: number;
  /** How long Resource SKU answers are reused (default 10 min). */
  readonly skuCacheMs?: number;
}

export const DEFAULT_IMAGE: VmSettings['image'] = {
  publisher: 'microsoft-dsvm',
  offer: 'ubuntu-hpc',
  sku: '2204',
  version: 'latest',
};

/** Resource group names: https://learn.microsoft.com/en-us/azure/azure-resource-manager/management/resource-name-rules */
const RESOURCE_GROUP = /^[-\w._()]{1,90}$/u;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;

/** Throws ValidationError naming the first bad option. */
export function validateAzureOptions(options: AzureProviderOptions, azureRegions: ReadonlySet<string>): void {
  const fail = (field: string, message: string): never => {
    throw new ValidationError(`azure.${field}`, message);
  };
  if (typeof options.subscriptionId !== 'string' || !GUID.test(options.subscriptionId))
    fail('subscriptionId', 'the subscription id (a GUID) is required; set AZURE_SUBSCRIPTION_ID');
  if (
    typeof options.resourceGroup !== 'string' ||
    !RESOURCE_GROUP.test(options.resourceGroup) ||
    options.resourceGroup.endsWith('.')
  )
    fail('resourceGroup', 'an existing resource group name is required; set GPUBROKER_AZURE_RESOURCE_GROUP');
  const regions = Object.entries(options.regions ?? {});
  if (regions.length === 0)
    fail(
      'regions',
      'name at least one region with its subnet; set GPUBROKER_AZURE_REGIONS=eastus=<subnet id>,…',
    );
  for (const [region, { subnetId }] of regions) {
    if (!azureRegions.has(region))
      fail(`regions.${region}`, 'the catalog has no Azure offering in this region');
    if (typeof subnetId !== 'string' || !SUBNET_ID.test(subnetId))
      fail(
        `regions.${region}.subnetId`,
        'a subnet resource id (/subscriptions/…/virtualNetworks/…/subnets/…) is required',
      );
  }
  if (
    typeof options.sshPublicKey !== 'string' ||
    !/^(ssh-rsa|ssh-ed25519|ecdsa-sha2-\S+) \S+/.test(options.sshPublicKey)
  )
    fail('sshPublicKey', 'an OpenSSH public key is required; set GPUBROKER_AZURE_SSH_PUBLIC_KEY');
  if (options.brokerId !== undefined && (options.brokerId.length === 0 || options.brokerId.length > 256))
    fail('brokerId', 'must be 1 to 256 characters (it is a tag value)');
  for (const [field, value] of [
    ['pollIntervalMs', options.pollIntervalMs],
    ['operationPollIntervalMs', options.operationPollIntervalMs],
    ['provisionTimeoutMs', options.provisionTimeoutMs],
    ['capacityRetryAfterMs', options.capacityRetryAfterMs],
    ['terminatedRetentionMs', options.terminatedRetentionMs],
    ['skuCacheMs', options.skuCacheMs],
    ['priceRefreshMs', options.priceRefreshMs],
  ] as const)
    if (value !== undefined && (!Number.isSafeInteger(value) || value <= 0))
      fail(field, 'must be a positive integer number of ms');
  if (options.pricesEndpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(options.pricesEndpoint))
    fail('pricesEndpoint', `"${options.pricesEndpoint}" is not an http(s) origin (scheme, host, port)`);
}

/**
 * Options from the environment, for `gpubroker serve --providers azure`:
 * AZURE_SUBSCRIPTION_ID, GPUBROKER_AZURE_RESOURCE_GROUP, GPUBROKER_AZURE_REGIONS (`region=subnetId,…`),
 * GPUBROKER_AZURE_SSH_PUBLIC_KEY, and optionally GPUBROKER_AZURE_BROKER_ID and GPUBROKER_AZURE_PRICES_ENDPOINT (another
 * Retail Prices API origin). Credentials come from the
 * DefaultAzureCredential chain (AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET, managed identity, `az login`, …).
 */
export function azureOptionsFromEnv(env: Readonly<Record<string, string | undefined>>): AzureProviderOptions {
  const regions: Record<string, { subnetId: string }> = {};
  for (const entry of (env.GPUBROKER_AZURE_REGIONS ?? '').split(',')) {
    const trimmed = entry.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf('=');
    if (at <= 0) throw new ValidationError('GPUBROKER_AZURE_REGIONS', `"${trimmed}" is not region=subnetId`);
    regions[trimmed.slice(0, at)] = { subnetId: trimmed.slice(at + 1) };
  }
  return {
    subscriptionId: env.AZURE_SUBSCRIPTION_ID ?? '',
    resourceGroup: env.GPUBROKER_AZURE_RESOURCE_GROUP ?? '',
    regions,
    sshPublicKey: env.GPUBROKER_AZURE_SSH_PUBLIC_KEY ?? '',
    ...(env.GPUBROKER_AZURE_BROKER_ID ? { brokerId: env.GPUBROKER_AZURE_BROKER_ID } : {}),
    ...(env.GPUBROKER_AZURE_PRICES_ENDPOINT ? { pricesEndpoint: env.GPUBROKER_AZURE_PRICES_ENDPOINT } : {}),
  };
}
