/**
 * Billing over real HTTP against the broker in this process: PGlite in memory, simulated AWS on a virtual clock
 * (ticks run by hand, boots and meter heartbeats happen when the clock is moved). A tenant's lease is served from
 * the warm buffer and metered while ready; usage, invoices, costs, the price book and spend limits are read and set
 * through the API, and late usage is injected straight into the meter's store.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { simScenario } from '../../providers/sim/scenario.ts';
import { type UsageEvent, usageEventId } from '../../runtime/meter/usage-event.ts';
import { quietAwsScenario } from '../../test/fast-aws.ts';
import type { Lease } from '../api/schemas.ts';
import { type RunningServer, startServer } from '../server.ts';

/** Half an hour before the end of November 2026 (UTC), so that a test can close the month. */
const START = Date.UTC(2026, 10, 30, 23, 30);
const DECEMBER = Date.UTC(2026, 11, 1);
const BOOT_MS = 90_000;
const HEARTBEAT_MS = 5_000;
/** Micro-USD per H100-second, set explicitly so that every amount is known. */
const H100_RATE = 1_000;
const H100_POLICY = {
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1'], deny: [] },
};

let server: RunningServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

interface Answer {
  readonly status: number;
  readonly type: string;
  // biome-ignore lint/suspicious/noExplicitAny: answers are checked field by field.
  readonly body: any;
}

/**
 * A broker whose buffer holds one booted 8 × H100 node, the price book at H100_RATE, an operator and two tenants,
 * and alice's 8-GPU lease ready on that node.
 */
async function brokerWithServedLease() {
  const clock = new VirtualClock(START);
  server = await startServer({
    port: 0,
    clock,
    seed: 7,
    schedule: false,
    // No test here runs a container: the local agent host (a child process per broker) would only join and idle;
    // with it, the file took 23 s, without 9 s. Leases and metering do not wait on agents.
    agentHost: false,
    meterHeartbeatMs: HEARTBEAT_MS,
    scenario: simScenario({
      ...quietAwsScenario(7, BOOT_MS),
      stock: {
        onDemandPerZone: 16,
        spotPerZone: 16,
        rules: [{ match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 }],
      },
    }),
  });
  const { broker, url } = server;
  const operator = (await broker.tokens.create('ops', 'operator')).token;
  const alice = (await broker.tokens.create('alice', 'tenant')).token;
  const bob = (await broker.tokens.create('bob', 'tenant')).token;
  const call = async (method: string, path: string, token: string, body?: unknown): Promise<Answer> => {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return {
      status: response.status,
      type: response.headers.get('content-type') ?? '',
      body: text ? JSON.parse(text) : undefined,
    };
  };
  /** Moves virtual time (timers fire: boots, heartbeats) and lets the broker finish what they started. */
  const advance = async (ms: number) => {
    await clock.advanceBy(ms);
    await settle();
  };
  expect(
    (await call('PUT', '/v1/prices', operator, { gpuMicrosPerSecond: { H100: H100_RATE } })).status,
  ).toBe(200);
  expect((await call('PUT', '/v1/policy', operator, H100_POLICY)).status).toBe(200);
  expect((await broker.loop.tick()).provisioned).toBe(1);
  await advance(BOOT_MS);
  const created = await call('POST', '/v1/leases', alice, {
    gpu: 'H100',
    count: 8,
    placement: 'single-node',
  });
  expect(created.status).toBe(201);
  const lease = created.body as Lease;
  expect(lease.status).toBe('ready');
  return { clock, broker, call, advance, operator, alice, bob, lease };
}

/** Lets in-flight handlers (database writes started by timers) finish in real time. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setTimeout(resolve, 5));
}

/** The meter's events for one finished interval, as if a meter had sent them. */
function intervalEvents(
  tenantId: string,
  id: string,
  gpus: number,
  startMs: number,
  endMs: number,
): UsageEvent[] {
  const facts = {
    intervalId: id,
    tenantId,
    kind: 'lease' as const,
    subject: id,
    gpu: 'H100',
    gpus,
    vendor: 'aws',
    region: 'us-east-1',
    capacityType: 'on-demand',
    startMs,
  };
  return [
    { ...facts, id: usageEventId(id, 'start', startMs), type: 'start', atMs: startMs },
    { ...facts, id: usageEventId(id, 'stop', endMs), type: 'stop', atMs: endMs },
  ];
}

describe('billing API', () => {
  it('bills a lease exactly ceil(ready → released seconds) × GPUs × rate, and only to its tenant', async () => {
    const { call, advance, operator, alice, bob, lease } = await brokerWithServedLease();
    // Ten minutes and a half second: the heartbeat checkpoints the open interval every 5 s.
    await advance(600_500);
    const open = await call('GET', '/v1/usage?groupBy=lease', alice);
    expect(open.body.rows).toEqual([
      { tenant: 'alice', key: lease.id, seconds: 600, gpuSeconds: 4_800, amountMicroUsd: 4_800 * H100_RATE },
    ]);

    const released = (await call('DELETE', `/v1/leases/${lease.id}`, alice)).body as Lease;
    expect(released.status).toBe('released');
    const seconds = Math.ceil(((released.endedAtMs ?? 0) - (lease.readyAtMs ?? 0)) / 1000);
    expect(seconds).toBe(601);
    const gpuSeconds = seconds * 8;
    const amountMicroUsd = gpuSeconds * H100_RATE;

    const row = { tenant: 'alice', seconds, gpuSeconds, amountMicroUsd };
    for (const [groupBy, rows] of [
      ['gpu', [{ ...row, key: 'H100' }]],
      ['lease', [{ ...row, key: lease.id }]],
      ['day', [{ ...row, key: '2026-11-30' }]],
      ['function', []],
    ] as const) {
      const usage = await call('GET', `/v1/usage?groupBy=${groupBy}`, alice);
      expect(usage.status, groupBy).toBe(200);
      expect(usage.body, groupBy).toMatchObject({
        groupBy,
        rows,
        totalGpuSeconds: rows.length > 0 ? gpuSeconds : 0,
        totalMicroUsd: rows.length > 0 ? amountMicroUsd : 0,
      });
    }
    const invoices = await call('GET', '/v1/invoices/2026-11', alice);
    expect(invoices.body.invoices).toEqual([
      {
        tenant: 'alice',
        month: '2026-11',
        status: 'open',
        priceBookVersion: 1,
        lines: [
          {
            gpu: 'H100',
            lease: lease.id,
            seconds,
            gpuSeconds,
            coreSeconds: 0,
            mibSeconds: 0,
            rateMicroUsd: H100_RATE,
            amountMicroUsd,
          },
        ],
        totalMicroUsd: amountMicroUsd,
      },
    ]);

    // Bob sees none of it, and may not ask for alice's.
    const bobUsage = await call('GET', '/v1/usage', bob);
    expect(bobUsage.body).toMatchObject({ rows: [], totalGpuSeconds: 0, totalMicroUsd: 0 });
    for (const path of [
      '/v1/usage?tenant=alice',
      '/v1/invoices?tenant=alice',
      '/v1/invoices/2026-11?tenant=alice',
    ]) {
      const forbidden = await call('GET', path, bob);
      expect(forbidden.status, path).toBe(403);
      expect(forbidden.type).toContain('application/problem+json');
      expect(forbidden.body.field).toBe('tenant');
    }
    const bobInvoices = [
      ...(await call('GET', '/v1/invoices/2026-11', bob)).body.invoices,
      ...(await call('GET', '/v1/invoices', bob)).body.invoices,
    ];
    expect(bobInvoices.length).toBeGreaterThan(0);
    expect(bobInvoices.every((i: { tenant: string; totalMicroUsd: number }) => i.tenant === 'bob')).toBe(
      true,
    );
    expect(bobInvoices.every((i: { lines: unknown[] }) => i.lines.length === 0)).toBe(true);
    expect((await call('GET', '/v1/usage?tenant=bob', bob)).status).toBe(200);

    // Operators see every tenant, or the one they name.
    const all = await call('GET', '/v1/invoices/2026-11', operator);
    expect(all.body.invoices.map((i: { tenant: string }) => i.tenant).sort()).toEqual([
      'alice',
      'bob',
      'ops',
    ]);
    expect((await call('GET', '/v1/usage', operator)).body.rows).toEqual([{ ...row, key: 'H100' }]);
    const onlyBob = await call('GET', '/v1/invoices/2026-11?tenant=bob', operator);
    expect(onlyBob.body.invoices.map((i: { tenant: string }) => i.tenant)).toEqual(['bob']);
    expect((await call('GET', '/v1/usage?tenant=nobody', operator)).status).toBe(404);
  });

  it('closes only ended months; a closed invoice stays frozen and late usage is billed once on the next month', async () => {
    const { clock, broker, call, advance, operator, alice, lease } = await brokerWithServedLease();
    await advance(60_000);
    await call('DELETE', `/v1/leases/${lease.id}`, alice);

    const early = await call('POST', '/v1/invoices/2026-11/close', operator);
    expect(early.status).toBe(400);
    expect(early.type).toContain('application/problem+json');
    expect(early.body.field).toBe('month');
    expect((await call('GET', '/v1/invoices/2026-11', alice)).body.invoices[0].status).toBe('open');

    await advance(DECEMBER + 1_000 - clock.now());
    expect((await call('POST', '/v1/invoices/2026-11/close', alice)).status).toBe(403);
    // A new price book after the month ended: the month is still billed at the rate in force at its end.
    expect(
      (await call('PUT', '/v1/prices', operator, { gpuMicrosPerSecond: { H100: 2 * H100_RATE } })).status,
    ).toBe(200);
    const closed = await call('POST', '/v1/invoices/2026-11/close', operator);
    expect(closed.status).toBe(200);
    expect(closed.body.invoices.every((i: { status: string }) => i.status === 'closed')).toBe(true);
    const [november] = (await call('GET', '/v1/invoices/2026-11', alice)).body.invoices;
    expect(november).toMatchObject({
      status: 'closed',
      priceBookVersion: 1,
      totalMicroUsd: 60 * 8 * H100_RATE,
    });

    // Late usage for November: November does not change (closing again neither); December bills it once.
    const aliceId = (await broker.tokens.authenticate(alice))?.tenantId ?? '';
    await broker.usage.ingest(intervalEvents(aliceId, 'late-1', 3, DECEMBER - 20_000, DECEMBER - 10_000));
    await call('POST', '/v1/invoices/2026-11/close', operator);
    expect((await call('GET', '/v1/invoices/2026-11', alice)).body.invoices).toEqual([november]);
    const [december] = (await call('GET', '/v1/invoices/2026-12', alice)).body.invoices;
    expect(december.lines).toEqual([
      {
        gpu: 'H100',
        lease: 'late-1',
        seconds: 10,
        gpuSeconds: 30,
        coreSeconds: 0,
        mibSeconds: 0,
        rateMicroUsd: H100_RATE,
        amountMicroUsd: 30 * H100_RATE,
        lateFrom: '2026-11',
      },
    ]);
    expect(december.totalMicroUsd).toBe(30 * H100_RATE);
    const list = (await call('GET', '/v1/invoices', alice)).body.invoices;
    expect(list.map((i: { month: string; status: string }) => [i.month, i.status])).toEqual([
      ['2026-12', 'open'],
      ['2026-11', 'closed'],
    ]);
  });

  it('rejects bad parameters with problem+json naming the field, and writes nothing', async () => {
    const { call, operator, alice } = await brokerWithServedLease();
    const cases: [string, string, string, unknown?][] = [
      ['GET', '/v1/usage?from=yesterday', 'from'],
      ['GET', '/v1/usage?to=2026-11-31T99:00:00Z', 'to'],
      ['GET', '/v1/usage?groupBy=tenant', 'groupBy'],
      ['GET', '/v1/usage?from=2026-11-30&to=2026-11-30', 'from'],
      ['GET', '/v1/usage?from=2026-11-30&to=2026-11-01', 'from'],
      ['GET', '/v1/invoices/2026-13', 'month'],
      ['GET', '/v1/invoices/november', 'month'],
      ['POST', '/v1/invoices/2026-13/close', 'month'],
      ['GET', '/v1/costs?from=2026-12-01&to=2026-11-01', 'from'],
      ['PUT', '/v1/prices', 'priceBook.markup', { markup: -1 }],
      ['PUT', '/v1/prices', 'priceBook.gpuMicrosPerSecond.H100', { gpuMicrosPerSecond: { H100: 0.5 } }],
      ['PUT', '/v1/prices', 'priceBook.rate', { rate: 3 }],
      ['PUT', '/v1/tenants/alice/limits', 'spendLimitUsdPerHour', { spendLimitUsdPerHour: -1 }],
      // Below one micro-USD a limit would be stored as 0 (found by the API fuzz).
      ['PUT', '/v1/tenants/alice/limits', 'spendLimitUsdPerMonth', { spendLimitUsdPerMonth: 1e-7 }],
      ['PUT', '/v1/tenants/alice/limits', 'onSpendLimit', { onSpendLimit: 'pause' }],
    ];
    for (const [method, path, field, body] of cases) {
      const answer = await call(method, path, operator, body);
      expect(answer.status, path).toBe(400);
      expect(answer.type, path).toContain('application/problem+json');
      expect(answer.body.field, `${path} ${JSON.stringify(body)}`).toBe(field);
    }
    // No Content-Type and no body is not `{}`: it would have reset the price book (found by the API fuzz).
    for (const path of ['/v1/prices', '/v1/tenants/alice/limits']) {
      const response = await fetch(`${server?.url}${path}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${operator}` },
      });
      expect(response.status, path).toBe(415);
      expect(response.headers.get('content-type'), path).toContain('application/problem+json');
      expect(((await response.json()) as { field?: string }).field, path).toBe('body');
    }
    expect((await call('GET', '/v1/prices/history', operator)).body.versions).toHaveLength(1);
    expect((await call('PUT', '/v1/tenants/alice/limits', operator, {})).body).toEqual({
      gpuQuota: null,
      spendLimitUsdPerHour: null,
      spendLimitUsdPerMonth: null,
      onSpendLimit: 'continue',
    });
    expect((await call('GET', '/v1/invoices/2026-11', alice)).body.invoices[0].status).toBe('open');
    // Tenants may not set prices, limits or read costs.
    for (const [method, path, body] of [
      ['PUT', '/v1/prices', {}],
      ['PUT', '/v1/tenants/alice/limits', { gpuQuota: 1000 }],
      ['GET', '/v1/costs', undefined],
      ['GET', '/v1/prices/history', undefined],
    ] as const)
      expect((await call(method, path, alice, body)).status, path).toBe(403);
  });

  it('refuses new leases at a spend limit with 402, and releases running ones when the tenant says stop', async () => {
    const { broker, call, advance, operator, alice, bob, lease } = await brokerWithServedLease();
    const limits = await call('PUT', '/v1/tenants/alice/limits', operator, { spendLimitUsdPerHour: 0.5 });
    expect(limits.body).toEqual({
      gpuQuota: null,
      spendLimitUsdPerHour: 0.5,
      spendLimitUsdPerMonth: null,
      onSpendLimit: 'continue',
    });
    // 8 GPUs at $0.001 per GPU-second: $0.50 after 62.5 s.
    await advance(60_000);
    expect((await call('POST', '/v1/leases', alice, { gpu: 'H100', count: 1 })).status).toBe(201);
    await advance(10_000);
    const refused = await call('POST', '/v1/leases', alice, { gpu: 'H100', count: 1 });
    expect(refused.status).toBe(402);
    expect(refused.type).toContain('application/problem+json');
    expect(refused.body.detail).toMatch(/spend limit reached: \$0\.5\d in the last hour, limit \$0\.50/);
    expect((await call('POST', '/v1/leases', bob, { gpu: 'H100', count: 1 })).status).toBe(201);

    // `continue`: what runs keeps running.
    await broker.loop.tick();
    expect((await call('GET', `/v1/leases/${lease.id}`, alice)).body.status).toBe('ready');

    await call('PUT', '/v1/tenants/alice/limits', operator, { onSpendLimit: 'stop' });
    await broker.loop.tick();
    const stopped = (await call('GET', `/v1/leases/${lease.id}`, alice)).body as Lease;
    expect(stopped.status).toBe('released');
    expect(stopped.reason).toMatch(/^spend limit reached/);
    const usage = await call('GET', '/v1/usage', alice);
    const seconds = Math.ceil(((stopped.endedAtMs ?? 0) - (lease.readyAtMs ?? 0)) / 1000);
    expect(usage.body.totalGpuSeconds).toBe(seconds * 8);

    // Removing the limit lets alice lease again.
    await call('PUT', '/v1/tenants/alice/limits', operator, { spendLimitUsdPerHour: null });
    expect((await call('POST', '/v1/leases', alice, { gpu: 'H100', count: 1 })).status).toBe(201);
  });

  it('reports costs per GPU type: utilisation between 0 and 1, provisioned ≥ billed GPU-seconds', async () => {
    const { call, advance, operator, alice, lease } = await brokerWithServedLease();
    await advance(120_000);
    await call('DELETE', `/v1/leases/${lease.id}`, alice);
    await advance(30_000);
    const costs = await call('GET', '/v1/costs', operator);
    expect(costs.status).toBe(200);
    const [h100, ...others] = costs.body.byGpu;
    expect(others).toEqual([]);
    expect(h100).toMatchObject({
      gpu: 'H100',
      billedGpuSeconds: 120 * 8,
      revenueMicroUsd: 120 * 8 * H100_RATE,
    });
    // The node was bought at START and has run since, booting included.
    expect(h100.provisionedGpuSeconds).toBe((8 * (BOOT_MS + 150_000)) / 1000);
    expect(h100.provisionedGpuSeconds).toBeGreaterThanOrEqual(h100.billedGpuSeconds);
    expect(h100.utilization).toBeGreaterThan(0);
    expect(h100.utilization).toBeLessThanOrEqual(1);
    expect(h100.costMicroUsd).toBeGreaterThan(0);
    expect(h100.marginMicroUsd).toBe(h100.revenueMicroUsd - h100.costMicroUsd);
    const { gpu: _gpu, ...total } = h100;
    expect(costs.body.total).toEqual(total);
  });
});
