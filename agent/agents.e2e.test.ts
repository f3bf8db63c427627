/**
 * Agents end to end: a real broker on HTTP (PGlite, simulated AWS with 2 s boots, no local agent host), three
 * `gpubroker agent` child processes joined by hand to its three instances with a join token, as cloud instances
 * would be, and the SDK's map over them. Then the faults: an agent killed with SIGKILL in the middle of a map
 * (every result arrives once, its inputs retried elsewhere), and a revoked agent (disconnected, its process ends).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { runCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { agentIsolation, spawnAgent } from '../test/test-agent.ts';

// Lost after 3 s of silence: long enough that a test machine busy with other suites does not lose agents.
const HEARTBEAT_MS = 1_000;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-agents-'));
let server: RunningServer;
let broker: Broker;
let work: FunctionHandle<[[number, number]], { x: number; container: string; cuda: string }>;
const tokenFile = join(dir, 'join-token');
const agents = new Map<string, { child: ChildProcess; output: () => string; exit: Promise<number | null> }>();

function startAgent(instanceId: string, tokenFile: string): void {
  const child = spawnAgent(
    {
      broker: server.url,
      stateDir: join(dir, `agent-${instanceId}`),
      args: ['--token-file', tokenFile, '--instance-id', instanceId, '--virtual-gpus', '8xH100'],
    },
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GPUBROKER_LOG: 'warn' } },
  );
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  agents.set(instanceId, { child, output: () => output, exit });
}

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 11,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
    agentHeartbeatMs: HEARTBEAT_MS,
  });
  // Three 8-GPU instances held warm.
  await server.broker.setPolicy(
    {
      ...FAST_POLICY,
      buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 24, fraction: 0 } } },
    },
    'test',
  );
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  const running = await until(
    'three running instances',
    async () => {
      const live = server.broker.fleet.all().filter((i) => i.state === 'running');
      return live.length >= 3 ? live.slice(0, 3) : undefined;
    },
    60_000,
  );
  const { token } = await broker.call<{ token: string }>('POST', '/v1/tokens/join', { ttlMs: 600_000 });
  writeFileSync(tokenFile, token, { mode: 0o600 });
  for (const instance of running) startAgent(instance.id, tokenFile);
  await until('three placeable agents', async () =>
    server.broker.agents?.agents().filter((a) => a.placeable).length === 3 ? true : undefined,
  );
  const { exports } = await deployModule(broker, 'test/fixtures/agent-app.ts', true);
  work = (exports as Record<string, typeof work>).work as typeof work;
}, 120_000);

afterAll(async () => {
  for (const { child } of agents.values()) child.kill('SIGKILL');
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('agents', () => {
  it('join with a join token, each with its own credential, and run the containers placed on their instance', async () => {
    const { agents: listed } = await broker.call<{
      agents: { instanceId: string; joinedWith: string; connection: { placeable: boolean } | null }[];
    }>('GET', '/v1/agents');
    expect(listed).toHaveLength(3);
    for (const a of listed) {
      expect(a.joinedWith).toMatch(/^join:/);
      expect(a.connection?.placeable).toBe(true);
    }
    const results = [];
    for await (const r of work.map(Array.from({ length: 40 }, (_, i) => [i, 5] as [number, number])))
      results.push(r);
    expect(results.map((r) => r.x)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    for (const r of results) expect(r.cuda).toMatch(/^\d(,\d)*$/);
    // Every container ran on an instance whose agent ran it.
    const containers = server.broker.runtime.containers();
    expect(containers.length).toBeGreaterThan(0);
    for (const c of containers) expect(agents.has(c.instanceId)).toBe(true);
  });

  it("runs a command on a lease's machine with exactly its GPUs, streaming output, with its exit status", async () => {
    await using lease = await broker.gpus.request({ gpu: 'H100', count: 2 });
    // The map before kept GPUs busy, so the loop may have bought another instance, and the lease may be there: as
    // a cloud instance's start-up script would, start its agent.
    const instanceId = lease.allocations[0]?.instanceId as string;
    if (!agents.has(instanceId)) {
      startAgent(instanceId, tokenFile);
      await until('the lease machine’s agent', async () =>
        server.broker.agents?.agents().some((a) => a.instanceId === instanceId && a.placeable)
          ? true
          : undefined,
      );
    }
    const chunks: string[] = [];
    const result = await lease.exec(
      ['sh', '-c', 'echo "gpus=$CUDA_VISIBLE_DEVICES"; echo oops >&2; exit 3'],
      {
        onOutput: (stream, data) => chunks.push(`${stream}:${Buffer.from(data).toString()}`),
      },
    );
    expect(result).toEqual({ code: 3, signal: null });
    const gpus = lease.allocations[0]?.gpuIndices.join(',');
    // The allocation says where the machine is, as its agent reported it (asked again: its agent may have joined
    // after the lease was ready).
    const seen = await broker.call<{ allocations: { address?: string }[] }>('GET', `/v1/leases/${lease.id}`);
    expect(seen.allocations[0]?.address).toMatch(/\S/);
    expect(chunks.join('')).toContain(`stdout:gpus=${gpus}`);
    expect(chunks.join('')).toContain('stderr:oops');
    // The CLI exits with the command's status and passes its output through.
    const cli = await runCli(
      [
        'lease',
        'exec',
        lease.id,
        '--url',
        server.url,
        '--',
        'sh',
        '-c',
        'echo cli-$CUDA_VISIBLE_DEVICES; exit 7',
      ],
      { env: { ...process.env, GPUBROKER_TOKEN: server.operatorToken as string } },
    );
    expect(cli.stdout).toBe(`cli-${gpus}\n`);
    expect(cli.code).toBe(7);
    if (agentIsolation() === 'bubblewrap') {
      // In the agent's sandbox: its own user, and nothing of the agent's state directory.
      const seen: string[] = [];
      const probe = await lease.exec(
        [
          'sh',
          '-c',
          `id -u; cat ${join(dir, `agent-${lease.allocations[0]?.instanceId}`, 'credential')} || echo no-credential`,
        ],
        { onOutput: (_stream, data) => seen.push(Buffer.from(data).toString()) },
      );
      expect(probe.code).toBe(0);
      const [uid, credential] = seen
        .join('')
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('cat:'));
      expect(Number(uid)).toBeGreaterThanOrEqual(200_000);
      expect(credential).toBe('no-credential');
    }
    // Another tenant cannot run anything on it.
    const { token } = await broker.tokens.create({ tenant: 'other' });
    const other = new Broker({ url: server.url, token });
    await expect(other.leases.exec(lease.id, 'true')).rejects.toThrow(/not found/);
  }, 60_000);

  it('retries the inputs of an agent killed mid-map elsewhere: every result arrives exactly once', async () => {
    const n = 400;
    const inputs = Array.from({ length: n }, (_, i) => [i, 30] as [number, number]);
    const seen: number[] = [];
    let killed: string | undefined;
    let killedAt = 0;
    for await (const r of work.map(inputs)) {
      seen.push(r.x);
      if (seen.length === 60) {
        // The agent of an instance that runs containers of this function right now.
        const busy = server.broker.runtime
          .containers()
          .find((c) => c.state === 'ready' && agents.has(c.instanceId));
        killed = busy?.instanceId as string;
        agents.get(killed)?.child.kill('SIGKILL');
        killedAt = Date.now();
      }
    }
    expect(killed).toBeDefined();
    expect(seen).toEqual(inputs.map(([x]) => x));
    // The broker gave up on it within the heartbeat timeout, and no container is placed on it any more.
    await until('the killed agent lost', async () =>
      server.broker.agents?.placeable(killed as string) === false ? true : undefined,
    );
    expect(Date.now() - killedAt).toBeLessThan(60_000);
    const after = await work.remote([1, 1]);
    expect(
      server.broker.runtime.containers().find((c) => c.containerId === after.container)?.instanceId,
    ).not.toBe(killed);
  }, 120_000);

  it('disconnects a revoked agent, whose process ends; its credential opens nothing', async () => {
    const [instanceId, agent] =
      [...agents].find(([, a]) => a.child.exitCode === null && a.child.signalCode === null) ?? [];
    expect(agent).toBeDefined();
    const view = server.broker.agents?.agents().find((a) => a.instanceId === instanceId);
    await broker.call('DELETE', `/v1/agents/${view?.agentId}`);
    expect(await agent?.exit).toBe(1);
    expect(agent?.output()).toMatch(/ended this agent|refused/);
    expect(server.broker.agents?.placeable(instanceId as string)).toBe(false);
  }, 30_000);
});
