/**
 * A network partition made by the kernel: one agent runs in its own network namespace, joined to the host by a
 * veth pair on a private /30, and dials the broker, which listens on the host end's address; another agent runs
 * on the host. The test takes the host end of the link down (frames are dropped on the wire, no FIN or RST
 * reaches either side: a broken route) while an input runs in the namespace. The broker declares that agent
 * lost after three silent heartbeats and runs the input again on the host's agent; once the old attempt has
 * finished behind the cut, the link comes back, the namespaced agent dials again and delivers the late result
 * of the old attempt from its outbox, which matches no attempt the broker waits for and is dropped: the call
 * has one result, the retry's, and the cut-off container's usage ends at its last heartbeat, billed once.
 *
 * `agent/partition.e2e.test.ts` makes the same partition with a TCP relay in this process; this one needs root
 * and `ip netns` (CI runs as root), and is skipped, saying why, where it cannot create a network namespace.
 */
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentMessage } from '../agent/protocol.ts';
import type { AgentHub } from '../broker/agents/agent-hub.ts';
import { type RunningServer, startServer } from '../broker/server.ts';
import { simScenario } from '../providers/sim/scenario.ts';
import type { FunctionHandle } from '../sdk/app.ts';
import { deployModule } from '../sdk/cli/run.ts';
import { Broker } from '../sdk/index.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../test/fast-aws.ts';
import { spawnAgent } from '../test/test-agent.ts';

const HEARTBEAT_MS = 600;
/** How long the input runs: past the namespaced agent's own verdict on the dead link (4 unanswered pings). */
const WORK_MS = 6_000;

// One namespace, veth pair and /30 per run (names: at most 15 characters for an interface).
const runId = randomBytes(4);
const tag = runId.toString('hex');
const NETNS = `gpubroker-${tag}`;
const HOST_IF = `gpbh${tag}`;
const NS_IF = `gpbn${tag}`;
const [r0, r1, r2] = runId as unknown as [number, number, number];
const net = `10.${200 + (r0 % 50)}.${r1}`;
const HOST_ADDR = `${net}.${(r2 & 0xfc) + 1}`;
const NS_ADDR = `${net}.${(r2 & 0xfc) + 2}`;

function ip(...args: string[]): string {
  return execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
}

/**
 * Why this machine cannot run the test, or undefined. Probed once: a namespace is created, entered (as
 * `spawnAgent` enters it) and deleted.
 */
function cannotRun(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'not root (`ip netns add` needs root)';
  const probe = `gpubroker-probe-${tag}`;
  try {
    ip('netns', 'add', probe);
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    return `\`ip netns add\` failed: ${stderr || (error as Error).message}`;
  }
  try {
    execFileSync('nsenter', [`--net=/var/run/netns/${probe}`, '--', 'true'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
    return `\`nsenter --net\` failed: ${stderr || (error as Error).message}`;
  } finally {
    try {
      ip('netns', 'del', probe);
    } catch {
      // Gone or not: the probe answered.
    }
  }
  return undefined;
}

const skipReason = cannotRun();
if (skipReason) console.warn(`partition-netns: skipped: ${skipReason}`);

let dir = '';
let server: RunningServer | undefined;
let broker: Broker;
const children: ChildProcess[] = [];
let netnsCreated = false;
let vethCreated = false;

function startAgent(instanceId: string, tokenFile: string, netns?: string): void {
  children.push(
    spawnAgent(
      {
        broker: (server as RunningServer).url,
        stateDir: join(dir, `agent-${instanceId}`),
        args: ['--token-file', tokenFile, '--instance-id', instanceId, '--virtual-gpus', '8xH100'],
        ...(netns ? { netns } : {}),
      },
      { stdio: 'ignore', env: { ...process.env, GPUBROKER_LOG: 'silent' } },
    ),
  );
}

/** The link between the namespace and the host: the host end goes down (the namespace's end loses its carrier). */
function link(state: 'up' | 'down'): void {
  ip('link', 'set', HOST_IF, state);
}

let work: FunctionHandle<[[number, number]], { x: number; container: string }>;
let instances: string[] = [];
let tokenFile = '';

beforeAll(async () => {
  if (skipReason) return;
  dir = mkdtempSync(join(tmpdir(), 'gpubroker-netns-'));
  ip('netns', 'add', NETNS);
  netnsCreated = true;
  ip('link', 'add', HOST_IF, 'type', 'veth', 'peer', 'name', NS_IF);
  vethCreated = true;
  ip('link', 'set', NS_IF, 'netns', NETNS);
  ip('addr', 'add', `${HOST_ADDR}/30`, 'dev', HOST_IF);
  link('up');
  ip('-n', NETNS, 'addr', 'add', `${NS_ADDR}/30`, 'dev', NS_IF);
  ip('-n', NETNS, 'link', 'set', NS_IF, 'up');
  ip('-n', NETNS, 'link', 'set', 'lo', 'up');

  server = await startServer({
    host: HOST_ADDR,
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 21,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
    agentHost: false,
    agentHeartbeatMs: HEARTBEAT_MS,
  });
  const running = server;
  await running.broker.setPolicy(
    {
      ...FAST_POLICY,
      buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { H100: { gpus: 16, fraction: 0 } } },
    },
    'test',
  );
  broker = new Broker({ url: running.url, token: running.operatorToken as string });
  instances = (
    await until(
      'two running instances',
      async () => {
        const live = running.broker.fleet.all().filter((i) => i.state === 'running');
        return live.length >= 2 ? live.slice(0, 2) : undefined;
      },
      60_000,
    )
  ).map((i) => i.id);
  const { token } = await broker.call<{ token: string }>('POST', '/v1/tokens/join', {});
  tokenFile = join(dir, 'join-token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  // Only the namespaced agent at first, so that the first attempt runs there.
  startAgent(instances[0] as string, tokenFile, NETNS);
  await until(
    'the namespaced agent',
    async () => (running.broker.agents?.placeable(instances[0] as string) ? true : undefined),
    60_000,
  );
  const { exports } = await deployModule(broker, 'test/fixtures/agent-app.ts', true);
  work = (exports as Record<string, typeof work>).work as typeof work;
}, 150_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  if (netnsCreated) {
    // Whatever still runs in the namespace (a container of the killed agent) would keep it, and the veth, alive.
    try {
      for (const pid of ip('netns', 'pids', NETNS).split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // Exited meanwhile.
        }
      }
    } catch {
      // No pids to list.
    }
  }
  if (vethCreated) {
    try {
      ip('link', 'del', HOST_IF); // Both ends go.
    } catch {
      // Gone with the namespace's end.
    }
  }
  if (netnsCreated) {
    try {
      ip('netns', 'del', NETNS);
    } catch (error) {
      console.warn(`partition-netns: cannot delete network namespace ${NETNS}: ${(error as Error).message}`);
    }
  }
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe.skipIf(skipReason !== undefined)(
  `an agent in a network namespace whose link is cut${skipReason ? ` (skipped: ${skipReason})` : ''}`,
  () => {
    it('loses its input to an agent on the host; its late result is dropped, the call has one result', async () => {
      const running = server as RunningServer;
      const hub = running.broker.agents as AgentHub;
      const [cutOff, other] = instances as [string, string];
      // The agent really dials from inside the namespace.
      expect(hub.agents().find((view) => view.instanceId === cutOff)?.addresses).toContain(NS_ADDR);

      // Every result and exit an agent reports, matched to an attempt or a tracked container or not (the hub's
      // routing is private: it is watched, not changed).
      type Report = { type: string; instanceId: string; containerId: string; callId?: string };
      const reports: Report[] = [];
      const routed = hub as unknown as {
        routeContainer(session: { instanceId: string }, message: AgentMessage): void;
      };
      const route = routed.routeContainer.bind(hub);
      routed.routeContainer = (session, message) => {
        if (message.type === 'result' || message.type === 'exited')
          reports.push({
            type: message.type,
            instanceId: session.instanceId,
            containerId: message.containerId,
            ...(message.type === 'result' ? { callId: message.callId } : {}),
          });
        route(session, message);
      };
      const results = () => reports.filter((r) => r.type === 'result');
      // When the hub declares an agent lost, and when it last heard from it.
      const losses: { instanceId: string; lastSeenAtMs: number; atMs: number }[] = [];
      const declaring = hub as unknown as {
        declareLost(instanceId: string, reason: string, lastSeenAtMs: number): void;
      };
      const declareLost = declaring.declareLost.bind(hub);
      declaring.declareLost = (instanceId, reason, lastSeenAtMs) => {
        losses.push({ instanceId, lastSeenAtMs, atMs: Date.now() });
        declareLost(instanceId, reason, lastSeenAtMs);
      };

      const call = await work.spawn([1, WORK_MS]);
      const started = await until('the input running in the namespace', async () => {
        const view = running.broker.runtime.get(call.id);
        return view?.status === 'running' ? view : undefined;
      });
      const startedAt = Date.now();
      const firstContainer = started.containerId as string;
      expect(
        running.broker.runtime.containers().find((c) => c.containerId === firstContainer)?.instanceId,
      ).toBe(cutOff);

      link('down');
      const cutAt = Date.now();
      startAgent(other, tokenFile);
      await until('the host agent', async () => (hub.placeable(other) ? true : undefined), 60_000);
      const result = await call.get({ timeoutMs: 90_000 });
      // Run again on the host's agent once the namespaced one was lost (3 heartbeats of silence).
      expect(Date.now() - cutAt).toBeGreaterThanOrEqual(2 * HEARTBEAT_MS);
      expect(hub.placeable(cutOff)).toBe(false);
      expect(result.x).toBe(1);
      expect(result.container).not.toBe(firstContainer);
      const attempts = running.broker.runtime.get(call.id)?.attempts as number;
      expect(attempts).toBeGreaterThanOrEqual(2);
      expect(
        running.broker.runtime.containers().find((c) => c.containerId === result.container)?.instanceId,
      ).toBe(other);

      // The link comes back once the old attempt has finished behind it (it ran WORK_MS from about startedAt), by
      // when the namespaced agent has given up its dead connection (a result written into that one would die
      // with it) and keeps the result in its outbox: it dials again and sends that late result; nothing changes.
      const finishedBehindTheCut = startedAt + WORK_MS + 500;
      await until('the old attempt finished behind the cut', async () =>
        Date.now() >= finishedBehindTheCut ? true : undefined,
      );
      link('up');
      const healedAt = Date.now();
      // Lost once, while the link was down, after a lost period of silence.
      const lost = losses.filter((l) => l.instanceId === cutOff);
      expect(lost).toHaveLength(1);
      const [{ lastSeenAtMs, atMs: lostAt }] = lost as [(typeof lost)[number]];
      expect(lostAt).toBeGreaterThanOrEqual(lastSeenAtMs + hub.lostAfterMs);
      expect(lostAt).toBeLessThan(healedAt);
      // Nothing crossed the cut link: what the broker heard last was sent before it (read late when this
      // process was busy, as it is on a loaded machine), not during the lost period after it.
      expect(lastSeenAtMs).toBeLessThan(cutAt + hub.lostAfterMs);
      await until(
        'the namespaced agent back',
        async () => (hub.placeable(cutOff) ? true : undefined),
        60_000,
      );
      const late = await until(
        'the late result of the old attempt',
        async () => results().find((r) => r.callId === call.id && r.instanceId === cutOff),
        30_000,
      );
      expect(late.containerId).toBe(firstContainer);
      // One result each way: the retry's (taken) and the old attempt's (dropped).
      expect(results().filter((r) => r.callId === call.id)).toEqual([
        { type: 'result', instanceId: other, containerId: result.container, callId: call.id },
        { type: 'result', instanceId: cutOff, containerId: firstContainer, callId: call.id },
      ]);
      expect(await call.get()).toEqual(result);
      expect(running.broker.runtime.get(call.id)).toMatchObject({ status: 'succeeded', attempts });

      // The agent came back still running the cut-off container: the broker stops it rather than adopting it
      // (it was failed at the loss and its input ran elsewhere), so it holds no GPU unbilled.
      await until(
        'the cut-off container stopped',
        async () =>
          reports.find(
            (r) => r.type === 'exited' && r.instanceId === cutOff && r.containerId === firstContainer,
          ),
        30_000,
      );
      expect(running.broker.runtime.containers().map((c) => c.containerId)).not.toContain(firstContainer);
      expect(running.broker.meter.openIntervals().map((i) => i.intervalId)).not.toContain(firstContainer);

      // Its usage ended when the broker last heard from its agent, not when the link came back, and it is billed
      // once: one interval, closed at the agent's last frame.
      await running.broker.meter.flush();
      const intervals = await running.broker.usage.intervals();
      const cutOffIntervals = intervals.filter((i) => i.id === firstContainer);
      expect(cutOffIntervals).toHaveLength(1);
      const interval = cutOffIntervals[0] as (typeof intervals)[number];
      expect(interval.endMs).toBeDefined();
      expect(interval.endMs).toBe(lastSeenAtMs);
      // What is billed runs to that end, not to the meter's later checkpoints.
      expect(interval.observedEndMs).toBe(interval.endMs);
    }, 150_000);
  },
);
