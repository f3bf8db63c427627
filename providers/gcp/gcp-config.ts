/**
 * Configuration of the GCP adapter: what the operator sets (project, regions, owner id, VM settings), what tests
 * set (endpoint, explicit credentials, short timings), and the defaults. Validation happens here, before any
 * network call, so a bad setting is one clear error naming the setting.
 */
import type { Clock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import { BUNDLED_CATALOG_PATH, loadCatalog } from '../catalog/load-catalog.ts';
import type { Offering } from '../catalog/offering.ts';
import { type BackoffPolicy, DEFAULT_BACKOFF } from './backoff.ts';
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
  readonly endpoint?: { readonly host: string; readonly port: number; readonly protocol?: 'http' | 'https' };

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
  readonly backoff?: Partial<BackoffPolicy>;
  /** Seed of the backoff jitter (default: derived from the owner). */
  readonly seed?: number;
}

export interface GcpConfig {
  readonly clock: Clock;
  readonly project: string | undefined;
  readonly owner: string;
  readonly offerings: readonly Offering[];
  /** Every GCP offering of the catalog, to recognise VMs of regions no longer sold. */
  readonly catalog: ReadonlyMap<string, Offering>;
  readonly client: ComputeClientOptions;
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
  return {
    ...(project ? { project } : {}),
    ...(regions?.length ? { regions } : {}),
    ...(owner ? { owner } : {}),
    ...(image ? { instance: { bootImage: image } } : {}),
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
  const client: ComputeClientOptions = {
    fallback: true,
    ...(project ? { projectId: project } : {}),
    ...(endpoint
      ? { apiEndpoint: endpoint.host, port: endpoint.port, protocol: endpoint.protocol ?? 'https' }
      : {}),
    ...(options.authClient ? { authClient: options.authClient } : {}),
    ...(options.keyFilename ? { keyFilename: options.keyFilename } : {}),
    ...(options.credentials ? { credentials: { ...options.credentials } } : {}),
  };
  const backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  return {
    clock: options.clock,
    project,
    owner,
    offerings,
    catalog: new Map(all.map((o) => [o.id, o])),
    client,
    instance: { ...DEFAULT_INSTANCE, ...options.instance },
    namePrefix,
    pollIntervalMs: positive('pollIntervalMs', options.pollIntervalMs, 5_000),
    terminatedRetentionMs: positive('terminatedRetentionMs', options.terminatedRetentionMs, 3_600_000),
    stockoutRetryMs: positive('stockoutRetryMs', options.stockoutRetryMs, 600_000),
    operationTimeoutMs: positive('operationTimeoutMs', options.operationTimeoutMs, 600_000),
    operationPollMs: positive('operationPollMs', options.operationPollMs, 1_000),
    zoneCacheMs: positive('zoneCacheMs', options.zoneCacheMs, 3_600_000),
    backoff: {
      attempts: positive('backoff.attempts', backoff.attempts, DEFAULT_BACKOFF.attempts),
      baseDelayMs: positive('backoff.baseDelayMs', backoff.baseDelayMs, DEFAULT_BACKOFF.baseDelayMs),
      maxDelayMs: positive('backoff.maxDelayMs', backoff.maxDelayMs, DEFAULT_BACKOFF.maxDelayMs),
    },
    seed: options.seed ?? `gcp|${owner}`,
  };
}
