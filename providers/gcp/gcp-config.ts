/**
 * Configuration of the GCP adapter: what the operator sets (project, regions, owner id, VM settings), what tests
 * set (endpoint, explicit credentials, short timings), and the defaults. Validation happens here, before any
 * network call, so a bad setting is one clear error naming the setting.
 */
import type { BackoffPolicy } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { BUNDLED_CATALOG_PATH, loadCatalog } from '../catalog/load-catalog.ts';
import type { Offering } from '../catalog/offering.ts';
import { DEFAULT_PRICE_REFRESH_MS, type PriceLog } from '../list-prices.ts';
import type { BillingClientOptions } from './billing-catalog.ts';
import type { ComputeClientOptions } from './gce-api.ts';
import { VENDOR } from './gce-api.ts';
import type { InstanceSettings } from './machine-spec.ts';

export interface GcpProviderOptions {
  readonly clock: Clock;
  /** The project VMs are created in; default: GOOGLE_CLOUD_PROJECT / GCLOUD_PROJECT, then the credentials'. */
  readonly project?: string;
  /** Regions to sell (`us-central1`, …); default: every GCP region of the catalog. */
  readonly regions?: readonly string[];
  /** Who owns the VMs: the `gpubroker:broker` tag on each (e.g. the fleet id). Default `gpubroker`. */
  readonly owner?: string;
  /** Catalog offerings (default: the bundled catalog); other vendors' are ignored. */
  readonly offerings?: readonly Offering[];

  /** A service-account key file instead of Application Default Credentials. */
  readonly keyFilename?: string;
  /** A service-account key instead of Application Default Credentials. */
  readonly credentials?: { readonly client_email: string; readonly private_key: string };
  /** An auth client to use as is (google-auth-library), e.g. one holding a fixed access token in tests. */
  readonly authClient?: ComputeClientOptions['authClient'];
  /** Another Compute Engine endpoint (tests: the fake on 127.0.0.1). */
  readonly endpoint?: Endpoint;
  /**
   * Another Cloud Billing Catalog API endpoint (default Google's). Without it, an `endpoint` override turns live
   * prices off (catalog prices): the billing catalog is not behind a test's or a private Compute endpoint.
   */
  readonly billingEndpoint?: Endpoint;
  /** How long prices from the billing catalog are used before they are read again (default 1 hour). */
  readonly priceRefreshMs?: number;
  /** Told at debug level where prices came from when not from the billing catalog (failures, missing SKUs). */
  readonly log?: PriceLog;

  /** Boot disk, network and service account of the VMs. */
  readonly instance?: Partial<InstanceSettings>;
  /** First word of VM names (default `gpubroker`). */
  readonly namePrefix?: string;

  /** How often the inventory is polled for state changes (default 5 s). */
  readonly pollIntervalMs?: number;
  /** How long ended VMs stay listed with `includeTerminated` (default 1 h). */
  readonly terminatedRetentionMs?: number;
  /** How long a zone that reported a stock-out is set aside (default 10 min; also InsufficientCapacityError's retryAfterMs). */
  readonly stockoutRetryMs?: number;
  /** Longest wait for a create operation before the outcome is reported unknown (default 10 min). */
  readonly operationTimeoutMs?: number;
  /** Pause between rounds of zoneOperations.wait that return early (default 1 s). */
  readonly operationPollMs?: number;
  /** How long the zones' accelerator list is reused (default 1 h). */
  readonly zoneCacheMs?: number;
  /** Retries of throttled calls. */
  readonly backoff?: Partial<GcpBackoffOptions>;
  /** Seed of the backoff jitter (default: derived from the owner). */
  readonly seed?: number;
}

/**
 * Retrying throttled calls: exponential backoff with equal jitter (half of each wait fixed, half random, so that
 * replicas do not retry in step), slept on the adapter's Clock, a bounded number of times. GCE answers rate limits
 * with HTTP 429 or 403 `rateLimitExceeded` (https://cloud.google.com/compute/api-rate-limits).
 */
export interface GcpBackoffOptions {
  /** Tries in all, the first one included. */
  readonly attempts: number;
  /** The wait before the first retry, before jitter; it doubles at each retry after. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_BACKOFF: GcpBackoffOptions = { attempts: 5, baseDelayMs: 500, maxDelayMs: 20_000 };

export interface Endpoint {
  readonly host: string;
  readonly port: number;
  readonly protocol?: 'http' | 'https';
}

export interface GcpConfig {
  readonly clock: Clock;
  readonly project: string | undefined;
  readonly owner: string;
  readonly offerings: readonly Offering[];
  /** Every GCP offering of the catalog, to recognise VMs of regions no longer sold. */
  readonly catalog: ReadonlyMap<string, Offering>;
  readonly client: ComputeClientOptions;
  /** The billing catalog client's options; undefined when live prices are off (`pricesOff` says why). */
  readonly billing: BillingClientOptions | undefined;
  readonly pricesOff: string | undefined;
  readonly priceRefreshMs: number;
  readonly log: PriceLog | undefined;
  readonly instance: InstanceSettings;
  readonly namePrefix: string;
  readonly pollIntervalMs: number;
  readonly terminatedRetentionMs: number;
  readonly stockoutRetryMs: number;
  readonly operationTimeoutMs: number;
  readonly operationPollMs: number;
  readonly zoneCacheMs: number;
  readonly backoff: BackoffPolicy;
  readonly seed: string | number;
}

export const DEFAULT_INSTANCE: InstanceSettings = {
  bootImage: 'projects/debian-cloud/global/images/family/debian-12',
  bootDiskGb: 100,
  bootDiskType: 'pd-balanced',
  externalIp: false,
};

/** Options from the environment, for `gpubroker serve --providers gcp`. */
export function gcpOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): Omit<GcpProviderOptions, 'clock'> {
  const regions = env.GPUBROKER_GCP_REGIONS?.split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  const project = env.GPUBROKER_GCP_PROJECT;
  const owner = env.GPUBROKER_GCP_OWNER;
  const image = env.GPUBROKER_GCP_IMAGE;
  const billing = env.GPUBROKER_GCP_BILLING_ENDPOINT;
  return {
    ...(project ? { project } : {}),
    ...(regions?.length ? { regions } : {}),
    ...(owner ? { owner } : {}),
    ...(image ? { instance: { bootImage: image } } : {}),
    ...(billing ? { billingEndpoint: endpointOf('GPUBROKER_GCP_BILLING_ENDPOINT', billing) } : {}),
  };
}

/** `https://host[:port]` as the SDK's endpoint options. */
function endpointOf(name: string, url: string): Endpoint {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ValidationError(name, `"${url}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new ValidationError(name, `"${url}" is not an http(s) URL`);
  const protocol = parsed.protocol === 'http:' ? 'http' : 'https';
  return {
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : protocol === 'http' ? 80 : 443,
    protocol,
  };
}

function positive(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new ValidationError(`gcp.${field}`, `must be a positive integer, got ${value}`);
  return value;
}

export function resolveConfig(options: GcpProviderOptions, env: NodeJS.ProcessEnv = process.env): GcpConfig {
  const owner = options.owner ?? 'gpubroker';
  if (owner.length === 0 || owner.length > 63)
    throw new ValidationError('gcp.owner', 'must be 1 to 63 characters');
  const namePrefix = options.namePrefix ?? 'gpubroker';
  if (!/^[a-z][-a-z0-9]{0,20}$/.test(namePrefix))
    throw new ValidationError('gcp.namePrefix', 'must be a lower-case letter then up to 20 of [-a-z0-9]');

  const all = (options.offerings ?? loadCatalog(BUNDLED_CATALOG_PATH)).filter((o) => o.vendor === VENDOR);
  const known = new Set(all.map((o) => o.region));
  for (const region of options.regions ?? [])
    if (!known.has(region))
      throw new ValidationError(
        'gcp.regions',
        `"${region}" has no GCP offering in the catalog (known: ${[...known].sort().join(', ')})`,
      );
  const regions = options.regions ? new Set(options.regions) : known;
  const offerings = all.filter((o) => regions.has(o.region) && o.capacityType !== 'reserved');
  if (offerings.length === 0) throw new ValidationError('gcp.regions', 'no GCP offering to sell');

  const project = options.project ?? env.GOOGLE_CLOUD_PROJECT ?? env.GCLOUD_PROJECT;
  if (project !== undefined && !/^[a-z][-a-z0-9.:]{4,61}[a-z0-9]$/.test(project))
    throw new ValidationError('gcp.project', `"${project}" is not a GCP project id`);

  const endpoint = options.endpoint;
  const auth: ComputeClientOptions = {
    fallback: true,
    ...(project ? { projectId: project } : {}),
    ...(options.authClient ? { authClient: options.authClient } : {}),
    ...(options.keyFilename ? { keyFilename: options.keyFilename } : {}),
    ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
  };
  const client: ComputeClientOptions = { ...auth, ...endpointOptions(endpoint) };
  const billingEndpoint = options.billingEndpoint;
  const pricesOff =
    endpoint && !billingEndpoint
      ? `Compute Engine's endpoint is ${endpoint.host}:${endpoint.port} and no billingEndpoint is set`
      : undefined;
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  return {
    clock: options.clock,
    project,
    owner,
    offerings,
    catalog: new Map(all.map((o) => [o.id, o])),
    client,
    billing: pricesOff ? undefined : { ...auth, ...endpointOptions(billingEndpoint) },
    pricesOff,
    priceRefreshMs: positive('priceRefreshMs', options.priceRefreshMs, DEFAULT_PRICE_REFRESH_MS),
    log: options.log,
    instance: { ...DEFAULT_INSTANCE, ...options.instance },
    namePrefix,
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs, 5_000),
    terminatedRetentionMs: positive('terminatedRetentionMs', options.terminatedRetentionMs, 3_600_000),
    stockoutRetryMs: positive('stockoutRetryMs', options.stockoutRetryMs, 600_000),
    operationTimeoutMs: positive('operationTimeoutMs', options.operationTimeoutMs, 600_000),
    operationPollMs: positive('operationPollMs', options.operationPollMs, 1_000),
    zoneCacheMs: positive('zoneCacheMs', options.zoneCacheMs, 3_600_000),
    backoff: {
      maxRetries: positive('backoff.attempts', backoff.attempts, DEFAULT_BACKOFF.attempts) - 1,
      baseDelayMs: positive('backoff.baseDelayMs', backoff.baseDelayMs, DEFAULT_BACKOFF.baseDelayMs),
      maxDelayMs: positive('backoff.maxDelayMs', backoff.maxDelayMs, DEFAULT_BACKOFF.maxDelayMs),
    },
    seed: options.seed ?? `gcp|${owner}`,
  };
}

function endpointOptions(endpoint: Endpoint | undefined): ComputeClientOptions {
  return endpoint
    ? { apiEndpoint: endpoint.host, port: endpoint.port, protocol: endpoint.protocol ?? 'https' }
    : {};
}
