/**
 * `gpubroker token | policy | lease`, run in this process (test/cli-in-process.ts) against a real broker started
 * here: PGlite in a temporary directory, simulated AWS with a 300 ms boot, a loop ticking every second. The
 * commands run in that directory, so they find the operator token in `.gpubroker/` as the SDK does by default. One
 * command runs as a real child process.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import { Broker, type Lease } from '../../sdk/index.ts';
import { runCliInProcess } from '../../test/cli-in-process.ts';
import { type CliRun, freePort, runCli } from '../../test/cli-process.ts';
import { quietAwsScenario } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';

/** Everything but the fields this test changes; `policy set` replaces the whole policy. */
const basePolicy = {
  planSchedule: '* * * * * *',
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1'], deny: [] },
};

let server: RunningServer;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-cli-'));
  server = await startServer({
    port: 0,
    dataDir: join(dir, '.gpubroker'),
    scenario: simScenario({
      ...quietAwsScenario(1, 300),
      stock: {
        rules: [
          { match: { instanceType: 'p5.4xlarge' }, onDemandPerZone: 0 },
          { match: { gpu: 'A100-80GB' }, onDemandPerZone: 0 },
        ],
      },
    }),
  });
  await server.broker.setPolicy(basePolicy, 'test');
  writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...basePolicy, spotMaxShare: 2 }));
  writeFileSync(join(dir, 'good.json'), JSON.stringify({ ...basePolicy, budgetUsdPerHour: 5000 }));
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The CLI in the test directory, pointed at the broker by GPUBROKER_URL, with no GPUBROKER_TOKEN set. */
function cli(...args: string[]): Promise<CliRun> {
  return runCliInProcess(args, { cwd: dir, env: { GPUBROKER_URL: server.url, GPUBROKER_TOKEN: undefined } });
}

/** The same, as a real child process. */
function cliProcess(...args: string[]): Promise<CliRun> {
  const { GPUBROKER_TOKEN: _token, ...env } = process.env;
  return runCli(args, { cwd: dir, env: { ...env, GPUBROKER_URL: server.url } });
}

describe('gpubroker token', () => {
  it('creates tenant and operator tokens; a tenant token lists leases but cannot set the policy', async () => {
    const [tenant, operator] = await Promise.all([
      cli('token', 'create', '--tenant', 'alice'),
      cli('token', 'create', '--tenant', 'ops', '--operator', '--json'),
    ]);
    expect(tenant.code).toBe(0);
    expect(tenant.stdout).toMatch(/^gpb_\S+\n$/);
    expect(tenant.stderr).toContain('tenant token for tenant alice');
    expect(operator.code).toBe(0);
    expect(JSON.parse(operator.stdout)).toMatchObject({ tenant: 'ops', role: 'operator' });

    const token = tenant.stdout.trim();
    const [list, set] = await Promise.all([
      cli('lease', 'list', '--token', token),
      cli('policy', 'set', 'good.json', '--token', token),
    ]);
    expect(list).toMatchObject({ code: 0, stdout: 'no leases\n' });
    expect(set.code).toBe(2);
    expect(set.stderr).toBe('gpubroker: Forbidden: this needs an operator token (field: authorization)\n');
    expect((await server.broker.policies.current()).version).toBe(1);
  });
});

describe('gpubroker policy', () => {
  it('refuses an invalid policy naming the field, stores a valid one, and shows it and its history', async () => {
    const bad = await cli('policy', 'set', 'bad.json');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^gpubroker: Invalid policy: policy\.spotMaxShare: .*\n$/);
    expect((await server.broker.policies.current()).version).toBe(1);

    const good = await cli('policy', 'set', 'good.json');
    expect(good.code).toBe(0);
    expect(good.stdout).toContain('policy version 2, set by operator');
    expect(good.stdout).toContain('budgetUsdPerHour: null → 5000');

    const [get, history] = await Promise.all([cli('policy', 'get', '--json'), cli('policy', 'history')]);
    expect(get.code).toBe(0);
    expect(JSON.parse(get.stdout)).toMatchObject({
      version: 2,
      createdBy: 'operator',
      policy: { budgetUsdPerHour: 5000, spotMaxShare: 0 },
    });
    expect(history.code).toBe(0);
    const rows = history.stdout.split('\n').filter((line) => /│ \d+ /.test(line));
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(/│ 2 .*│ operator .*│ budgetUsdPerHour/);
    expect(rows[1]).toMatch(/│ 1 .*│ test /);
  });
});

describe('gpubroker lease', () => {
  it('requests GPUs and waits until ready, requests without waiting, lists and releases', async () => {
    const [ready, pending] = await Promise.all([
      cli(
        'lease',
        'request',
        '--gpu',
        'H100',
        '--count',
        '8',
        '--placement',
        'single-node',
        '--regions',
        'us-east-1',
        '--vendors',
        'aws',
        '--capacity-type',
        'on-demand',
        '--ttl',
        '600',
        '--timeout',
        '30s',
        '--json',
      ),
      cli('lease', 'request', '--gpu', 'A100-80GB', '--count', '1', '--no-wait'),
    ]);
    expect(ready.code).toBe(0);
    const lease = JSON.parse(ready.stdout) as Lease;
    expect(lease).toMatchObject({ status: 'ready', gpu: 'H100', count: 8, placement: 'single-node' });
    expect(lease.expiresAtMs).not.toBeNull();
    expect(lease.allocations).toHaveLength(1);
    expect(lease.allocations[0]).toMatchObject({ vendor: 'aws', region: 'us-east-1' });
    expect(lease.allocations[0]?.gpuIndices).toHaveLength(8);
    expect(ready.stderr).toContain(`lease ${lease.id} pending: waiting for 8× H100`);
    expect(pending.code).toBe(0);
    const pendingId = /^lease (\S+) pending: 1× A100-80GB \(any\)/.exec(pending.stdout)?.[1];
    expect(pendingId).toBeDefined();

    const list = await cli('lease', 'list');
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`│ ${lease.id} +│ ready +│ 8× H100 +│ aws/us-east-1/${lease.allocations[0]?.instanceType}`),
    );
    expect(list.stdout).toMatch(new RegExp(`│ ${pendingId} +│ pending +│ 1× A100-80GB +│ -`));

    const [released, again] = await Promise.all([
      cli('lease', 'release', lease.id),
      cli('lease', 'release', pendingId ?? ''),
    ]);
    expect(released).toMatchObject({ code: 0, stdout: `lease ${lease.id} released\n` });
    expect(again).toMatchObject({ code: 0, stdout: `lease ${pendingId} released\n` });
    const sdk = new Broker({ url: server.url, token: server.operatorToken });
    expect((await sdk.leases.get(lease.id)).status).toBe('released');
  });
});

describe('gpubroker plans', () => {
  it("lists the loop's plans, shows one and the latest with why; a tenant may not, an unknown id is one line", async () => {
    // A warm buffer to plan for: the loop plans (and records) at its next tick.
    await server.broker.setPolicy(
      {
        ...basePolicy,
        buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 8, fraction: 0 } } },
      },
      'test',
    );
    server.broker.loop.trigger();
    let list: CliRun | undefined;
    for (let i = 0; i < 300; i++) {
      list = await cli('plans', 'list', '--json');
      if ((JSON.parse(list.stdout) as { plans: unknown[] }).plans.length > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const plans = (JSON.parse(list?.stdout ?? '{}') as { plans: { id: string; provision: number }[] }).plans;
    expect(plans.length).toBeGreaterThan(0);
    const id = plans[0]?.id as string;
    const table = await cli('plans', 'list', '--limit', '5');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain(id);
    const shown = await cli('plans', 'show', id);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`plan ${id}`);
    expect(shown.stdout).toMatch(/status \w+ \(\w+\), solved in \d+ ms; spend \$/);
    expect(shown.stdout).toContain('why:');
    const latest = JSON.parse((await cli('plans', 'latest', '--json')).stdout) as {
      id: string;
      inputs: { demand: { gpu: string }[] };
      explanation: unknown[];
    };
    expect(latest.inputs.demand.some((d) => d.gpu === 'H100')).toBe(true);
    expect(latest.explanation.length).toBeGreaterThan(0);
    // A 4xx is the caller's mistake: exit 2, one line.
    const unknown = await cli('plans', 'show', 'plan_nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr.trim().split('\n')).toHaveLength(1);
    expect(unknown.stderr).toContain('no plan "plan_nope"');
    const { token } = await new Broker({
      url: server.url,
      token: server.operatorToken as string,
    }).tokens.create({
      tenant: 'plans-tenant',
    });
    const refused = await runCliInProcess(['plans', 'list'], {
      cwd: dir,
      env: { GPUBROKER_URL: server.url, GPUBROKER_TOKEN: token },
    });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/operator/);
    expect((await cli('plans', 'list', '--limit', '0')).code).toBe(2);
  });
});

describe('the audit log', () => {
  it('records who created tokens and changed tenant limits, and when, newest first; nothing for a refused change', async () => {
    const operator = new Broker({ url: server.url, token: server.operatorToken as string });
    const { token } = await operator.tokens.create({ tenant: 'audited', gpuQuota: 4 });
    await operator.call('PUT', '/v1/tenants/audited/limits', {
      spendLimitUsdPerHour: 10,
      onSpendLimit: 'stop',
    });
    await expect(
      operator.call('PUT', '/v1/tenants/audited/limits', { spendLimitUsdPerHour: -1 }),
    ).rejects.toThrow();
    const join = await operator.call<{ id: string }>('POST', '/v1/tokens/join', { ttlMs: 60_000 });
    const { events } = await operator.call<{
      events: {
        action: string;
        actor: string;
        subject: string;
        detail: Record<string, unknown>;
        atMs: number;
      }[];
    }>('GET', '/v1/audit?limit=3');
    expect(events.map((e) => [e.action, e.subject])).toEqual([
      ['join-token.create', join.id],
      ['tenant.limits', 'audited'],
      ['token.create', 'audited'],
    ]);
    expect(events[1]?.detail).toEqual({ spendLimitUsdPerHour: 10, onSpendLimit: 'stop' });
    expect(events[2]?.detail).toEqual({ role: 'tenant', gpuQuota: 4 });
    // The token itself is never recorded.
    expect(JSON.stringify(events)).not.toContain(token);
    for (const e of events) expect(e.actor).toBe('operator');
    const tenant = new Broker({ url: server.url, token });
    await expect(tenant.call('GET', '/v1/audit')).rejects.toThrow(/operator/);
  });
});

describe('errors', () => {
  it('names a bad flag with exit 2; an unreachable broker or a 5xx answer is exit 1 with the reason', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const proxy = createHttpServer((_request, response) => {
      response.writeHead(502, { 'content-type': 'text/html' }).end('<h1>upstream down</h1>');
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const [count, placement, unreachable, badGateway] = await Promise.all([
      cli('lease', 'request', '--gpu', 'H100', '--count', '0'),
      cli('lease', 'request', '--gpu', 'H100', '--count', '8', '--placement', 'moon'),
      cli('lease', 'list', '--url', `http://127.0.0.1:${closedPort}`),
      cli('policy', 'get', '--url', proxyUrl),
    ]).finally(() => proxy.close());
    expect(count).toMatchObject({
      code: 2,
      stderr: 'gpubroker: --count: "0" is not an integer from 1 to 1024\n',
    });
    expect(placement).toMatchObject({
      code: 2,
      stderr: 'gpubroker: --placement: "moon" is not one of single-node, same-region, any\n',
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(
      `gpubroker: cannot reach the broker at http://127.0.0.1:${closedPort} (ECONNREFUSED); is \`gpubroker serve\` running there?\n`,
    );
    expect(badGateway).toMatchObject({ code: 1, stderr: 'gpubroker: Bad Gateway: <h1>upstream down</h1>\n' });
  });
});

describe('gpubroker lease (child process)', () => {
  it('an unreachable broker is exit status 1 and one line on stderr, as a real process', async () => {
    const closedPort = await freePort();
    const unreachable = await cliProcess('lease', 'list', '--url', `http://127.0.0.1:${closedPort}`);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(
      `gpubroker: cannot reach the broker at http://127.0.0.1:${closedPort} (ECONNREFUSED); is \`gpubroker serve\` running there?\n`,
    );
  });
});
