/** A simulated cloud served over real HTTP on 127.0.0.1 passes the Provider contract through RemoteProvider. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { loadCatalog } from '../catalog/load-catalog.ts';
import { describeProviderContract, virtualTime } from '../provider.contract.ts';
import type { ProviderEvent } from '../provider.ts';
import {
  InsufficientCapacityError,
  InvalidRequestError,
  ProviderUnavailableError,
  QuotaExceededError,
} from '../provider-errors.ts';
import { simScenario } from '../sim/scenario.ts';
import { createSimClouds } from '../sim/sim-clouds.ts';
import { SimProvider } from '../sim/sim-provider.ts';
import { serveProviders } from './provider-server.ts';
import { connectRemoteProviders, type RemoteProvider } from './remote-provider.ts';

const catalog = loadCatalog();
const A10G = 'aws/us-east-1/g5.xlarge/on-demand';
const H100 = 'aws/us-east-1/p5.48xlarge/on-demand';

async function remoteAws() {
  const clock = new VirtualClock(Date.UTC(2026, 10, 23));
  const sim = new SimProvider({
    vendor: 'aws',
    clock,
    offerings: catalog,
    scenario: simScenario({
      seed: 3,
      spot: { replay: false },
      settings: {
        aws: {
          throttle: null,
          bootFailureRate: 0,
          zonesPerRegion: 1,
          quotas: [{ gpu: 'H100', capacityType: 'on-demand', maxGpus: 8 }],
        },
      },
      stock: { rules: [{ match: { offeringId: A10G }, onDemandPerZone: 3 }] },
    }),
  });
  const server = await serveProviders([sim]);
  const [provider] = await connectRemoteProviders(server.url);
  const remote = provider as RemoteProvider;
  const time = virtualTime(clock);
  return {
    sim,
    server,
    clock,
    remote,
    // Events cross HTTP after the clock moves: wait until the client has them all.
    waitFor: async (predicate: () => Promise<boolean>, maxMs: number) => {
      await time.waitFor(async () => {
        await remote.sync();
        return predicate();
      }, maxMs);
      await remote.sync();
    },
    elapse: async (ms: number) => {
      await time.elapse(ms);
      await remote.sync();
    },
    dispose: async () => {
      await remote.close();
      await server.close();
      await sim.close();
    },
  };
}

describeProviderContract('remote (sim aws over HTTP)', async () => {
  const h = await remoteAws();
  return {
    provider: h.remote,
    offeringId: A10G,
    capacity: 3,
    waitFor: h.waitFor,
    elapse: h.elapse,
    exceedQuota: () => h.remote.provision({ offeringId: H100, count: 2, idempotencyKey: 'quota' }),
    dispose: h.dispose,
  };
});

describe('remote provider', () => {
  it('carries typed errors with their fields', async () => {
    const h = await remoteAws();
    try {
      const capacity = await h.remote
        .provision({ offeringId: A10G, count: 4, idempotencyKey: 'k1' })
        .catch((e: unknown) => e);
      expect(capacity).toBeInstanceOf(InsufficientCapacityError);
      expect(capacity).toMatchObject({ offeringId: A10G, vendor: 'aws' });
      const quota = await h.remote
        .provision({ offeringId: H100, count: 2, idempotencyKey: 'k2' })
        .catch((e: unknown) => e);
      expect(quota).toBeInstanceOf(QuotaExceededError);
      expect(quota).toMatchObject({ limit: 8, requested: 16 });
      const invalid = await h.remote
        .provision({ offeringId: A10G, count: 1.5, idempotencyKey: 'k3' })
        .catch((e: unknown) => e);
      expect(invalid).toBeInstanceOf(InvalidRequestError);
      expect((invalid as InvalidRequestError).field).toBe('count');
      const malformed = await fetch(`${h.server.url}/v1/aws/provision`, { method: 'POST', body: '{' });
      expect(malformed.status).toBe(422);
      expect(await malformed.json()).toMatchObject({ code: 'invalid_request', field: 'body' });
    } finally {
      await h.dispose();
    }
  });

  it('passes on the quotas the served provider publishes', async () => {
    const h = await remoteAws();
    try {
      const quotas = await h.remote.quotas();
      expect(quotas).toEqual(await h.sim.quotas());
      expect(quotas).toContainEqual({
        region: 'us-east-1',
        gpu: 'H100',
        capacityType: 'on-demand',
        maxGpus: 8,
      });
    } finally {
      await h.dispose();
    }
  });

  it('replays the events it missed while its stream was down', async () => {
    const h = await remoteAws();
    const seen: ProviderEvent[] = [];
    const stop = new AbortController();
    const reading = (async () => {
      for await (const e of h.remote.events({ signal: stop.signal })) seen.push(e);
    })();
    try {
      // Cut every open connection, the event stream included; the client reconnects with its last sequence.
      const [instance] = await h.remote.provision({ offeringId: A10G, count: 1, idempotencyKey: 'r1' });
      await h.remote.sync();
      h.server.dropConnections();
      await h.clock.advanceBy(30 * 60_000);
      await h.remote.sync();
      const states = seen.map((e) => (e.kind === 'state-changed' ? `${e.instanceId} ${e.to}` : e.kind));
      expect(states).toEqual([`${instance?.id} pending`, `${instance?.id} running`]);
      h.server.dropConnections();
      await h.remote.terminate([instance?.id ?? '']);
      await h.clock.advanceBy(30 * 60_000);
      await h.remote.sync();
      expect(seen.map((e) => (e.kind === 'state-changed' ? e.to : e.kind)).slice(2)).toEqual([
        'terminating',
        'terminated',
      ]);
    } finally {
      stop.abort();
      await reading;
      await h.dispose();
    }
  });

  it('tells what happened while the clouds’ process was down, once they are back from their state file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gpubroker-remote-restart-'));
    const clock = new VirtualClock(Date.UTC(2026, 10, 23));
    const open = () =>
      createSimClouds({
        clock,
        offerings: catalog,
        stateFile: join(dir, 'clouds.json'),
        scenario: {
          seed: 5,
          vendors: ['aws'],
          spot: { replay: false },
          settings: {
            aws: {
              throttle: null,
              bootFailureRate: 0,
              provisioningDelay: { 'on-demand': { kind: 'fixed', ms: 60_000 } },
              terminationDelay: { kind: 'fixed', ms: 30_000 },
            },
          },
        },
      });
    let clouds = open();
    let server = await serveProviders(clouds);
    const [remote] = (await connectRemoteProviders(server.url)) as RemoteProvider[];
    const seen: ProviderEvent[] = [];
    const stop = new AbortController();
    const reading = (async () => {
      for await (const e of remote?.events({ signal: stop.signal }) ?? []) seen.push(e);
    })();
    try {
      const launched = (await remote?.provision({ offeringId: A10G, count: 3, idempotencyKey: 'k' })) ?? [];
      const [a, b, c] = launched.map((i) => i.id);
      await remote?.terminate([c ?? '']);
      await remote?.sync();
      // The clouds' process dies; while it is down, the boots finish and the terminated instance ends.
      clouds.writer?.abandon();
      await server.close();
      for (const cloud of clouds) await cloud.close();
      await clock.advanceBy(5 * 60_000);
      clouds = open();
      server = await serveProviders(clouds, { port: Number(new URL(server.url).port) });
      for (let waited = 0; seen.length < 7 && waited < 10_000; waited += 50)
        await new Promise((resolve) => setTimeout(resolve, 50));
      const told = seen.map((e) =>
        e.kind === 'state-changed' ? `${e.instanceId} ${e.from}>${e.to}` : e.kind,
      );
      expect(told.slice(0, 4)).toEqual([
        `${a} null>pending`,
        `${b} null>pending`,
        `${c} null>pending`,
        `${c} pending>terminating`,
      ]);
      expect(told.slice(4).sort()).toEqual(
        [`${a} pending>running`, `${b} pending>running`, `${c} terminating>terminated`].sort(),
      );
      const boot = launched[0]?.launchedAtMs ?? 0;
      expect(seen.slice(4).find((e) => e.kind === 'state-changed' && e.to === 'running')?.atMs).toBe(
        boot + 60_000,
      );
      expect(seen.slice(4).find((e) => e.kind === 'state-changed' && e.to === 'terminated')).toMatchObject({
        atMs: boot + 30_000,
        reason: 'requested',
      });
      // Events of the restarted clouds follow as usual.
      await remote?.terminate([a ?? '']);
      await remote?.sync();
      expect(seen.at(-1)).toMatchObject({ kind: 'state-changed', instanceId: a, to: 'terminating' });
    } finally {
      stop.abort();
      await reading;
      await remote?.close();
      await server.close();
      for (const cloud of clouds) await cloud.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports an unreachable server as ProviderUnavailableError', async () => {
    await expect(connectRemoteProviders('http://127.0.0.1:9')).rejects.toBeInstanceOf(
      ProviderUnavailableError,
    );
  });
});
