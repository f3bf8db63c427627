/**
 * What the AWS adapter needs to know, and its checks: the regions to buy in, how to launch an instance (an AMI or a
 * launch template; subnets, security groups), who owns what it launches, and the timing of polls and retries.
 * Bad settings fail here, once, with a ValidationError naming the option.
 */
import type { EC2ClientConfig } from '@aws-sdk/client-ec2';
import type { BackoffPolicy } from '../../lib/backoff.ts';
import type { Clock } from '../../lib/clock.ts';
import { ValidationError } from '../../lib/errors.ts';
import type { Offering } from '../catalog/offering.ts';
import { DEFAULT_PRICE_REFRESH_MS, type PriceLog } from '../list-prices.ts';

/** How instances are launched in a region. Everything not set here comes from the launch template or EC2's defaults. */
export interface AwsLaunchSettings {
  /** The AMI to boot (for GPUs, e.g. an AWS Deep Learning AMI of the region); required without a launch template. */
  readonly imageId?: string;
  /** A launch template (id `lt-…` or name); RunInstances' own parameters override it. */
  readonly launchTemplate?: { readonly id?: string; readonly name?: string; readonly version?: string };
  /** Subnet per zone; a zone without one gets the default VPC's subnet in that zone. */
  readonly subnetIds?: Readonly<Record<string, string>>;
  readonly securityGroupIds?: readonly string[];
  readonly keyName?: string;
  /** IAM instance profile, by ARN or name. */
  readonly instanceProfile?: string;
}

/** Static keys (`accessKeyId`, `secretAccessKey`, `sessionToken?`) or a function that returns them. */
export type AwsCredentials = NonNullable<EC2ClientConfig['credentials']>;

export interface AwsProviderOptions {
  readonly clock: Clock;
  /** Regions to buy in (e.g. `us-east-1`); each needs offerings in the catalog. */
  readonly regions: readonly string[];
  /** Launch settings for every region, merged under `launchByRegion`'s entry for a region. */
  readonly launch?: AwsLaunchSettings;
  readonly launchByRegion?: Readonly<Record<string, AwsLaunchSettings>>;
  /** Value of the `gpubroker:broker` tag: what this broker launched and may list (default `gpubroker`). */
  readonly brokerId?: string;
  /** Catalog offerings; those of other vendors and regions are ignored (default: the bundled catalog). */
  readonly offerings?: readonly Offering[];
  /** Explicit credentials; default: the SDK's standard chain (environment, shared files, SSO, IMDS, …). */
  readonly credentials?: AwsCredentials;
  /** EC2 endpoint for every region instead of AWS's (tests, private endpoints). */
  readonly endpoint?: string;
  /**
   * Price List Query API endpoint instead of AWS's (us-east-1). Without it, an `endpoint` override turns on-demand
   * list prices off (catalog prices): the Pricing API is not behind a test's or a private EC2 endpoint.
   */
  readonly pricingEndpoint?: string;
  /** How long on-demand list prices are used before they are read again (default 1 hour). */
  readonly priceRefreshMs?: number;
  /** Told at debug level where prices came from when not from the price API (failures, missing entries). */
  readonly log?: PriceLog;
  /** Inventory poll interval for events (default 5 s). */
  readonly pollIntervalMs?: number;
  /** Most items asked of one describe call, 5–1,000 (default 1,000). */
  readonly pageSize?: number;
  /** Retries of a throttled call (RequestLimitExceeded), with exponential backoff on the clock. */
  readonly backoff?: Partial<BackoffPolicy>;
  /** How long an offering stays out of a zone after InsufficientInstanceCapacity (default 10 minutes). */
  readonly capacityRetryAfterMs?: number;
  /** A tracked instance missing from the inventory this long is taken as terminated (default 10 minutes). */
  readonly vanishedAfterMs?: number;
  /** Longest wait for one HTTP answer from EC2 (default 30 s). */
  readonly requestTimeoutMs?: number;
  /** Told of inventory polls that failed (they are retried at the next interval). */
  readonly onPollError?: (error: unknown) => void;
}

/** The options with defaults applied and launch settings merged per region. */
export interface ResolvedAwsOptions {
  readonly clock: Clock;
  readonly regions: readonly string[];
  readonly launch: ReadonlyMap<string, AwsLaunchSettings>;
  readonly brokerId: string;
  readonly offerings: readonly Offering[];
  readonly credentials: AwsCredentials | undefined;
  readonly endpoint: string | undefined;
  /** Where on-demand list prices are read: the Pricing API at AWS's endpoint or another, or nowhere (`off` says why). */
  readonly pricing: { readonly endpoint: string | undefined } | { readonly off: string };
  readonly priceRefreshMs: number;
  readonly log: PriceLog | undefined;
  readonly pollIntervalMs: number;
  readonly pageSize: number;
  readonly backoff: BackoffPolicy;
  readonly capacityRetryAfterMs: number;
  readonly vanishedAfterMs: number;
  readonly requestTimeoutMs: number;
  readonly onPollError: (error: unknown) => void;
}

/**
 * Retries of throttled EC2 calls (RequestLimitExceeded): exponential backoff, as AWS asks of API clients
 * (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html), without jitter so that runs stay
 * reproducible. The SDK's own retries are off, so the waits are ours, on the adapter's Clock, and a test can
 * measure them.
 */
export const DEFAULT_BACKOFF: BackoffPolicy = { maxRetries: 5, baseDelayMs: 250, maxDelayMs: 10_000 };

const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d+$/;

export function resolveAwsOptions(
  options: AwsProviderOptions,
  catalog: readonly Offering[],
): ResolvedAwsOptions {
  const regions = [...new Set(options.regions ?? [])];
  if (regions.length === 0)
    throw new ValidationError('aws.regions', 'name at least one region, e.g. us-east-1');
  for (const region of regions) {
    if (!REGION.test(region))
      throw new ValidationError('aws.regions', `"${region}" is not an AWS region name`);
    if (!catalog.some((o) => o.vendor === 'aws' && o.region === region))
      throw new ValidationError('aws.regions', `the catalog has no AWS offerings in ${region}`);
  }
  for (const region of Object.keys(options.launchByRegion ?? {}))
    if (!regions.includes(region))
      throw new ValidationError(`aws.launchByRegion.${region}`, 'is not one of the configured regions');

  const launch = new Map<string, AwsLaunchSettings>();
  for (const region of regions) {
    const merged: AwsLaunchSettings = {
      ...(options.launch ?? {}),
      ...(options.launchByRegion?.[region] ?? {}),
    };
    checkLaunch(region, merged);
    launch.set(region, merged);
  }

  const brokerId = options.brokerId ?? 'gpubroker';
  if (!/^[\x20-\x7e]{1,256}$/.test(brokerId))
    throw new ValidationError('aws.brokerId', 'must be 1–256 printable ASCII characters (an EC2 tag value)');
  const pageSize = options.pageSize ?? 1_000;
  if (!Number.isSafeInteger(pageSize) || pageSize < 5 || pageSize > 1_000)
    throw new ValidationError('aws.pageSize', 'must be an integer from 5 to 1000 (EC2 MaxResults)');
  const backoff = { ...DEFAULT_BACKOFF, ...(options.backoff ?? {}) };
  if (!Number.isSafeInteger(backoff.maxRetries) || backoff.maxRetries < 0)
    throw new ValidationError('aws.backoff.maxRetries', 'must be a non-negative integer');
  if (options.endpoint !== undefined && !/^https?:\/\/[^/]+/.test(options.endpoint))
    throw new ValidationError('aws.endpoint', `"${options.endpoint}" is not an http(s) URL`);
  if (options.pricingEndpoint !== undefined && !/^https?:\/\/[^/]+/.test(options.pricingEndpoint))
    throw new ValidationError('aws.pricingEndpoint', `"${options.pricingEndpoint}" is not an http(s) URL`);
  const pricing =
    options.pricingEndpoint !== undefined || options.endpoint === undefined
      ? { endpoint: options.pricingEndpoint }
      : { off: `EC2's endpoint is ${options.endpoint} and no pricingEndpoint is set` };

  return {
    clock: options.clock,
    regions,
    launch,
    brokerId,
    offerings: catalog.filter((o) => o.vendor === 'aws' && regions.includes(o.region)),
    credentials: options.credentials,
    endpoint: options.endpoint,
    pricing,
    priceRefreshMs: positiveMs('aws.priceRefreshMs', options.priceRefreshMs, DEFAULT_PRICE_REFRESH_MS),
    log: options.log,
    pollIntervalMs: positiveMs('aws.pollIntervalMs', options.pollIntervalMs, 5_000),
    pageSize,
    backoff: {
      maxRetries: backoff.maxRetries,
      baseDelayMs: positiveMs('aws.backoff.baseDelayMs', backoff.baseDelayMs, DEFAULT_BACKOFF.baseDelayMs),
      maxDelayMs: positiveMs('aws.backoff.maxDelayMs', backoff.maxDelayMs, DEFAULT_BACKOFF.maxDelayMs),
    },
    capacityRetryAfterMs: positiveMs('aws.capacityRetryAfterMs', options.capacityRetryAfterMs, 600_000),
    vanishedAfterMs: positiveMs('aws.vanishedAfterMs', options.vanishedAfterMs, 600_000),
    requestTimeoutMs: positiveMs('aws.requestTimeoutMs', options.requestTimeoutMs, 30_000),
    onPollError: options.onPollError ?? (() => {}),
  };
}

function checkLaunch(region: string, launch: AwsLaunchSettings): void {
  const field = `aws.launch (${region})`;
  const template = launch.launchTemplate;
  if (!launch.imageId && !template)
    throw new ValidationError(`${field}.imageId`, 'set an AMI id (ami-…) or a launch template');
  if (launch.imageId !== undefined && !/^ami-[0-9a-f]{8,17}$/.test(launch.imageId))
    throw new ValidationError(`${field}.imageId`, `"${launch.imageId}" is not an AMI id`);
  if (template && !template.id === !template.name)
    throw new ValidationError(`${field}.launchTemplate`, 'give exactly one of id and name');
  for (const [zone, subnet] of Object.entries(launch.subnetIds ?? {})) {
    if (!zone.startsWith(region))
      throw new ValidationError(`${field}.subnetIds.${zone}`, `is not a zone of ${region}`);
    if (!/^subnet-[0-9a-f]{8,17}$/.test(subnet))
      throw new ValidationError(`${field}.subnetIds.${zone}`, `"${subnet}" is not a subnet id`);
  }
  for (const group of launch.securityGroupIds ?? [])
    if (!/^sg-[0-9a-f]{8,17}$/.test(group))
      throw new ValidationError(`${field}.securityGroupIds`, `"${group}" is not a security group id`);
}

function positiveMs(field: string, value: number | undefined, fallback: number): number {
  const ms = value ?? fallback;
  if (!Number.isSafeInteger(ms) || ms <= 0)
    throw new ValidationError(field, `must be a positive integer of ms, got ${ms}`);
  return ms;
}
