/**
 * `gpubroker serve --providers aws` reads its AWS settings from the environment (credentials come from the SDK's
 * standard chain, not from here). A value may apply to every region or name one: `ami-1` or
 * `us-east-1=ami-1,us-west-2=ami-2`.
 */
import { ValidationError } from '../../lib/errors.ts';
import type { AwsLaunchSettings, AwsProviderOptions } from './aws-options.ts';

export const AWS_ENV = {
  regions: 'GPUBROKER_AWS_REGIONS',
  imageId: 'GPUBROKER_AWS_IMAGE_ID',
  launchTemplate: 'GPUBROKER_AWS_LAUNCH_TEMPLATE',
  subnets: 'GPUBROKER_AWS_SUBNETS',
  securityGroups: 'GPUBROKER_AWS_SECURITY_GROUPS',
  keyName: 'GPUBROKER_AWS_KEY_NAME',
  instanceProfile: 'GPUBROKER_AWS_INSTANCE_PROFILE',
  brokerId: 'GPUBROKER_AWS_BROKER_ID',
  pollMs: 'GPUBROKER_AWS_POLL_MS',
  endpoint: 'GPUBROKER_AWS_ENDPOINT',
  pricingEndpoint: 'GPUBROKER_AWS_PRICING_ENDPOINT',
} as const;

/** The adapter's options from the environment; everything but the clock. */
export function awsOptionsFromEnv(
  env: Readonly<Record<string, string | undefined>> = process.env,
): Omit<AwsProviderOptions, 'clock'> {
  const regions = list(env[AWS_ENV.regions]);
  if (regions.length === 0)
    throw new ValidationError(AWS_ENV.regions, 'name the regions to buy in, e.g. us-east-1,us-west-2');
  const launchByRegion: Record<string, AwsLaunchSettings> = Object.fromEntries(regions.map((r) => [r, {}]));
  const set = (region: string, name: string, patch: AwsLaunchSettings) => {
    const current = launchByRegion[region];
    if (!current) throw new ValidationError(name, `${region} is not in ${AWS_ENV.regions}`);
    launchByRegion[region] = { ...current, ...patch };
  };

  for (const [region, value] of perRegion(env, AWS_ENV.imageId, regions))
    set(region, AWS_ENV.imageId, { imageId: value });
  for (const [region, value] of perRegion(env, AWS_ENV.launchTemplate, regions)) {
    // `lt-…` is an id, anything else a name; `:version` picks a version (template names cannot hold a colon).
    const [ref = '', version] = value.split(':');
    set(region, AWS_ENV.launchTemplate, {
      launchTemplate: {
        ...(ref.startsWith('lt-') ? { id: ref } : { name: ref }),
        ...(version ? { version } : {}),
      },
    });
  }
  for (const [region, value] of perRegion(env, AWS_ENV.keyName, regions))
    set(region, AWS_ENV.keyName, { keyName: value });
  for (const [region, value] of perRegion(env, AWS_ENV.instanceProfile, regions))
    set(region, AWS_ENV.instanceProfile, { instanceProfile: value });
  for (const [region, value] of perRegion(env, AWS_ENV.securityGroups, regions, true))
    set(region, AWS_ENV.securityGroups, {
      securityGroupIds: [...(launchByRegion[region]?.securityGroupIds ?? []), value],
    });
  // Subnets name their zone, and the zone names its region.
  for (const entry of list(env[AWS_ENV.subnets])) {
    const [zone = '', subnet = ''] = entry.split('=');
    const region = regions.find((r) => zone.startsWith(r));
    if (!subnet || !region)
      throw new ValidationError(
        AWS_ENV.subnets,
        `"${entry}" is not <zone of a configured region>=<subnet id>`,
      );
    set(region, AWS_ENV.subnets, {
      subnetIds: { ...(launchByRegion[region]?.subnetIds ?? {}), [zone]: subnet },
    });
  }

  const pollMs = env[AWS_ENV.pollMs];
  if (pollMs !== undefined && !/^\d+$/.test(pollMs))
    throw new ValidationError(AWS_ENV.pollMs, `"${pollMs}" is not a whole number of ms`);
  return {
    regions,
    launchByRegion,
    ...(env[AWS_ENV.brokerId] ? { brokerId: env[AWS_ENV.brokerId] } : {}),
    ...(pollMs ? { pollIntervalMs: Number(pollMs) } : {}),
    ...(env[AWS_ENV.endpoint] ? { endpoint: env[AWS_ENV.endpoint] } : {}),
    ...(env[AWS_ENV.pricingEndpoint] ? { pricingEndpoint: env[AWS_ENV.pricingEndpoint] } : {}),
  };
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** `[region=]value` entries: a bare value applies to every region (`many`: entries add up instead of one each). */
function perRegion(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  regions: readonly string[],
  many = false,
): [string, string][] {
  const out: [string, string][] = [];
  for (const entry of list(env[name])) {
    const at = entry.indexOf('=');
    if (at < 0) for (const region of regions) out.push([region, entry]);
    else out.push([entry.slice(0, at), entry.slice(at + 1)]);
  }
  if (!many) {
    const seen = new Set<string>();
    for (const [region] of out) {
      if (seen.has(region)) throw new ValidationError(name, `gives ${region} two values`);
      seen.add(region);
    }
  }
  return out;
}
