/**
 * Machines of your own end to end: a broker that buys nothing (`--providers machines`), three `gpubroker agent`
 * processes joined with a join token and no instance id (as one joins a workstation or an on-premises server),
 * leases and functions placed on them, and a revoked machine leaving the fleet.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { runCli } from '../test/cli-process.ts';
import { until } from '../test/fast-aws.ts';
import { spawnAgent } from '../test/test-agent.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-machines-'));
let server: RunningServer;
let broker: Broker;
const children: ChildProcess[] = [];

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    providers: ['machines'],
    agentHeartbeatMs: 1_000,
  });
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  // The command line an operator uses: the token alone on stdout.
  const created = await runCli(['token', 'create', '--join', '--ttl', '1h', '--url', server.url], {
    env: { ...process.env, GPUBROKER_TOKEN: server.operatorToken as string },
  });
  expect(created.code).toBe(0);
  const token = created.stdout.trim();
  expect(token).toMatch(/^gpj_/);
  for (let n = 0; n < 3; n++) {
    const child = spawnAgent(
      {
        broker: server.url,
        stateDir: join(dir, `machine-${n}`),
        args: ['--virtual-gpus', '2xH100', '--usd-per-hour', '1.5', '--labels', `rack=r${n}`],
      },
      { stdio: 'ignore', env: { ...process.env, GPUBROKER_JOIN_TOKEN: token, GPUBROKER_LOG: 'silent' } },
    );
    children.push(child);
  }
  await until('three machines', async () =>
    server.broker.agents?.agents().filter((a) => a.placeable).length === 3 ? true : undefined,
  );
}, 60_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('machines of your own', () => {
  it('join as instances of the fleet, held outside the plan: nothing is launched for work they cover', async () => {
    const machines = server.broker.fleet.all().filter((i) => i.vendor === 'machines');
    expect(machines).toHaveLength(3);
    for (const m of machines) {
      expect(m).toMatchObject({
        gpu: 'H100',
        gpusPerInstance: 2,
        state: 'running',
        microsPerHour: 1_500_000,
      });
      expect(m.id).toMatch(/^machines\/agent_/);
    }
    const lease = await broker.gpus.request({ gpu: 'H100', count: 2, placement: 'single-node' });
    expect(lease.allocations[0]?.instanceId).toMatch(/^machines\//);
    const out: string[] = [];
    const exit = await lease.exec('echo $CUDA_VISIBLE_DEVICES', {
      onOutput: (_, d) => out.push(Buffer.from(d).toString()),
    });
    expect(exit.code).toBe(0);
    expect(out.join('').trim()).toBe(lease.allocations[0]?.gpuIndices.join(','));
    await lease.release();
    const { exports } = await deployModule(broker, 'test/fixtures/agent-app.ts', true);
    const work = (exports as Record<string, FunctionHandle<[[number, number]], { x: number }>>)
      .work as FunctionHandle<[[number, number]], { x: number }>;
    const results = [];
    for await (const r of work.map(Array.from({ length: 30 }, (_, i) => [i, 5] as [number, number])))
      results.push(r.x);
    expect(results).toEqual(Array.from({ length: 30 }, (_, i) => i));
    for (const c of server.broker.runtime.containers()) expect(c.instanceId).toMatch(/^machines\//);
    await server.broker.loop.tick();
    expect(server.broker.fleet.all().filter((i) => i.vendor !== 'machines')).toEqual([]);
  }, 60_000);

  it('takes a machine out of the fleet when its agent is revoked (gpubroker agent list / revoke)', async () => {
    const env = { ...process.env, GPUBROKER_TOKEN: server.operatorToken as string };
    const listed = await runCli(['agent', 'list', '--url', server.url], { env });
    expect(listed.code).toBe(0);
    expect(listed.stdout.trim().split('\n')).toHaveLength(3);
    expect(listed.stdout).toMatch(/machines\/agent_\S+\t.*\t2xH100\tready/);
    const [first] = server.broker.agents?.agents() ?? [];
    const revoked = await runCli(['agent', 'revoke', first?.agentId as string, '--url', server.url], { env });
    expect(revoked.code).toBe(0);
    expect(server.broker.fleet.get(first?.instanceId as string)).toBeUndefined();
    expect(server.broker.fleet.all().filter((i) => i.vendor === 'machines')).toHaveLength(2);
  });

  it('refuses an agent without an instance id where the broker takes no machines', async () => {
    const other = await startServer({ port: 0, providers: [], agentHost: false });
    try {
      const { token } = await other.broker.agentRegistry.createJoinToken({ createdBy: 'test' });
      const run = spawnAgent(
        { broker: other.url, stateDir: join(dir, 'refused'), args: ['--virtual-gpus', '1xH100'] },
        { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, GPUBROKER_JOIN_TOKEN: token } },
      );
      let stderr = '';
      run.stderr?.on('data', (chunk) => {
        stderr += chunk;
      });
      const code = await new Promise((resolve) => run.once('exit', resolve));
      expect(code).toBe(1);
      expect(stderr).toMatch(/takes no machines of your own/);
    } finally {
      await other.close();
    }
  }, 30_000);
});
