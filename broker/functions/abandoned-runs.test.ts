/**
 * Apps across a restart: deployed apps come back; an ephemeral one (a `gpubroker run`) comes back while it may still
 * be running (touched within the hour, or with calls left to finish), and goes once its run was abandoned.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { Broker } from '../../sdk/index.ts';
import { type RunningServer, startServer } from '../server.ts';

const START = Date.UTC(2026, 11, 7);
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-abandoned-'));
let server: RunningServer | undefined;
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const start = (clock: VirtualClock) =>
  startServer({ port: 0, dataDir: join(dir, 'data'), clock, seed: 1, schedule: false, agentHost: false });

describe('apps after a restart', () => {
  it('keep deployed apps and live runs, and drop runs abandoned for an hour with nothing left to finish', async () => {
    server = await start(new VirtualClock(START));
    const broker = new Broker({ url: server.url, token: server.operatorToken as string });
    const code = new TextEncoder().encode('export const f = () => 1;\n');
    const bundleId = createHash('sha256').update(code).digest('hex');
    await fetch(`${server.url}/v1/bundles/${bundleId}`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${server.operatorToken}` },
      body: code,
    });
    const deploy = (name: string, ephemeral: boolean) =>
      broker.call('PUT', `/v1/apps/${name}`, { bundleId, functions: { f: { gpu: 'H100' } }, ephemeral });
    await deploy('kept', false);
    await deploy('abandoned', true);
    await deploy('waiting', true);
    // A call nobody can run yet (no capacity): the run is still waiting for it.
    await broker.call('POST', '/v1/apps/waiting/functions/f/calls', { inputs: [[1]] });
    await server.close();

    // Two hours later.
    server = await start(new VirtualClock(START + 2 * 3_600_000));
    const after = new Broker({ url: server.url, token: server.operatorToken as string });
    const names = (await after.call<{ apps: { name: string }[] }>('GET', '/v1/apps')).apps
      .map((a) => a.name)
      .sort();
    expect(names).toEqual(['kept', 'waiting']);
  });
});
