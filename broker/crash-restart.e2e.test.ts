/**
 * Crash and restart with a real process: simulated clouds served over HTTP from this process (as `gpubroker clouds
 * serve` serves them), a broker (`gpubroker serve`, a child process) on PGlite killed with SIGKILL while it
 * provisions, then restarted on the same data directory.
 * Leases and instances come back from the database and the clouds' inventory; nothing is provisioned twice; an
 * instance carrying our fleet tag that no action of ours created is terminated as an orphan.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RealClock } from '../lib/clock.ts';
import type { Instance } from '../providers/provider.ts';
import { type ProviderServer, serveProviders } from '../providers/remote/provider-server.ts';
import { createSimClouds } from '../providers/sim/sim-clouds.ts';
import { usageIntervals } from '../runtime/meter/schema.ts';
import { Broker } from '../sdk/broker-client.ts';
import { type CliProcess, startCli, stopCli } from '../test/cli-process.ts';
import { cloudInventory, FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { ACTION_TAG, FLEET_TAG } from './act.ts';
import type { Lease } from './api/schemas.ts';
import { openDatabase } from './db/open-database.ts';
import { instances as instancesTable } from './db/schema.ts';

const HEARTBEAT_MS = 500;
/**
 * Bounds on each wait, generous: three processes start and provision side by side with whatever else the machine
 * runs. Every wait ends on the event it waits for, not on the clock.
 */
const WAIT_MS = 90_000;

/** Resolves once the broker at `url` has reported `ticks` new ticks (its /healthz `lastTickAtMs` moved). */
async function ticksPassed(url: string, ticks: number): Promise<void> {
  const seen = new Set<number>();
  const lastTick = async () =>
    ((await fetch(`${url}/healthz`).then((r) => r.json())) as { lastTickAtMs: number | null }).lastTickAtMs;
  const first = await lastTick();
  await until(
    `${ticks} ticks`,
    async () => {
      const at = await lastTick();
      if (at !== null && at !== first) seen.add(at);
      return seen.size >= ticks ? true : undefined;
    },
    WAIT_MS,
  );
}

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-crash-'));
const running: CliProcess[] = [];
const cloudProviders = createSimClouds({ clock: new RealClock(), scenario: FAST_AWS_SCENARIO });
let cloudsServer: ProviderServer | undefined;
afterAll(async () => {
  for (const process of running) await stopCli(process, 'SIGKILL');
  await cloudsServer?.close();
  for (const provider of cloudProviders) await provider.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('crash and restart', () => {
  it('recovers leases and instances, provisions nothing twice and terminates orphans', async () => {
    cloudsServer = await serveProviders(cloudProviders);
    const clouds = cloudsServer;
    const inventory = (includeTerminated = false) => cloudInventory<Instance>(clouds.url, includeTerminated);
    const dataDir = join(dir, 'data');
    const serveArgs = [
      'serve',
      '--port',
      '0',
      '--data-dir',
      dataDir,
      '--providers',
      clouds.url,
      '--meter-heartbeat',
      `${HEARTBEAT_MS}ms`,
    ];

    const first = await startCli(serveArgs);
    running.push(first);
    const token = readFileSync(join(dataDir, 'operator-token'), 'utf8').trim();
    let sdk = new Broker({ url: first.url, token });
    await sdk.call('PUT', '/v1/policy', FAST_POLICY);
    const ready = await sdk.gpus.request(
      { gpu: 'H100', count: 8, placement: 'single-node' },
      { timeoutMs: WAIT_MS, pollMs: 100 },
    );
    expect(ready.status).toBe('ready');

    // A second lease beyond the buffer: the broker provisions; kill it while an instance is still booting.
    const waiting = await sdk.call<Lease>('POST', '/v1/leases', {
      gpu: 'H100',
      count: 8,
      placement: 'single-node',
      idempotencyKey: 'second',
    });
    const booting = await until(
      'a new instance booting',
      async () => ((await inventory()).some((i) => i.state === 'pending') ? true : undefined),
      WAIT_MS,
    );
    expect(booting).toBe(true);
    const killedAfter = Date.now();
    await stopCli(first, 'SIGKILL');
    const killedBefore = Date.now();

    // While it is down: an instance carrying our fleet tag that none of our actions created.
    const before = await inventory();
    const fleetId = before[0]?.tags[FLEET_TAG];
    expect(fleetId).toBeTruthy();
    const orphanResponse = await fetch(`${clouds.url}/v1/aws/provision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        offeringId: before[0]?.offeringId,
        count: 1,
        idempotencyKey: 'orphan',
        tags: { [FLEET_TAG]: fleetId, [ACTION_TAG]: 'never-recorded' },
      }),
    });
    const [orphan] = (await orphanResponse.json()) as Instance[];

    const restartedAfter = Date.now();
    const second = await startCli(serveArgs);
    const restartedBefore = Date.now();
    running.push(second);
    sdk = new Broker({ url: second.url, token });
    const served = await until(
      'the second lease to be ready',
      async () => {
        const lease = await sdk.leases.get(waiting.id);
        return lease.status === 'ready' ? lease : undefined;
      },
      WAIT_MS,
    );
    expect(served.allocations.map((a) => a.gpuIndices.length)).toEqual([8]);
    const recovered = await sdk.leases.get(ready.id);
    expect(recovered.status).toBe('ready');
    // The same GPUs of the same instance (the machine's address shows only while its agent is connected).
    expect(recovered.allocations.map(withoutAddress)).toEqual(ready.allocations.map(withoutAddress));
    // The restart does not put the same 8 GPUs under two leases.
    expect(served.allocations[0]?.instanceId).not.toBe(ready.allocations[0]?.instanceId);

    // Let a few ticks pass (counted, however long they take), then compare the clouds with what the broker knows.
    await ticksPassed(second.url, 3);
    const orphanEnded = (instances: Instance[]) => {
      const state = instances.find((i) => i.id === orphan?.id)?.state;
      return state === 'terminating' || state === 'terminated';
    };
    const everything = await inventory(true);
    expect(orphanEnded(everything)).toBe(true);
    const ours = everything.filter((i) => i.id !== orphan?.id);
    // Everything alive before the crash is still alive (adopted, not replaced) and nothing else was launched:
    // 2 leases × 8 GPUs + a buffer of 8 GPUs = 3 nodes of 8.
    for (const instance of before)
      expect(ours.find((i) => i.id === instance.id)?.state).toMatch(/pending|running/);
    expect(ours.filter((i) => i.state !== 'terminated')).toHaveLength(3);
    expect(ours).toHaveLength(3);
    expect(new Set(ours.map((i) => i.idempotencyKey)).size).toBeLessThanOrEqual(3);

    const stoppedAfter = Date.now();
    expect(await stopCli(second)).toBe(0);
    const stoppedBefore = Date.now();
    const database = await openDatabase({ dataDir });
    try {
      const rows = await database.db.select().from(instancesTable);
      const live = rows.filter((r) => r.state !== 'terminated').map((r) => r.id);
      expect(live.sort()).toEqual(ours.map((i) => i.id).sort());

      // Billing across the crash: the first lease ran before the kill and after the restart. Its interval from
      // before was closed at its last checkpoint (at most one heartbeat before the kill), the one after the
      // restart at the clean stop; the time the broker was down is not billed, and nothing twice.
      const intervals = (await database.db.select().from(usageIntervals))
        .filter((u) => u.subject === ready.id)
        .sort((a, b) => a.startMs - b.startMs);
      expect(intervals.map((u) => u.endedBy)).toEqual(['recovered', 'stopped']);
      const [crashed, resumed] = intervals as [(typeof intervals)[0], (typeof intervals)[0]];
      expect(crashed.startMs).toBe(ready.readyAtMs);
      expect(crashed.endMs).toBeLessThanOrEqual(killedBefore);
      expect(crashed.endMs).toBeGreaterThanOrEqual(killedAfter - HEARTBEAT_MS - 1000);
      expect(resumed.startMs).toBeGreaterThanOrEqual(restartedAfter);
      expect(resumed.startMs).toBeLessThanOrEqual(restartedBefore);
      expect(resumed.endMs).toBeGreaterThanOrEqual(stoppedAfter);
      expect(resumed.endMs).toBeLessThanOrEqual(stoppedBefore);
      expect(crashed.endMs ?? 0).toBeLessThanOrEqual(resumed.startMs);
      for (const u of intervals) expect(u.gpus).toBe(8);
    } finally {
      await database.close();
    }
  }, 240_000);
});

function withoutAddress<T extends { address?: string }>({ address: _address, ...allocation }: T) {
  return allocation;
}
