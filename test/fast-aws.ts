/** Fixtures of the broker tests: simulated AWS on fixed boot times, and a policy that ticks every second. */
import type { SimScenarioInput, VendorSettingsInput } from '../providers/sim/scenario.ts';

/** Ticks every second; an 8-GPU H100 warm buffer on AWS us-east-1, on-demand only. */
export const FAST_POLICY = {
  planSchedule: '* * * * * *',
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1'], deny: [] },
};

/** AWS only, 8-GPU H100 nodes only (no p5.4xlarge stock), a fixed 2 s boot, no throttling or boot failures. */
export const FAST_AWS_SCENARIO = {
  ...quietAwsScenario(5, 2000, { terminationDelay: { kind: 'fixed', ms: 200 } }),
  stock: { onDemandPerZone: 16, rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }] },
};

/** Polls `probe` every 100 ms until it returns something other than undefined. */
export async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  maxMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + maxMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The simulated clouds' inventory for one vendor, straight from a provider server. */
export async function cloudInventory<T>(
  cloudsUrl: string,
  includeTerminated = false,
  vendor = 'aws',
): Promise<T[]> {
  const response = await fetch(`${cloudsUrl}/v1/${vendor}/list`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ includeTerminated }),
  });
  return (await response.json()) as T[];
}

/**
 * A quiet simulated AWS for tests on a virtual clock: no spot replay, no throttling, no boot failures, a fixed
 * on-demand boot of `bootMs`. `aws` adds vendor settings (quotas, zones).
 */
export function quietAwsScenario(
  seed: number,
  bootMs: number,
  aws: VendorSettingsInput = {},
): SimScenarioInput & { settings: Record<string, VendorSettingsInput> } {
  return {
    seed,
    vendors: ['aws'],
    spot: { replay: false },
    settings: {
      aws: {
        throttle: null,
        bootFailureRate: 0,
        provisioningDelay: { 'on-demand': { kind: 'fixed', ms: bootMs } },
        ...aws,
      },
    },
  };
}
