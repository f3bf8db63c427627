/**
 * This machine's instance id, read from its cloud's metadata service, in the form the broker's adapter for that
 * cloud gives `Instance.id` (the broker accepts a join token only from the instance its launch created):
 *
 * - aws: the EC2 instance id (`i-0123456789abcdef0`), through IMDSv2: a session token by PUT, then the id by GET.
 *   https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
 * - gcp: `zone/name` (`us-central1-a/gpb-…-0`), as providers/gcp/instance-view.ts names VMs: GCE names are unique
 *   per zone. Header `Metadata-Flavor: Google`, which the server echoes.
 *   https://cloud.google.com/compute/docs/metadata/predefined-metadata-keys
 * - azure: the VM's ARM resource id (`/subscriptions/…/resourceGroups/…/providers/Microsoft.Compute/virtualMachines/…`),
 *   as providers/azure/azure-provider.ts names VMs, from IMDS `compute.resourceId`. Header `Metadata: true`.
 *   ARM ids compare case-insensitively (IMDS may spell the resource group otherwise than the broker's setting).
 *   https://learn.microsoft.com/en-us/azure/virtual-machines/instance-metadata-service
 *
 * Off the cloud (or with the metadata service blocked) it fails within `timeoutMs` with one line naming the vendor
 * and the URL.
 */
import { type Clock, RealClock, type TimerHandle } from '../lib/clock.ts';
import { StartupError } from '../lib/errors.ts';

export type IdentityVendor = 'aws' | 'gcp' | 'azure';

export interface InstanceIdentityOptions {
  /** The fetch to use (default: the global one). */
  readonly fetch?: typeof fetch;
  /** How long all the requests may take together (default 3,000 ms). */
  readonly timeoutMs?: number;
  /** The metadata service's base URL (default: the cloud's own, `METADATA_BASE_URLS`); tests point it at 127.0.0.1. */
  readonly baseUrl?: string;
  readonly clock?: Clock;
}

export const METADATA_BASE_URLS: Readonly<Record<IdentityVendor, string>> = {
  aws: 'http://169.254.169.254',
  gcp: 'http://metadata.google.internal',
  azure: 'http://169.254.169.254',
};

export const DEFAULT_IDENTITY_TIMEOUT_MS = 3_000;

/** IMDSv2 session tokens live up to six hours; this one is used at once. */
const AWS_TOKEN_TTL_SECONDS = '60';
const AZURE_API_VERSION = '2021-02-01';

const AWS_INSTANCE_ID = /^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$/;
const GCE_ZONE = /^[a-z][a-z0-9-]*[a-z0-9]$/;
const GCE_NAME = /^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const AZURE_VM_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Compute\/virtualMachines\/[A-Za-z0-9][A-Za-z0-9._-]*$/i;

/** The metadata service could not tell this machine's instance id: names the vendor and the URL. */
export class InstanceIdentityError extends StartupError {
  constructor(
    readonly vendor: IdentityVendor,
    readonly url: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super('--instance-id-from', `${vendor}: ${message}`, options);
  }
}

/** This machine's instance id as the broker's `vendor` adapter names it. */
export async function instanceIdentity(
  vendor: IdentityVendor,
  options: InstanceIdentityOptions = {},
): Promise<string> {
  if (!(vendor in METADATA_BASE_URLS))
    throw new StartupError('--instance-id-from', `"${vendor}" is not aws, gcp or azure`);
  const session = new Session(vendor, options);
  try {
    switch (vendor) {
      case 'aws':
        return await awsInstanceId(session);
      case 'gcp':
        return await gcpInstanceId(session);
      case 'azure':
        return await azureInstanceId(session);
    }
  } finally {
    session.end();
  }
}

async function awsInstanceId(s: Session): Promise<string> {
  const token = (
    await s.text('/latest/api/token', {
      method: 'PUT',
      headers: { 'X-aws-ec2-metadata-token-ttl-seconds': AWS_TOKEN_TTL_SECONDS },
    })
  ).body.trim();
  if (!token) throw s.error('/latest/api/token', 'answered an empty IMDSv2 token');
  const { body } = await s.text('/latest/meta-data/instance-id', {
    headers: { 'X-aws-ec2-metadata-token': token },
  });
  return s.check('/latest/meta-data/instance-id', body.trim(), AWS_INSTANCE_ID, 'an EC2 instance id');
}

async function gcpInstanceId(s: Session): Promise<string> {
  const headers = { 'Metadata-Flavor': 'Google' };
  const get = async (path: string) => {
    const answer = await s.text(path, { headers });
    // The metadata server says it is one; anything else on that name (a proxy, a captive portal) is not.
    if (answer.headers.get('metadata-flavor') !== 'Google')
      throw s.error(
        path,
        'answered without the Metadata-Flavor: Google header (not the GCE metadata server)',
      );
    return answer.body.trim();
  };
  const zonePath = '/computeMetadata/v1/instance/zone';
  const namePath = '/computeMetadata/v1/instance/name';
  const [zoneText, nameText] = await Promise.all([get(zonePath), get(namePath)]);
  // `projects/<number>/zones/<zone>`
  const zone = s.check(zonePath, zoneText.split('/').at(-1) ?? '', GCE_ZONE, 'a zone');
  const name = s.check(namePath, nameText, GCE_NAME, 'a VM name');
  return `${zone}/${name}`;
}

async function azureInstanceId(s: Session): Promise<string> {
  const path = `/metadata/instance/compute?api-version=${AZURE_API_VERSION}`;
  const { body } = await s.text(path, { headers: { Metadata: 'true' } });
  let resourceId: unknown;
  try {
    resourceId = (JSON.parse(body) as { resourceId?: unknown }).resourceId;
  } catch {
    throw s.error(path, `answered something that is not JSON: ${excerpt(body)}`);
  }
  return s.check(path, typeof resourceId === 'string' ? resourceId : '', AZURE_VM_ID, 'a VM resource id');
}

/** The requests of one look-up, under one deadline. */
class Session {
  private readonly base: string;
  private readonly fetch: typeof fetch;
  private readonly timeoutMs: number;
  private readonly controller = new AbortController();
  private readonly timer: TimerHandle;

  constructor(
    private readonly vendor: IdentityVendor,
    options: InstanceIdentityOptions,
  ) {
    this.base = (options.baseUrl ?? METADATA_BASE_URLS[vendor]).replace(/\/+$/, '');
    this.fetch = options.fetch ?? globalThis.fetch;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_IDENTITY_TIMEOUT_MS;
    if (!Number.isFinite(this.timeoutMs) || this.timeoutMs <= 0)
      throw new StartupError('timeoutMs', 'must be a positive number of milliseconds');
    const clock = options.clock ?? new RealClock();
    this.timer = clock.setTimer(clock.now() + this.timeoutMs, () => this.controller.abort());
  }

  end(): void {
    this.timer.cancel();
    this.controller.abort();
  }

  url(path: string): string {
    return `${this.base}${path}`;
  }

  error(path: string, message: string, cause?: unknown): InstanceIdentityError {
    const url = this.url(path);
    return new InstanceIdentityError(
      this.vendor,
      url,
      `the metadata service at ${url} ${message}`,
      cause === undefined ? undefined : { cause },
    );
  }

  /** One request; its body as text. Timeouts, refusals and non-2xx answers become one InstanceIdentityError. */
  async text(path: string, init: RequestInit): Promise<{ body: string; headers: Headers }> {
    const signal = this.controller.signal;
    try {
      const response = await this.fetch(this.url(path), { ...init, signal, redirect: 'error' });
      const body = await response.text();
      if (!response.ok) throw this.error(path, `answered HTTP ${response.status}: ${excerpt(body)}`);
      return { body, headers: response.headers };
    } catch (error) {
      if (error instanceof InstanceIdentityError) throw error;
      if (signal.aborted)
        throw this.error(
          path,
          `did not answer within ${this.timeoutMs} ms (not on ${this.vendor}, or the metadata service blocked? give --instance-id instead)`,
          error,
        );
      throw this.error(path, `cannot be reached (${reason(error)})`, error);
    }
  }

  check(path: string, value: string, pattern: RegExp, what: string): string {
    if (!pattern.test(value))
      throw this.error(path, `answered something that is not ${what}: ${excerpt(value)}`);
    return value;
  }
}

/** Why a fetch failed, in a few words: undici puts the system error (ECONNREFUSED, ENOTFOUND) in `cause`. */
function reason(error: unknown): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  if (typeof cause?.message === 'string') return oneLine(cause.message);
  return oneLine(error instanceof Error ? error.message : String(error));
}

function excerpt(text: string): string {
  const line = oneLine(text);
  return JSON.stringify(line.length > 80 ? `${line.slice(0, 80)}…` : line);
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
