/**
 * A broker serves the SDKs from OLDEST_SDK to its own minor version, refuses any other with a 400 naming both
 * versions, and lets requests without the header through.
 */
import { describe, expect, it } from 'vitest';
import { SDK_VERSION_HEADER as SDK_SENDS, SDK_VERSION } from '../../sdk/version.ts';
import type { BrokerCore } from '../broker.ts';
import { createApp } from './app.ts';
import { SDK_VERSION_HEADER, unservedSdk } from './client-version.ts';
import { documentConfig } from './route-docs.ts';

/**
 * Stands in for the broker: every property is another stand-in, callable and truthy (so it leads), and not a
 * promise. The requests here end at the version check or at the token check after it.
 */
function standIn(): BrokerCore {
  const make = (): unknown =>
    new Proxy(() => make(), { get: (_target, key) => (key === 'then' ? undefined : make()) });
  return make() as BrokerCore;
}
const app = createApp(standIn());

describe('SDK version check', () => {
  it('serves an SDK from the oldest served version up to its own minor version', () => {
    for (const sdk of ['0.1.0', '0.1.7', '0.1.2-beta.1'])
      expect(unservedSdk(sdk, '0.1.3', '0.1.0'), sdk).toBeUndefined();
    for (const sdk of ['1.2.0', '1.4.9', '1.0.0'])
      expect(unservedSdk(sdk, '1.4.1', '1.0.0'), sdk).toBeUndefined();
  });

  it('names both versions and what to upgrade for a client too old or too new', () => {
    expect(unservedSdk('0.0.9', '0.1.0', '0.1.0')).toBe(
      '@gpubroker/sdk 0.0.9 is too old: this broker (0.1.0) serves @gpubroker/sdk 0.1.0 to 0.1.x; upgrade the SDK (npm install @gpubroker/sdk@0.1)',
    );
    expect(unservedSdk('0.2.0', '0.1.4', '0.1.0')).toBe(
      '@gpubroker/sdk 0.2.0 is too new: this broker (0.1.4) serves @gpubroker/sdk 0.1.0 to 0.1.x; upgrade the broker, or install @gpubroker/sdk@0.1',
    );
    expect(unservedSdk('2.0.0', '1.9.0', '1.0.0')).toMatch(/too new/);
    expect(unservedSdk('latest', '0.1.0', '0.1.0')).toBe(
      'x-gpubroker-sdk: "latest" is not a version like 0.1.0',
    );
  });

  it('serves this SDK: the header it sends and its version', () => {
    expect(SDK_SENDS).toBe(SDK_VERSION_HEADER);
    expect(unservedSdk(SDK_VERSION, documentConfig.info.version)).toBeUndefined();
  });

  it('answers an unserved SDK with a 400 problem before the token is checked', async () => {
    const response = await app.request('/v1/leases', { headers: { [SDK_VERSION_HEADER]: '9.0.0' } });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    const problem = (await response.json()) as { title: string; detail: string; field: string };
    expect(problem.title).toBe('Unsupported SDK version');
    expect(problem.field).toBe(SDK_VERSION_HEADER);
    expect(problem.detail).toContain('@gpubroker/sdk 9.0.0 is too new');
    expect(problem.detail).toContain(`this broker (${documentConfig.info.version})`);
  });

  it('lets a request without the header, or with a served version, through to the next check', async () => {
    for (const headers of [{}, { [SDK_VERSION_HEADER]: SDK_VERSION }] as Record<string, string>[]) {
      const response = await app.request('/v1/leases', { headers });
      expect(response.status).toBe(401);
    }
  });
});
