/**
 * A network partition between an agent and the broker: the agent's link goes through a TCP relay that the test
 * cuts (frames are held, nothing is closed: what a broken route looks like) and heals. While cut, the broker
 * declares the agent lost and runs the input again on another agent; after healing, the first agent reconnects and
 * delivers the late result of the old attempt, which matches no attempt the broker waits for and is dropped: the
 * call has one result, the retry's, and the cut-off container's usage ends at the last heartbeat.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { spawnAgent } from '../test/test-agent.ts';

const HEARTBEAT_MS = 600;
const dir = mkdtempSync(join(tmpdir(), 'gpubroker-partition-'));
let server: RunningServer;
let broker: Broker;
let relay: Relay;
const children: ChildProcess[] = [];

/** A TCP relay to the broker that can be cut (bytes held both ways, connections left open) and healed. */
class Relay {
  private readonly server: Server;
  private readonly pairs = new Set<[Socket, Socket]>();
  cut = false;
  port = 0;

  constructor(targetPort: number) {
    this.server = createServer((client) => {
      const upstream = connect(targetPort, '127.0.0.1');
      const pair: [Socket, Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk) => {
          if (!this.cut) to.write(chunk);
        });
      forward(client, upstream);
      forward(upstream, client);
      const end = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      for (const socket of pair) {
        socket.on('error', end);
        // A close on one side reaches the other only while the link is up.
        socket.on('close', () => {
          if (!this.cut) end();
        });
      }
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) =>
      this.server.listen(0, '127.0.0.1', () => {
        this.port = (this.server.address() as { port: number }).port;
        resolve();
      }),
    );
  }

  /** The route comes back: connections that died meanwhile are closed on both sides, new ones flow. */
  heal(): void {
    this.cut = false;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  close(): Promise<void> {
    this.heal();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function startAgent(brokerUrl: string, instanceId: string, tokenFile: string): void {
  children.push(
    spawnAgent(
      {
        broker: brokerUrl,
        stateDir: join(dir, `agent-${instanceId}`),
        args: ['--token-file', tokenFile, '--instance-id', instanceId, '--virtual-gpus', '8xH100'],
      },
      { stdio: 'ignore', env: { ...process.env, GPUBROKER_LOG: 'silent' } },
    ),
  );
}

let work: FunctionHandle<[[number, number]], { x: number; container: string }>;
let instances: string[] = [];
let tokenFile = '';

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 21,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
    agentHeartbeatMs: HEARTBEAT_MS,
  });
  await server.broker.setPolicy(
    {
      ...FAST_POLICY,
      buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 16, fraction: 0 } } },
    },
    'test',
  );
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  instances = (
    await until(
      'two running instances',
      async () => {
        const live = server.broker.fleet.all().filter((i) => i.state === 'running');
        return live.length >= 2 ? live.slice(0, 2) : undefined;
      },
      60_000,
    )
  ).map((i) => i.id);
  relay = new Relay(Number(new URL(server.url).port));
  await relay.listen();
  const { token } = await broker.call<{ token: string }>('POST', '/v1/tokens/join', {});
  tokenFile = join(dir, 'join-token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  // Only the agent behind the relay at first, so that the first attempt runs there.
  startAgent(`http://127.0.0.1:${relay.port}`, instances[0] as string, tokenFile);
  await until('the first agent', async () =>
    server.broker.agents?.placeable(instances[0] as string) ? true : undefined,
  );
  const { exports } = await deployModule(broker, 'test/fixtures/agent-app.ts', true);
  work = (exports as Record<string, typeof work>).work as typeof work;
}, 120_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await relay?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a partitioned agent', () => {
  it('loses its input to another agent; its late result is dropped, the call has one result', async () => {
    const [cutOff, other] = instances as [string, string];
    const call = await work.spawn([1, 4_000]);
    const running = await until('the input running behind the relay', async () => {
      const view = server.broker.runtime.get(call.id);
      return view?.status === 'running' ? view : undefined;
    });
    const startedAt = Date.now();
    const firstContainer = running.containerId as string;
    expect(server.broker.runtime.containers().find((c) => c.containerId === firstContainer)?.instanceId).toBe(
      cutOff,
    );
    startAgent(server.url, other, tokenFile);
    await until('the second agent', async () => (server.broker.agents?.placeable(other) ? true : undefined));

    relay.cut = true;
    const cutAt = Date.now();
    const result = await call.get({ timeoutMs: 60_000 });
    // Run again on the other agent once the first was lost (3 heartbeats of silence since its last frame).
    expect(Date.now() - cutAt).toBeGreaterThanOrEqual(2 * HEARTBEAT_MS);
    expect(result.x).toBe(1);
    expect(result.container).not.toBe(firstContainer);
    // Another container of the lost agent may have been tried in between (it learns of each exit in turn).
    const attempts = server.broker.runtime.get(call.id)?.attempts as number;
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(
      server.broker.runtime.containers().find((c) => c.containerId === result.container)?.instanceId,
    ).toBe(other);

    // The link comes back once the first attempt has finished behind it: the first agent reconnects and sends
    // that late result from its outbox; nothing changes.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, startedAt + 4_500 - Date.now())));
    relay.heal();
    await until(
      'the first agent back',
      async () => (server.broker.agents?.placeable(cutOff) ? true : undefined),
      30_000,
    );
    await new Promise((resolve) => setTimeout(resolve, 4 * HEARTBEAT_MS));
    expect(await call.get()).toEqual(result);
    expect(server.broker.runtime.get(call.id)).toMatchObject({ status: 'succeeded', attempts });
    // The cut-off container's usage ended when the broker last heard from its agent, not when the link healed.
    await server.broker.meter.flush();
    const interval = (await server.broker.usage.intervals()).find((i) => i.id === firstContainer);
    expect(interval?.endMs).toBeDefined();
    expect(interval?.endMs as number).toBeLessThanOrEqual(cutAt + HEARTBEAT_MS);
  }, 120_000);
});
