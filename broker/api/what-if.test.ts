/**
 * `POST /v1/plans/what-if` and `GET /v1/plans/buffer-curve` on a real broker: PGlite, real HTTP on 127.0.0.1,
 * simulated AWS on a virtual clock (ticks by hand, boots when the clock moves). One broker for the file: each test
 * reads what the others leave (a what-if leaves nothing, which is what they check).
 */
import { count } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { simScenario } from '../../providers/sim/scenario.ts';
import { FAST_AWS_SCENARIO, quietAwsScenario } from '../../test/fast-aws.ts';
import { actions, plans } from '../db/schema.ts';
import { type RunningServer, startServer } from '../server.ts';

const BOOT_MS = 90_000;
/** An 8-GPU H100 buffer on AWS in two US regions, on-demand only. */
const POLICY = {
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
  spotMaxShare: 0,
  provisioningMinutes: 3,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1', 'us-east-2'], deny: [] },
};

let server: RunningServer;
let clock: VirtualClock;
let operator: string;
let tenant: string;

beforeAll(async () => {
  clock = new VirtualClock(Date.UTC(2026, 10, 23));
  server = await startServer({
    port: 0,
    clock,
    seed: 7,
    schedule: false,
    agentHost: false,
    // Quiet AWS booting in BOOT_MS, 8-GPU H100 nodes only.
    scenario: simScenario({ ...quietAwsScenario(7, BOOT_MS), stock: FAST_AWS_SCENARIO.stock }),
  });
  operator = (await server.broker.tokens.create('ops', 'operator')).token;
  tenant = (await server.broker.tokens.create('alice', 'tenant')).token;
  await server.broker.setPolicy(POLICY, 'test');
  await server.broker.loop.tick();
  await clock.advanceBy(BOOT_MS);
  await settle();
});

afterAll(async () => {
  await server?.close();
});

/** Lets in-flight event handlers (database writes) finish in real time. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((resolve) => setTimeout(resolve, 5));
}

async function call(method: string, path: string, body?: unknown, token = operator) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    // biome-ignore lint/suspicious/noExplicitAny: a test reads the JSON answers field by field
    body: (text ? JSON.parse(text) : undefined) as any,
  };
}

/** Plan rows, action rows, the fleet's pools and the policy version: what a what-if must leave as it was. */
async function state() {
  const { db } = server.broker.database;
  const [planRows] = await db.select({ n: count() }).from(plans);
  const [actionRows] = await db.select({ n: count() }).from(actions);
  return {
    plans: planRows?.n,
    actions: actionRows?.n,
    fleet: server.broker.fleet.pools(),
    policyVersion: (await server.broker.policies.current()).version,
  };
}

const h100Gpus = (pools: { gpu: string; count: number; gpusPerInstance: number }[]) =>
  pools.filter((p) => p.gpu === 'H100').reduce((sum, p) => sum + p.count * p.gpusPerInstance, 0);

describe('POST /v1/plans/what-if', () => {
  it('plans a bigger buffer at a higher cost, says so against the latest plan, and acts on nothing', async () => {
    const before = await state();
    const latest = (await call('GET', '/v1/plans/latest')).body;
    const answer = await call('POST', '/v1/plans/what-if', {
      policy: { buffer: { perGpu: { H100: { gpus: 16 } } } },
    });
    expect(answer.status).toBe(200);
    const { plan, policy, against, diff } = answer.body;
    expect(plan.id).toBe('what-if');
    expect(h100Gpus(plan.pools)).toBe(16);
    expect(plan.provision).toBe(1);
    // Merged onto the policy in force: the fraction and every other field stay.
    expect(policy.buffer.perGpu.H100).toEqual({ gpus: 16, fraction: 0 });
    expect(policy.vendors.allow).toEqual(['aws']);
    expect(against.id).toBe(latest.id);
    expect(diff.usdPerHour.from).toBe(latest.usdPerHour);
    expect(diff.usdPerHour.change).toBeGreaterThan(0);
    expect(diff.usdPerHour.to).toBe(plan.usdPerHour);
    expect(diff.pools.reduce((sum: number, p: { change: number }) => sum + p.change, 0)).toBe(1);
    expect(diff.unmetGpus).toEqual({ from: 0, to: 0, change: 0 });
    expect(await state()).toEqual(before);
  });

  it('plans what the last tick planned when nothing changes', async () => {
    const { body } = await call('POST', '/v1/plans/what-if', {});
    expect(body.diff.usdPerHour.change).toBe(0);
    expect(body.diff.pools).toEqual([]);
    expect(body.plan.provision).toBe(0);
  });

  it('plans for demand given instead of the forecast', async () => {
    const { status, body } = await call('POST', '/v1/plans/what-if', {
      demand: [{ gpu: 'H100', regionGroup: 'us', gangSize: 8, gpus: 16 }],
    });
    expect(status).toBe(200);
    // 16 GPUs asked for and the 8-GPU buffer on top.
    expect(h100Gpus(body.plan.pools)).toBe(24);
    expect(body.plan.inputs.demand).toContainEqual({
      gpu: 'H100',
      regionGroup: 'us',
      gangSize: 8,
      gpus: [16, 16],
    });
  });

  it('refuses bad input with problem+json naming the field, and a tenant', async () => {
    const before = await state();
    const cases: [unknown, string][] = [
      [{ policy: { spotMaxShare: 2 } }, 'policy.spotMaxShare'],
      [{ policy: { buffer: { perGpu: { H100: { gpus: -1 } } } } }, 'policy.buffer.perGpu.H100.gpus'],
      [{ policy: { noSuchField: 1 } }, 'policy.noSuchField'],
      [{ policy: 3 }, 'policy'],
      [{ demand: [{ gpu: 'H100', regionGroup: 'us', gangSize: 8, gpus: 12 }] }, 'demand.0.gpus'],
      [{ demand: [{ gpu: 'H100', regionGroup: 'us', gpus: [1, 2, 3] }] }, 'demand.0.gpus'],
      [{ demand: [{ gpu: 'H7', regionGroup: 'us', gpus: 1 }] }, 'demand.0.gpu'],
      [{ demand: [{ gpu: 'H100', regionGroup: 'mars', gpus: 1 }] }, 'demand.0.regionGroup'],
      [{ extra: true }, 'body'],
    ];
    for (const [body, field] of cases) {
      const answer = await call('POST', '/v1/plans/what-if', body);
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect(answer.type).toContain('application/problem+json');
      if (field !== 'body') expect(answer.body.field, JSON.stringify(body)).toBe(field);
    }
    expect((await call('POST', '/v1/plans/what-if', { policy: { spotMaxShare: 2 } })).body.title).toBe(
      'Invalid policy',
    );
    const refused = await call('POST', '/v1/plans/what-if', {}, tenant);
    expect(refused.status).toBe(403);
    expect(await state()).toEqual(before);
  });
});

describe('GET /v1/plans/buffer-curve', () => {
  it('costs no less and waits no longer as the buffer grows, and acts on nothing', async () => {
    // Load on H100 for the forecast: 8 GPUs leased, seen by a tick.
    expect((await call('POST', '/v1/leases', { gpu: 'H100', count: 8 }, tenant)).body.status).toBe('ready');
    await server.broker.loop.tick();
    await clock.advanceBy(BOOT_MS);
    await settle();
    const before = await state();
    const { status, body } = await call('GET', '/v1/plans/buffer-curve?gpu=H100&max=10');
    expect(status).toBe(200);
    expect(body).toMatchObject({ gpu: 'H100', loadGpus: 8, bootMs: 180_000 });
    const points = body.points as {
      bufferGpus: number;
      usdPerHour: number;
      heldGpus: number;
      expectedWaitMs: number;
    }[];
    expect(points.map((p) => p.bufferGpus)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    for (const [k, p] of points.entries()) {
      const next = points[k + 1];
      if (!next) continue;
      expect(next.usdPerHour).toBeGreaterThanOrEqual(p.usdPerHour);
      expect(next.expectedWaitMs).toBeLessThanOrEqual(p.expectedWaitMs);
    }
    // No buffer: 8 GPUs for a load of 8, P(Poisson(8) ≥ 8) ≈ 0.547 of requests wait a boot; one more GPU of buffer
    // takes a second node (16 GPUs): P(Poisson(8) ≥ 16) ≈ 0.0082.
    expect(points[0]).toMatchObject({ heldGpus: 8, expectedWaitMs: 98_467 });
    expect(points[1]?.heldGpus).toBe(16);
    expect(points[1]?.expectedWaitMs).toBe(1_482);
    expect(points[1]?.usdPerHour).toBeGreaterThan(points[0]?.usdPerHour ?? 0);
    expect(await state()).toEqual(before);
  });

  it('refuses an unknown GPU type, a buffer beyond 64 and a tenant', async () => {
    expect((await call('GET', '/v1/plans/buffer-curve?gpu=H7')).body).toMatchObject({
      status: 400,
      field: 'gpu',
    });
    expect((await call('GET', '/v1/plans/buffer-curve?gpu=H100&max=65')).body).toMatchObject({
      status: 400,
      field: 'max',
    });
    expect((await call('GET', '/v1/plans/buffer-curve?gpu=H100', undefined, tenant)).status).toBe(403);
  });
});
