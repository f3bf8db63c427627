/**
 * The console over real HTTP on 127.0.0.1 (a broker on PGlite with simulated AWS booting in 2 s): logging in and
 * out, bearer tokens, tenant and operator views, every page and its htmx fragment, the event stream, the static
 * files; and the API routes it reads (`/v1/fleet`, `/v1/containers`, `/v1/tenants`). The same pages in a real
 * browser: console.e2e.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import { Broker, type BrokerApiError } from '../../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';
import { SESSION_COOKIE, safeNext } from './session.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-console-'));
let server: RunningServer;
let operator: string;
let alice: string;
let bob: string;

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 5,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
  operator = server.operatorToken as string;
  alice = (await server.broker.tokens.create('alice', 'tenant')).token;
  bob = (await server.broker.tokens.create('bob', 'tenant')).token;
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) =>
  fetch(`${server.url}${path}`, { headers, redirect: 'manual' });
const bearer = (token: string, extra: Record<string, string> = {}) => ({
  authorization: `Bearer ${token}`,
  ...extra,
});
const login = (token: string, next = '/') =>
  fetch(`${server.url}/login`, {
    method: 'POST',
    body: new URLSearchParams({ token, next }),
    redirect: 'manual',
  });

describe('console sessions', () => {
  it('sends a visitor without a token to the login page, keeping where they were going', async () => {
    const response = await get('/plans?id=plan_x');
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe(`/login?next=${encodeURIComponent('/plans?id=plan_x')}`);
    const page = await get('/login');
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('name="token"');
  });

  it('refuses a bad token at login with a message and no session', async () => {
    const response = await login('gpb_not_a_token');
    expect(response.status).toBe(401);
    expect(response.headers.get('set-cookie')).toBeNull();
    expect(await response.text()).toContain('That token is unknown or revoked.');
    const empty = await login('  ');
    expect(empty.status).toBe(401);
    expect(await empty.text()).toContain('Enter a token.');
  });

  it('logs in with a good token (HttpOnly, SameSite=Strict cookie), serves pages on it, and logs out', async () => {
    const response = await login(operator, '/policy');
    expect(response.status).toBe(303);
    expect(response.headers.get('location')).toBe('/policy');
    const cookie = response.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(new RegExp(`^${SESSION_COOKIE}=`));
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const session = cookie.split(';')[0] as string;
    const page = await get('/policy', { cookie: session });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'");
    expect(await page.text()).toContain('<h1>Policy</h1>');
    const out = await fetch(`${server.url}/logout`, {
      method: 'POST',
      headers: { cookie: session },
      redirect: 'manual',
    });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(new RegExp(`^${SESSION_COOKIE}=;`));
  });

  it('takes a bearer header as logged in (scripts), and answers a bad one with the login page and 401', async () => {
    const ok = await get('/leases', bearer(operator));
    expect(ok.status).toBe(200);
    const bad = await get('/leases', bearer('gpb_revoked'));
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('That token is unknown or revoked.');
    // An htmx refresh whose session ended is sent to the login page by htmx itself.
    const fragment = await get('/leases', bearer('gpb_revoked', { 'hx-request': 'true' }));
    expect(fragment.status).toBe(401);
    expect(fragment.headers.get('hx-redirect')).toMatch(/^\/login\?next=/);
  });

  it('returns only to its own pages after login', () => {
    expect(safeNext('/money?range=month')).toBe('/money?range=month');
    for (const bad of [
      '//evil.example',
      'https://evil.example',
      '/\\evil.example',
      'javascript:alert(1)',
      undefined,
    ])
      expect(safeNext(bad)).toBe('/');
  });
});

describe('console pages', () => {
  it('renders every page for an operator, whole and as the fragment htmx refreshes', async () => {
    const lease = await new Broker({ url: server.url, token: operator }).gpus.request(
      { gpu: 'H100', count: 1 },
      { timeoutMs: 60_000 },
    );
    for (const [path, heading] of [
      ['/fleet', 'Fleet'],
      ['/leases', 'Leases'],
      ['/functions', 'Functions'],
      ['/plans', 'Plan '],
      ['/money', 'Money'],
      ['/money?range=month', 'Money'],
      ['/policy', 'Policy'],
    ] as const) {
      const whole = await get(path, bearer(operator));
      expect(whole.status, path).toBe(200);
      const text = await whole.text();
      expect(text, path).toContain('<!doctype html>');
      expect(text, path).toContain(`<h1>${heading}`);
      expect(text, path).toContain('sse-connect="/console/events"');
      const fragment = await get(path, bearer(operator, { 'hx-request': 'true' }));
      const part = await fragment.text();
      expect(part, path).not.toContain('<!doctype html>');
      expect(part, path).toContain(`<h1>${heading}`);
    }
    const fleet = await (await get('/fleet', bearer(operator))).text();
    expect(fleet).toContain(lease.allocations[0]?.instanceId);
    expect(fleet).toMatch(/<svg/); // the buffer chart, rendered on the server by Vega
    const leases = await (await get('/leases', bearer(operator))).text();
    expect(leases).toContain(`data-lease="${lease.id}" data-status="ready"`);
    const plans = await (await get('/plans', bearer(operator))).text();
    expect(plans).toContain('Why this plan');
    await lease.release();
  });

  it('shows a tenant its own leases only, and no operator pages', async () => {
    const mine = await new Broker({ url: server.url, token: alice }).leases.create({ gpu: 'H100', count: 1 });
    const theirs = await new Broker({ url: server.url, token: bob }).leases.create({ gpu: 'H100', count: 1 });
    const page = await (await get('/leases', bearer(alice))).text();
    expect(page).toContain(mine.id);
    expect(page).not.toContain(theirs.id);
    expect(page).not.toContain('href="/fleet"');
    expect(page).toContain('alice · tenant');
    for (const path of ['/fleet', '/plans', '/policy']) {
      const refused = await get(path, bearer(alice));
      expect(refused.status, path).toBe(403);
      expect(await refused.text(), path).toContain('This page needs an operator token.');
    }
    expect((await get('/functions', bearer(alice))).status).toBe(200);
    expect((await get('/money', bearer(alice))).status).toBe(200);
    const root = await get('/', bearer(alice));
    expect(root.headers.get('location')).toBe('/leases');
    for (const id of [mine.id, theirs.id])
      await new Broker({ url: server.url, token: operator })
        .call('DELETE', `/v1/leases/${id}`)
        .catch(() => undefined);
  });

  it('escapes what users name: an id in the query is shown as text', async () => {
    const api = new Broker({ url: server.url, token: operator });
    await until('a plan', async () =>
      (await api.api('get', '/v1/plans')).plans.length > 0 ? true : undefined,
    );
    const response = await get('/plans?id=%3Cscript%3Ealert(1)%3C%2Fscript%3E', bearer(operator));
    expect(response.status).toBe(404);
    const text = await response.text();
    expect(text).not.toContain('<script>alert(1)</script>');
    expect(text).toContain('&lt;script&gt;');
  });
});

describe('console events and files', () => {
  it('streams a leases event when a lease changes', async () => {
    const controller = new AbortController();
    const response = await fetch(`${server.url}/console/events`, {
      headers: bearer(operator),
      signal: controller.signal,
    });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = '';
    const read = async (pattern: RegExp) => {
      while (!pattern.test(seen)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`stream ended before ${pattern}: ${seen}`);
        seen += decoder.decode(value);
      }
    };
    await read(/event: hello\ndata: operator/);
    const lease = await new Broker({ url: server.url, token: alice }).leases.create({
      gpu: 'H100',
      count: 1,
    });
    await read(/event: leases/);
    controller.abort();
    await new Broker({ url: server.url, token: alice }).leases.release(lease.id);
    expect((await get('/console/events')).status).toBe(401);
  });

  it('serves htmx, its SSE extension and the stylesheet from the package, and nothing else', async () => {
    for (const [name, type] of [
      ['htmx.min.js', 'text/javascript'],
      ['sse.js', 'text/javascript'],
      ['console.css', 'text/css'],
    ] as const) {
      const response = await get(`/console/assets/${name}`);
      expect(response.status, name).toBe(200);
      expect(response.headers.get('content-type'), name).toContain(type);
    }
    for (const name of ['..%2Fpackage.json', 'console-routes.ts', 'constructor'])
      expect((await get(`/console/assets/${name}`)).status, name).toBe(404);
  });
});

describe('the API the console reads', () => {
  it('GET /v1/fleet: instances and the warm buffer, target against ready (operator only)', async () => {
    const fleet = await new Broker({ url: server.url, token: operator }).api('get', '/v1/fleet');
    expect(fleet.buffers.find((b) => b.gpu === 'H100')?.targetGpus).toBeGreaterThanOrEqual(8);
    const running = fleet.instances.filter((i) => i.state === 'running');
    expect(running.length).toBeGreaterThan(0);
    expect(running[0]).toMatchObject({
      vendor: 'aws',
      region: 'us-east-1',
      gpu: 'H100',
      capacityType: 'on-demand',
    });
    const refused = await new Broker({ url: server.url, token: alice })
      .api('get', '/v1/fleet')
      .catch((e) => e);
    expect(refused.status).toBe(403);
  });

  it('GET /v1/tenants lists tenants and their limits (operator only)', async () => {
    const api = new Broker({ url: server.url, token: operator });
    await api.api('put', '/v1/tenants/{name}/limits', { params: { name: 'alice' }, body: { gpuQuota: 4 } });
    const { tenants } = await api.api('get', '/v1/tenants');
    expect(tenants.find((t) => t.name === 'alice')).toMatchObject({ gpuQuota: 4, onSpendLimit: 'continue' });
    expect(tenants.map((t) => t.name)).toEqual([...tenants.map((t) => t.name)].sort());
    const refused = await new Broker({ url: server.url, token: alice })
      .api('get', '/v1/tenants')
      .catch((e) => e);
    expect(refused.status).toBe(403);
  });

  it('GET /v1/containers answers with lists, and refuses a bad query naming the field', async () => {
    const answer = await new Broker({ url: server.url, token: alice }).api('get', '/v1/containers');
    expect(answer).toEqual({ containers: [], calls: [], failures: [] });
    const bad = (await new Broker({ url: server.url, token: alice })
      .call('GET', '/v1/containers?failures=-1')
      .catch((e) => e)) as BrokerApiError;
    expect(bad.status).toBe(400);
    expect(bad.field).toBe('failures');
  });
});
