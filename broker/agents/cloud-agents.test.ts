/**
 * Agents of cloud instances: the broker (in-memory PGlite) buys from the AWS adapter pointed at a fake EC2, and its
 * hub listens on a real HTTP server. A launch carries the start-up script as UserData with a join token bound to
 * the launch; a launch repeated after an outage and a restart sends the same script; the token joins each
 * instance of its launch once, and nothing else. The join watchdog gives up on an instance whose agent never
 * joins: it ends as failed, is terminated, and the next tick replaces it. Also: `serve` with a real cloud needs
 * --public-url, and ARM ids compare case-insensitively.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../agent/protocol.ts';
import { RealClock, VirtualClock } from '../../lib/clock.ts';
import { StartupError } from '../../lib/errors.ts';
import { createAwsProvider } from '../../providers/aws/aws-provider.ts';
import { FakeEc2 } from '../../providers/aws/testing/fake-ec2.ts';
import { loadCatalog } from '../../providers/catalog/load-catalog.ts';
import type { Provider } from '../../providers/provider.ts';
import { emptyDatabase } from '../../test/empty-database.ts';
import { until } from '../../test/fast-aws.ts';
import { BrokerCore } from '../broker.ts';
import { actions, instances } from '../db/schema.ts';
import type { Fleet, LiveInstance } from '../fleet.ts';
import { startServer } from '../server.ts';
import { AGENT_CONNECT_PATH, sameInstanceId } from './agent-hub.ts';
import { JoinWatchdog } from './join-watchdog.ts';

const clock = new RealClock();
const catalog = loadCatalog();
const POLICY = {
  spotMaxShare: 0,
  vendors: { allow: ['aws'], deny: [] },
  regions: { allow: ['us-east-1'], deny: [] },
  buffer: { default: { gpus: 0, fraction: 0 }, perGpu: { A10G: { gpus: 2, fraction: 0 } } },
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A fake EC2 with one zone and one instance type (g5.xlarge, 1 A10G), and an HTTP server for the agents. */
async function cloudAndServer() {
  const fake = new FakeEc2({
    zones: { 'us-east-1': ['us-east-1a'] },
    instanceTypes: { 'g5.xlarge': { vcpus: 4 } },
    bootDelayMs: 60,
    terminateDelayMs: 60,
  });
  const endpoint = await fake.start();
  cleanups.push(() => fake.close());
  const server: Server = createServer((_request, response) => response.writeHead(404).end());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { fake, endpoint, server, url };
}

async function awsProvider(endpoint: string): Promise<Provider> {
  const provider = await createAwsProvider({
    clock,
    regions: ['us-east-1'],
    launch: { imageId: 'ami-0123456789abcdef0' },
    brokerId: 'cloud-agents-test',
    credentials: { accessKeyId: 'AKIDFAKEEC2', secretAccessKey: 'fake-secret' },
    endpoint,
    pollIntervalMs: 25,
    backoff: { baseDelayMs: 10, maxDelayMs: 100, maxRetries: 1 },
    offerings: catalog,
  });
  return provider;
}

async function brokerOn(
  database: Awaited<ReturnType<typeof emptyDatabase>>,
  provider: Provider,
  server: Server,
  url: string,
  agentJoinTimeoutMs = 600_000,
): Promise<BrokerCore> {
  const broker = new BrokerCore({
    database,
    clock,
    providers: [provider],
    seed: 7,
    agentHeartbeatMs: 60_000,
    agentBootstrap: { brokerUrl: url, vendors: ['aws'], version: '1.2.3' },
    agentJoinTimeoutMs,
  });
  // A restarted broker takes the agents' upgrades over from the old one.
  server.removeAllListeners('upgrade');
  broker.agents?.attach(server);
  await broker.setPolicy(POLICY, 'test');
  await broker.start({ schedule: false });
  return broker;
}

/** The join token in an instance's UserData (the script assigns it single-quoted). */
function tokenIn(userData: string | undefined): string {
  const script = Buffer.from(userData ?? '', 'base64').toString('utf8');
  const token = /^JOIN_TOKEN='(gpj_[A-Za-z0-9_-]+)'$/m.exec(script)?.[1];
  if (!token) throw new Error('no join token in the UserData');
  return token;
}

interface JoinAnswer {
  readonly welcome?: { type: string; agentId: string; instanceId: string; credential?: string };
  readonly closed?: { code: number; reason: string };
}

/** Opens an agent connection with `token` and says hello as the agent of `instanceId` (listing `features`). */
function join(url: string, token: string, instanceId: string, features?: string[]): Promise<JoinAnswer> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}${AGENT_CONNECT_PATH}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  cleanups.push(async () => socket.terminate());
  return new Promise((resolve, reject) => {
    socket.once('open', () =>
      socket.send(
        JSON.stringify({
          type: 'hello',
          protocol: PROTOCOL_VERSION,
          agentVersion: '1.2.3',
          instanceId,
          hostname: 'ip-10-0-0-1',
          gpus: [{ index: 0, name: 'A10G' }],
          health: { ok: true, problems: [] },
          labels: {},
          ...(features ? { features } : {}),
          containers: [],
        }),
      ),
    );
    socket.once('message', (data) => resolve({ welcome: JSON.parse(String(data)) }));
    socket.once('close', (code, reason) => resolve({ closed: { code, reason: reason.toString() } }));
    socket.once('unexpected-response', (_request, response) =>
      resolve({ closed: { code: response.statusCode ?? 0, reason: response.statusMessage ?? '' } }),
    );
    socket.once('error', reject);
  });
}

const running = (broker: BrokerCore, count: number) =>
  until(`${count} running instances`, async () => {
    const live = broker.fleet.all().filter((i) => i.state === 'running');
    return live.length >= count ? live : undefined;
  });

describe('cloud instances start their agent with a token bound to their launch', () => {
  it('sends the same script when a launch is repeated after a restart; the token joins each instance of its launch once', async () => {
    const { fake, endpoint, server, url } = await cloudAndServer();
    const database = await emptyDatabase();
    cleanups.push(() => database.close());

    // The first launch meets an outage: its outcome unknown, the action stays pending with its bootstrap.
    fake.failNext('RunInstances', 'AuthFailure');
    const first = await brokerOn(database, await awsProvider(endpoint), server, url);
    const tick = await first.loop.tick();
    expect(tick.provisioned).toBe(0);
    const [pending] = await database.db.select().from(actions);
    expect(pending?.status).toBe('pending');
    expect(pending?.agent).toMatchObject({ brokerUrl: url, version: '1.2.3' });
    expect(pending?.agent?.joinToken).toMatch(/^gpj_/);
    await first.close();

    // Restarted (a new process, a new adapter): the pending launch goes out again with the same script.
    const broker = await brokerOn(database, await awsProvider(endpoint), server, url);
    cleanups.push(() => broker.close());
    await broker.loop.tick();
    const runs = fake.calls('RunInstances');
    expect(runs).toHaveLength(2);
    expect(runs.map((r) => r.status)).toEqual([401, 200]);
    expect(runs[1]?.params.ClientToken).toBe(runs[0]?.params.ClientToken);
    expect(runs[1]?.params.UserData).toBe(runs[0]?.params.UserData);
    const token = tokenIn(runs[1]?.params.UserData);
    expect(token).toBe(pending?.agent?.joinToken);
    // The action is done: the token is no longer kept in clear.
    const [done] = await database.db.select().from(actions);
    expect(done).toMatchObject({ id: pending?.id, status: 'done', agent: null });

    const [a, b] = await running(broker, 2);
    if (!a || !b) throw new Error('two instances expected');
    expect(fake.list().map((i) => tokenIn(i.userData))).toEqual([token, token]);

    // An agent naming an instance of no launch of this token: refused.
    const stranger = await join(url, token, 'i-0123456789abcdef0');
    expect(stranger.closed).toEqual({
      code: 4403,
      reason: 'this join token is not for instance i-0123456789abcdef0',
    });

    // The first join for an instance of the launch: welcomed, with a credential of its own; placeable.
    const joined = await join(url, token, a.id);
    expect(joined.welcome).toMatchObject({ type: 'welcome', instanceId: a.id });
    expect(joined.welcome?.credential).toMatch(/^gpa_/);
    expect(broker.agents?.placeable(a.id)).toBe(true);

    // The same token again for the same instance: refused; the first connection keeps the instance.
    const again = await join(url, token, a.id);
    expect(again.closed).toEqual({
      code: 4403,
      reason: `this join token was used for instance ${a.id} already`,
    });
    expect(broker.agents?.agents().map((x) => x.instanceId)).toEqual([a.id]);

    // The launch's other instance joins once too.
    expect((await join(url, token, b.id, ['tty'])).welcome?.instanceId).toBe(b.id);
    // What each agent can do is what its hello listed: a's (an agent from before `features`) no shell, b's one.
    expect([broker.agents?.supports(a.id, 'tty'), broker.agents?.supports(b.id, 'tty')]).toEqual([
      false,
      true,
    ]);
    expect((await join(url, token, b.id)).closed?.code).toBe(4403);
    expect((await broker.agentRegistry.list()).map((r) => r.instanceId).sort()).toEqual([a.id, b.id].sort());
  }, 60_000);

  it('gives up on an instance whose agent does not join in time: failed, terminated, replaced by the next tick', async () => {
    const { fake, endpoint, server, url } = await cloudAndServer();
    const database = await emptyDatabase();
    cleanups.push(() => database.close());
    const broker = await brokerOn(database, await awsProvider(endpoint), server, url, 3_000);
    cleanups.push(() => broker.close());
    await broker.loop.tick();
    const [a, b] = await running(broker, 2);
    if (!a || !b) throw new Error('two instances expected');
    // One agent joins; the other never does.
    const token = tokenIn(fake.list()[0]?.userData);
    expect((await join(url, token, a.id)).welcome?.instanceId).toBe(a.id);

    const [failed] = await until('the silent instance ended', async () => {
      const rows = await database.db.select().from(instances);
      const ended = rows.filter((r) => r.state === 'terminated');
      return ended.length > 0 ? ended : undefined;
    });
    expect(failed).toMatchObject({ id: b.id, terminationReason: 'failed' });
    expect(failed?.terminatedAt).toBeGreaterThanOrEqual((b.runningAt as number) + 3_000);
    expect(broker.fleet.get(b.id)).toBeUndefined();
    expect(broker.fleet.get(a.id)?.state).toBe('running');
    // Terminated at EC2 through a terminate action.
    await until('EC2 terminated it', async () =>
      fake.list().find((i) => i.id === b.id)?.state === 'terminated' ? true : undefined,
    );
    const terminations = (await database.db.select().from(actions)).filter((r) => r.kind === 'terminate');
    expect(terminations).toMatchObject([{ planId: 'join-watchdog', instanceIds: [b.id], status: 'done' }]);
    // An agent that comes too late is refused.
    expect((await join(url, token, b.id)).closed).toEqual({ code: 4403, reason: `no live instance ${b.id}` });

    // The next tick replaces it, with a launch of its own (a new token).
    const tick = await broker.loop.tick();
    expect(tick.provisioned).toBe(1);
    const replacement = await until('a replacement', async () =>
      broker.fleet.all().find((i) => i.id !== a.id && i.state === 'running'),
    );
    const userData = fake.list().find((i) => i.id === replacement.id)?.userData;
    expect(tokenIn(userData)).not.toBe(token);
    expect(broker.fleet.get(a.id)?.state).toBe('running');
  }, 60_000);
});

describe('JoinWatchdog on a virtual clock', () => {
  const instance = (id: string, vendor: string, runningAt: number | null): LiveInstance => ({
    id,
    vendor,
    offeringId: `${vendor}/x`,
    region: 'r',
    zone: 'z',
    instanceType: 't',
    capacityType: 'on-demand',
    gpu: 'A10G',
    gpusPerInstance: 1,
    microsPerHour: 1,
    launchedAt: 0,
    state: runningAt === null ? 'pending' : 'running',
    runningAt,
    interruptAt: null,
    draining: false,
    allocated: new Map(),
  });

  it('gives up only on running instances of bootstrapped vendors never joined within the timeout, and only as the leader', async () => {
    const vclock = new VirtualClock(0);
    const live = new Map(
      [
        instance('i-late', 'aws', 1_000),
        instance('i-here', 'aws', 1_000),
        instance('i-once', 'aws', 1_000),
        instance('i-young', 'aws', 5_000),
        instance('i-booting', 'aws', null),
        instance('sim-1', 'sim', 1_000),
      ].map((i) => [i.id, i]),
    );
    const fleet = { all: () => [...live.values()], get: (id: string) => live.get(id) } as unknown as Fleet;
    let leader = false;
    const given: string[] = [];
    const asked: string[][] = [];
    const watchdog = new JoinWatchdog({
      clock: vclock,
      logger: pino({ level: 'silent' }),
      fleet,
      vendors: new Set(['aws']),
      timeoutMs: 10_000,
      checkEveryMs: 1_000,
      present: (id) => id === 'i-here',
      joined: async (ids) => {
        asked.push([...ids]);
        return new Set(ids.filter((id) => id === 'i-once'));
      },
      leader: () => leader,
      giveUp: async (lost) => {
        for (const i of lost) {
          given.push(i.id);
          live.delete(i.id);
        }
      },
    });
    watchdog.start();
    await vclock.advanceTo(12_000);
    expect(given).toEqual([]); // a follower leaves the fleet alone
    leader = true;
    await vclock.advanceTo(13_000);
    await watchdog.stop();
    expect(given).toEqual(['i-late']);
    expect(asked).toEqual([['i-late', 'i-once']]);
    // i-young is due at 15 s; i-once is remembered as joined and not asked about again.
    watchdog.start();
    await vclock.advanceTo(15_500);
    await watchdog.stop();
    expect(given).toEqual(['i-late', 'i-young']);
    expect(asked.slice(1)).toEqual([['i-young']]);
  });
});

describe('serve with a real cloud', () => {
  it('needs --public-url, a URL an instance can be given', async () => {
    const missing = await startServer({ port: 0, providers: ['aws'] }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(StartupError);
    expect((missing as Error).message).toMatch(
      /^--public-url: required with aws: the URL at which its instances' agents reach this broker/,
    );
    const bad = await startServer({ port: 0, providers: ['gcp'], publicUrl: 'ftp://broker' }).catch(
      (e: unknown) => e,
    );
    expect((bad as Error).message).toBe('--public-url: must be an http:// or https:// URL');
  });
});

describe('sameInstanceId', () => {
  it('compares ARM ids case-insensitively, others exactly', () => {
    const arm = '/subscriptions/0000/resourceGroups/gpb/providers/Microsoft.Compute/virtualMachines/gpb-1';
    expect(sameInstanceId(arm, arm.toLowerCase())).toBe(true);
    expect(sameInstanceId(arm, `${arm}0`)).toBe(false);
    expect(sameInstanceId('i-0ABC', 'i-0abc')).toBe(false);
    expect(sameInstanceId('us-central1-a/gpb-1', 'us-central1-a/gpb-1')).toBe(true);
  });
});
