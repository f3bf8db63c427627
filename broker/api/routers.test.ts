/**
 * The small routers and middleware of the API (auth.ts, health-routes.ts, lease-routes.ts, policy-routes.ts,
 * token-routes.ts, forward.ts), each against a fake broker through the composed app (`createApp`) with
 * `app.request`: no HTTP server and no database. What each route asks of the broker, with which principal and
 * input, and how its answer and its errors come back. (billing-api.test.ts and functions.test.ts cover the billing
 * and function routers; broker.test.ts the whole API on a real broker.)
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../lib/errors.ts';
import type { BrokerCore } from '../broker.ts';
import type { Principal } from '../tokens.ts';
import { createApp } from './app.ts';
import { HttpProblem } from './problem.ts';

const OPERATOR: Principal = { tenantId: 't-ops', tenantName: 'ops', role: 'operator' };
const ALICE: Principal = { tenantId: 't-alice', tenantName: 'alice', role: 'tenant' };
const TOKENS: Record<string, Principal> = { gpb_ops: OPERATOR, gpb_alice: ALICE };

const LEASE = { id: 'lease_1', status: 'pending', gpu: 'H100', count: 8 };
const VERSION = {
  version: 3,
  policy: { spotMaxShare: 0.2 },
  createdAt: 1_700_000_000_000,
  createdBy: 'ops',
  diff: [{ path: 'spotMaxShare', before: 0.4, after: 0.2 }],
};

/** Every call the routes make on the broker, by name, with its arguments. */
type Calls = [string, ...unknown[]][];

function fakeBroker(o: { leader?: boolean; leaderUrl?: string; lastTickAtMs?: number } = {}) {
  const calls: Calls = [];
  const record =
    <T>(name: string, answer: (...args: unknown[]) => T) =>
    async (...args: unknown[]) => {
      calls.push([name, ...args]);
      return answer(...args);
    };
  const broker = {
    logger: { error: () => undefined },
    onClose: () => undefined,
    clock: { now: () => 0 },
    database: { db: {} },
    runtime: {},
    bundles: {},
    advertisedUrl: 'http://this-replica.invalid',
    loop: {
      leader: o.leader ?? true,
      last: o.lastTickAtMs === undefined ? undefined : { atMs: o.lastTickAtMs },
    },
    leaderUrl: async () => o.leaderUrl,
    tokens: {
      authenticate: async (token: string) => TOKENS[token],
      create: record('tokens.create', () => ({ token: 'gpb_new' })),
    },
    spend: { check: record('spend.check', () => undefined) },
    leases: {
      request: record('leases.request', (_p, input) => ({
        lease: LEASE,
        created: (input as { idempotencyKey?: string }).idempotencyKey !== 'again',
      })),
      list: record('leases.list', () => [LEASE]),
      waitWhilePending: record('leases.waitWhilePending', () => LEASE),
      release: record('leases.release', () => ({ ...LEASE, status: 'released' })),
    },
    policies: {
      current: record('policies.current', () => VERSION),
      history: record('policies.history', () => [VERSION, { ...VERSION, version: 2, diff: [] }]),
    },
    setPolicy: record('setPolicy', (policy) => {
      if ((policy as { spotMaxShare?: number }).spotMaxShare === 2)
        throw new ValidationError('policy.spotMaxShare', 'must be at most 1');
      return { ...VERSION, version: 4, policy };
    }),
  };
  return { broker, calls, app: createApp(broker as unknown as BrokerCore) };
}

type App = ReturnType<typeof fakeBroker>['app'];

async function request(
  app: App,
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const response = await app.request(path, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...o.headers,
    },
    ...(o.body === undefined ? {} : { body: JSON.stringify(o.body) }),
  });
  const text = await response.text();
  return {
    status: response.status,
    type: response.headers.get('content-type') ?? '',
    body: text && /json/.test(response.headers.get('content-type') ?? '') ? JSON.parse(text) : text,
  };
}

describe('auth', () => {
  it('asks for a bearer token, refuses an unknown one, and takes the scheme in any case', async () => {
    const { app, calls } = fakeBroker();
    const missing = await request(app, 'GET', '/v1/leases');
    expect(missing).toMatchObject({
      status: 401,
      type: 'application/problem+json',
      body: { title: 'Unauthorized', detail: 'send Authorization: Bearer <token>', field: 'authorization' },
    });
    expect((await request(app, 'GET', '/v1/leases', { token: 'gpb_nobody' })).body).toMatchObject({
      status: 401,
      detail: 'unknown or revoked token',
    });
    const lower = await request(app, 'GET', '/v1/leases', { headers: { authorization: 'bearer gpb_alice' } });
    expect(lower.status).toBe(200);
    expect(calls).toEqual([['leases.list', ALICE]]);
  });
});

describe('health routes', () => {
  it('answer /healthz without a token: up, leading, and when the loop last ticked', async () => {
    expect((await request(fakeBroker({ lastTickAtMs: 123 }).app, 'GET', '/healthz')).body).toEqual({
      ok: true,
      leader: true,
      lastTickAtMs: 123,
    });
    expect((await request(fakeBroker({ leader: false }).app, 'GET', '/healthz')).body).toEqual({
      ok: true,
      leader: false,
      lastTickAtMs: null,
    });
  });
});

describe('lease routes', () => {
  it('check the spend limit, then request the lease: 201 when made, 200 when an idempotency key found it', async () => {
    const { app, calls } = fakeBroker();
    const made = await request(app, 'POST', '/v1/leases', {
      token: 'gpb_alice',
      body: { gpu: 'H100', count: 8 },
    });
    expect(made).toMatchObject({ status: 201, body: LEASE });
    const found = await request(app, 'POST', '/v1/leases', {
      token: 'gpb_alice',
      body: { gpu: 'H100', count: 8, idempotencyKey: 'again' },
    });
    expect(found.status).toBe(200);
    expect(calls.map(([name]) => name)).toEqual([
      'spend.check',
      'leases.request',
      'spend.check',
      'leases.request',
    ]);
    expect(calls[0]).toEqual(['spend.check', 't-alice']);
    expect(calls[1]?.[1]).toBe(ALICE);
    expect(calls[1]?.[2]).toMatchObject({ gpu: 'H100', count: 8 });
  });

  it('request nothing over a spend limit or with a bad body, and name the field', async () => {
    const { app, broker, calls } = fakeBroker();
    const bad = await request(app, 'POST', '/v1/leases', {
      token: 'gpb_alice',
      body: { gpu: 'H100', count: 0 },
    });
    expect(bad).toMatchObject({ status: 400, body: { title: 'Invalid request', field: 'count' } });
    broker.spend.check = async () => {
      throw new HttpProblem(402, 'Payment required', 'alice is at her spend limit');
    };
    const over = await request(app, 'POST', '/v1/leases', {
      token: 'gpb_alice',
      body: { gpu: 'H100', count: 1 },
    });
    expect(over).toMatchObject({ status: 402, body: { detail: 'alice is at her spend limit' } });
    expect(calls.filter(([name]) => name === 'leases.request')).toEqual([]);
  });

  it('list, read (with a bounded long poll) and release the principal’s leases', async () => {
    const { app, calls } = fakeBroker();
    expect((await request(app, 'GET', '/v1/leases', { token: 'gpb_alice' })).body).toEqual({
      leases: [LEASE],
    });
    expect((await request(app, 'GET', '/v1/leases/lease_1', { token: 'gpb_alice' })).body).toEqual(LEASE);
    await request(app, 'GET', '/v1/leases/lease_1?waitMs=500', { token: 'gpb_alice' });
    const released = await request(app, 'DELETE', '/v1/leases/lease_1', { token: 'gpb_ops' });
    expect(released.body).toMatchObject({ id: 'lease_1', status: 'released' });
    expect(calls).toEqual([
      ['leases.list', ALICE],
      ['leases.waitWhilePending', ALICE, 'lease_1', 0],
      ['leases.waitWhilePending', ALICE, 'lease_1', 500],
      ['leases.release', OPERATOR, 'lease_1'],
    ]);
    const tooLong = await request(app, 'GET', '/v1/leases/lease_1?waitMs=60001', { token: 'gpb_alice' });
    expect(tooLong).toMatchObject({ status: 400, body: { field: 'waitMs' } });
    expect((await request(app, 'GET', '/v1/leases/lease_1?wait=5', { token: 'gpb_alice' })).status).toBe(400);
    expect(calls).toHaveLength(4);
  });
});

describe('policy routes', () => {
  it('show the version in force to anyone with a token, with its time in ms', async () => {
    const { app } = fakeBroker();
    expect((await request(app, 'GET', '/v1/policy', { token: 'gpb_alice' })).body).toEqual({
      version: 3,
      policy: { spotMaxShare: 0.2 },
      createdAtMs: 1_700_000_000_000,
      createdBy: 'ops',
      diff: [{ path: 'spotMaxShare', before: 0.4, after: 0.2 }],
    });
  });

  it('set a version and show the history for operators only, by their name; a bad policy names the field', async () => {
    const { app, calls } = fakeBroker();
    expect((await request(app, 'PUT', '/v1/policy', { token: 'gpb_alice', body: {} })).body).toMatchObject({
      status: 403,
      detail: 'this needs an operator token',
    });
    expect((await request(app, 'GET', '/v1/policy/history', { token: 'gpb_alice' })).status).toBe(403);
    expect(calls).toEqual([]);

    const set = await request(app, 'PUT', '/v1/policy', { token: 'gpb_ops', body: { spotMaxShare: 0.1 } });
    expect(set).toMatchObject({ status: 200, body: { version: 4, policy: { spotMaxShare: 0.1 } } });
    expect(calls).toEqual([['setPolicy', { spotMaxShare: 0.1 }, 'ops']]);
    const bad = await request(app, 'PUT', '/v1/policy', { token: 'gpb_ops', body: { spotMaxShare: 2 } });
    expect(bad).toMatchObject({
      status: 400,
      body: {
        title: 'Invalid policy',
        detail: 'policy.spotMaxShare: must be at most 1',
        field: 'policy.spotMaxShare',
      },
    });
    const history = await request(app, 'GET', '/v1/policy/history', { token: 'gpb_ops' });
    expect(history.body.versions.map((v: { version: number }) => v.version)).toEqual([3, 2]);
  });
});

describe('token routes', () => {
  it('create a token for operators only, with the role defaulting to tenant, and name a bad field', async () => {
    const { app, calls } = fakeBroker();
    expect(
      (await request(app, 'POST', '/v1/tokens', { token: 'gpb_alice', body: { tenant: 'bob' } })).status,
    ).toBe(403);
    const created = await request(app, 'POST', '/v1/tokens', {
      token: 'gpb_ops',
      body: { tenant: 'bob', gpuQuota: 16 },
    });
    expect(created).toMatchObject({ status: 201, body: { token: 'gpb_new', tenant: 'bob', role: 'tenant' } });
    const bad = await request(app, 'POST', '/v1/tokens', {
      token: 'gpb_ops',
      body: { tenant: 'bob', role: 'root' },
    });
    expect(bad).toMatchObject({ status: 400, body: { field: 'role' } });
    // The fourth argument writes the audit record in the creation's transaction.
    expect(calls).toEqual([['tokens.create', 'bob', 'tenant', 16, expect.any(Function)]]);
  });
});

describe('a follower', () => {
  it('passes an API call on to the leader once, marked, without hop-by-hop headers, and passes its answer back', async () => {
    let seen: { method?: string; url?: string; headers: IncomingHttpHeaders; body: string } | undefined;
    const leader = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        seen = { method: req.method, url: req.url, headers: req.headers, body };
        res
          .writeHead(201, { 'content-type': 'application/json', 'x-from': 'leader' })
          .end('{"id":"lease_9"}');
      });
    });
    await new Promise<void>((resolve) => leader.listen(0, '127.0.0.1', resolve));
    try {
      const leaderUrl = `http://127.0.0.1:${(leader.address() as AddressInfo).port}`;
      const { app, calls } = fakeBroker({ leader: false, leaderUrl });
      const answer = await app.request('/v1/leases?x=1', {
        method: 'POST',
        headers: {
          authorization: 'Bearer gpb_alice',
          'content-type': 'application/json',
          connection: 'keep-alive',
          'keep-alive': 'timeout=5',
        },
        body: JSON.stringify({ gpu: 'H100', count: 8 }),
      });
      expect(answer.status).toBe(201);
      expect(answer.headers.get('x-from')).toBe('leader');
      expect(await answer.json()).toEqual({ id: 'lease_9' });
      expect(seen).toMatchObject({ method: 'POST', url: '/v1/leases?x=1', body: '{"gpu":"H100","count":8}' });
      expect(seen?.headers).toMatchObject({
        authorization: 'Bearer gpb_alice',
        'x-forwarded-by': 'gpubroker-follower',
      });
      expect(seen?.headers['keep-alive']).toBeUndefined();
      // The follower itself neither authenticated nor served it.
      expect(calls).toEqual([]);

      // A request already passed on once is not passed on again.
      const again = await request(app, 'GET', '/v1/leases', {
        token: 'gpb_alice',
        headers: { 'x-forwarded-by': 'gpubroker-follower' },
      });
      expect(again).toMatchObject({ status: 503, body: { title: 'No leader' } });
    } finally {
      await new Promise((resolve) => leader.close(resolve));
    }
  });

  it('answers 503 when no leader is known or the leader does not answer, and serves /healthz itself', async () => {
    const none = fakeBroker({ leader: false });
    expect((await request(none.app, 'GET', '/v1/leases', { token: 'gpb_alice' })).body).toMatchObject({
      status: 503,
      title: 'No leader',
    });
    expect((await request(none.app, 'GET', '/healthz')).body).toMatchObject({ ok: true, leader: false });
    const gone = fakeBroker({ leader: false, leaderUrl: 'http://127.0.0.1:1' });
    const answer = await request(gone.app, 'GET', '/v1/leases', { token: 'gpb_alice' });
    expect(answer).toMatchObject({ status: 503, body: { title: 'Leader unreachable' } });
    expect(answer.body.detail).toContain('the leader at http://127.0.0.1:1 does not answer');
  });
});
