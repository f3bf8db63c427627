/**
 * The SDK names its version in a header (`x-gpubroker-sdk: 0.1.0`). A broker serves the SDKs from OLDEST_SDK up to
 * its own minor version (0.1.0 to 0.1.x for a 0.1.0 broker); it answers any other with a 400 naming both versions
 * and what to upgrade, instead of failing later on a route or a field one side does not know. Requests without
 * the header (curl, other clients) pass.
 */
import type { MiddlewareHandler } from 'hono';
import { HttpProblem } from './problem.ts';
import { documentConfig } from './route-docs.ts';

export const SDK_VERSION_HEADER = 'x-gpubroker-sdk';

/** The oldest SDK whose requests this broker still understands. */
export const OLDEST_SDK = '0.1.0';

type Version = readonly [major: number, minor: number, patch: number];

/** `1.2.3` (a pre-release or build suffix is ignored) as numbers, or undefined when it is not a version. */
function parse(text: string): Version | undefined {
  const match = /^(\d{1,9})\.(\d{1,9})\.(\d{1,9})(?:[-+][0-9A-Za-z.+-]*)?$/.exec(text);
  return match ? [Number(match[1]), Number(match[2]), Number(match[3])] : undefined;
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Why the broker at `brokerVersion` cannot serve an SDK at `sdkVersion`, or undefined when it can. */
export function unservedSdk(
  sdkVersion: string,
  brokerVersion: string,
  oldest: string = OLDEST_SDK,
): string | undefined {
  const sdk = parse(sdkVersion);
  const broker = parse(brokerVersion);
  const floor = parse(oldest);
  if (!broker || !floor) throw new Error(`broker version ${brokerVersion} or ${oldest} is not a version`);
  if (!sdk) return `${SDK_VERSION_HEADER}: "${sdkVersion.slice(0, 40)}" is not a version like ${oldest}`;
  const served = `this broker (${brokerVersion}) serves @gpubroker/sdk ${oldest} to ${broker[0]}.${broker[1]}.x`;
  if (compare(sdk, floor) < 0)
    return `@gpubroker/sdk ${sdkVersion} is too old: ${served}; upgrade the SDK (npm install @gpubroker/sdk@${broker[0]}.${broker[1]})`;
  if (compare([sdk[0], sdk[1], 0], [broker[0], broker[1], 0]) > 0)
    return `@gpubroker/sdk ${sdkVersion} is too new: ${served}; upgrade the broker, or install @gpubroker/sdk@${broker[0]}.${broker[1]}`;
  return undefined;
}

/** Refuses an SDK this broker cannot serve (400, field `x-gpubroker-sdk`); the version is the API document's. */
export function clientVersion(brokerVersion: string = documentConfig.info.version): MiddlewareHandler {
  return async (c, next) => {
    const sdkVersion = c.req.header(SDK_VERSION_HEADER);
    const why = sdkVersion === undefined ? undefined : unservedSdk(sdkVersion, brokerVersion);
    if (why) throw new HttpProblem(400, 'Unsupported SDK version', why, SDK_VERSION_HEADER);
    await next();
  };
}
