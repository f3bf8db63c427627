/**
 * A broker restart with agents that stay up: the broker (a child process) is killed with SIGKILL and started
 * again on the same data directory; the agent (another process) reconnects with its credential and the runtime
 * takes over the container it still runs, so the next call is served warm by the same container, with no cold start.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { type CliProcess, startCli } from '../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { spawnAgent } from '../test/test-agent.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-adopt-'));
const children: ChildProcess[] = [];
let serve: CliProcess | undefined;

afterAll(() => {
  serve?.child.kill('SIGKILL');
  for (const child of children) child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

describe('a broker restart with agents up', () => {
  it('re-adopts the containers agents still run: the next call is warm, on the same container', async () => {
    const port = await freePort();
    const scenarioFile = join(dir, 'scenario.json');
    writeFileSync(scenarioFile, JSON.stringify(FAST_AWS_SCENARIO));
    const args = [
      'serve',
      '--port',
      String(port),
      '--data-dir',
      join(dir, 'data'),
      '--scenario',
      scenarioFile,
      '--no-local-agents',
    ];
    serve = await startCli(args, { GPUBROKER_LOG: 'silent' });
    const token = readFileSync(join(dir, 'data', 'operator-token'), 'utf8').trim();
    const broker = new Broker({ url: serve.url, token });
    await broker.policy.set(FAST_POLICY);
    // A lease finds the instance the buffer holds (leases need no agent); the agent then joins it.
    const lease = await broker.gpus.request(
      { gpu: 'H100', count: 8, placement: 'single-node' },
      { timeoutMs: 60_000 },
    );
    const instanceId = lease.allocations[0]?.instanceId as string;
    await lease.release();
    const { token: joinToken } = await broker.call<{ token: string }>('POST', '/v1/tokens/join', {});
    const agent = spawnAgent(
      {
        broker: serve.url,
        stateDir: join(dir, 'agent'),
        args: ['--instance-id', instanceId, '--virtual-gpus', '8xH100'],
      },
      { stdio: 'ignore', env: { ...process.env, GPUBROKER_JOIN_TOKEN: joinToken, GPUBROKER_LOG: 'silent' } },
    );
    children.push(agent);
    const { exports } = await deployModule(broker, 'test/fixtures/agent-app.ts', false);
    const work = (
      exports as Record<string, FunctionHandle<[[number, number]], { x: number; container: string }>>
    ).work as FunctionHandle<[[number, number]], { x: number; container: string }>;
    const before = await work.remote([1, 1]);

    serve.child.kill('SIGKILL');
    await new Promise((resolve) => serve?.child.once('exit', resolve));
    serve = await startCli(args, { GPUBROKER_LOG: 'silent' });
    const after = await until(
      'a call after the restart',
      async () => work.remote([2, 1]).catch(() => undefined),
      60_000,
    );
    expect(after.x).toBe(2);
    expect(after.container).toBe(before.container);
    expect(agent.exitCode).toBeNull();
  }, 180_000);
});
