/**
 * Functions end to end: a real broker on HTTP (PGlite, simulated AWS with fast boots), a module bundled with esbuild
 * and deployed through the API, containers as real child processes, and the SDK's remote / map / spawn.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simScenario } from '../../providers/sim/scenario.ts';
import type { FunctionHandle } from '../../sdk/app.ts';
import { deployModule } from '../../sdk/cli/run.ts';
import { Broker, BrokerApiError, RemoteFunctionError } from '../../sdk/index.ts';
import { runCli } from '../../test/cli-process.ts';
import { FAST_AWS_SCENARIO, FAST_POLICY, until } from '../../test/fast-aws.ts';
import { type RunningServer, startServer } from '../server.ts';

const dir = mkdtempSync(join(tmpdir(), 'gpubroker-functions-'));
let server: RunningServer;
let broker: Broker;
let fns: Record<string, FunctionHandle<unknown[], unknown>>;

beforeAll(async () => {
  server = await startServer({
    port: 0,
    dataDir: join(dir, 'data'),
    seed: 4,
    scenario: simScenario(FAST_AWS_SCENARIO as never),
  });
  await server.broker.setPolicy(FAST_POLICY, 'test');
  broker = new Broker({ url: server.url, token: server.operatorToken as string });
  const { exports } = await deployModule(broker, 'test/fixtures/functions-app.ts', true);
  fns = exports as typeof fns;
});
afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const fn = <A extends unknown[], R>(name: string) => fns[name] as unknown as FunctionHandle<A, R>;

describe('functions', () => {
  it('runs remote calls in containers, and map in order or as they finish', async () => {
    expect(await fn<[number], number>('square').remote(7)).toBe(49);
    const inputs = Array.from({ length: 200 }, (_, i) => i);
    const ordered: number[] = [];
    for await (const y of fn<[number], number>('square').map(inputs)) ordered.push(y);
    expect(ordered).toEqual(inputs.map((x) => x * x));
    const unordered: number[] = [];
    for await (const y of fn<[number], number>('square').map(inputs, { orderOutputs: false, window: 50 }))
      unordered.push(y);
    expect(unordered.sort((a, b) => a - b)).toEqual(inputs.map((x) => x * x));
  });

  it('finds a deployed function by name from another client', async () => {
    const other = new Broker({ url: server.url, token: server.operatorToken as string });
    const square = other.functions.lookup<[number], number>('fixture', 'square');
    expect(await square.remote(9)).toBe(81);
  });

  it('answers a quick remote in the submit itself (waitMs): one request', async () => {
    const answer = await broker.api('post', '/v1/apps/{name}/functions/{fn}/calls', {
      params: { name: 'fixture', fn: 'square' },
      body: { inputs: [[5]], waitMs: 30_000 },
    });
    expect(answer.calls).toMatchObject([{ id: answer.callIds[0], status: 'succeeded', value: 25 }]);
    // Without waitMs the answer is the ids alone, as before.
    const queued = await broker.api('post', '/v1/apps/{name}/functions/{fn}/calls', {
      params: { name: 'fixture', fn: 'square' },
      body: { inputs: [[6]] },
    });
    expect(Object.keys(queued)).toEqual(['callIds']);
    // The SDK's remote is that one request when the call is quick.
    const requests: string[] = [];
    const counting = new Broker({ url: server.url, token: server.operatorToken as string });
    const send = counting.call.bind(counting);
    counting.call = <T>(method: string, path: string, body?: unknown) => {
      requests.push(`${method} ${path}`);
      return send<T>(method, path, body);
    };
    const square = counting.functions.lookup<[number], number>('fixture', 'square');
    expect(await square.remote(11)).toBe(121);
    expect(requests).toEqual(['POST /v1/apps/fixture/functions/square/calls']);
  });

  it('spawns calls to get later, and cancels them', async () => {
    const call = await fn<[number], number>('square').spawn(12);
    expect(await call.get({ timeoutMs: 30_000 })).toBe(144);
    const pending = await fn<[number], number>('slow').spawn(300);
    await pending.cancel();
    await expect(pending.get()).rejects.toThrow(/cancelled/);
  });

  it('brings back a thrown error with its remote stack, and fails a call past its timeout', async () => {
    const error = await fn<[string], never>('boom')
      .remote('kaput')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFunctionError);
    expect((error as RemoteFunctionError).message).toBe('kaput');
    expect((error as RemoteFunctionError).remoteStack).toContain('explode');
    expect(fn('boom').functionName).toBe('boom');
    await expect(fn<[number], number>('slow').remote(5_000)).rejects.toThrow(/timed out/);
  });

  it('retries an input whose container crashed', async () => {
    const marker = join(dir, 'crash-marker');
    const call = await fn<[string], string>('crashOnce').spawn(marker);
    expect(await call.get({ timeoutMs: 30_000 })).toBe('survived');
    // The first attempt crashed its container (after leaving the marker); the second one answered.
    expect(readFileSync(marker, 'utf8')).toBe('crashed once');
    expect(server.broker.runtime.get(call.id)).toMatchObject({ status: 'succeeded', attempts: 2 });
  });

  it('falls back along a GPU preference list, with CUDA_VISIBLE_DEVICES set and the host environment kept out', async () => {
    const hostToken = process.env.GPUBROKER_TOKEN;
    process.env.GPUBROKER_TOKEN = 'host-secret';
    const where = await fn<[], { cuda: string; container: string; leaked: string | null }>('whereAmI')
      .remote()
      .finally(() => {
        if (hostToken === undefined) delete process.env.GPUBROKER_TOKEN;
        else process.env.GPUBROKER_TOKEN = hostToken;
      });
    expect(where.cuda).toMatch(/^[0-7]$/);
    expect(where.leaked).toBeNull();
    const container = server.broker.runtime.containers().find((c) => c.containerId === where.container);
    expect(container?.gpu).toBe('H100');
  });

  it('rejects what cannot cross the wire at the call site, and bad options naming the field', async () => {
    await expect(fn<[unknown], unknown>('square').remote(() => 1)).rejects.toThrow(
      /arguments\[0\]: a function/,
    );
    await expect(fn<[unknown], unknown>('square').remote(new Map())).rejects.toThrow(/Map instance/);
    const bad = await broker
      .call('PUT', '/v1/apps/bad', { bundleId: '0'.repeat(64), functions: { f: { gpu: 'H100:0' } } })
      .catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(BrokerApiError);
    expect((bad as BrokerApiError).status).toBe(400);
    expect((bad as BrokerApiError).field).toMatch(/^functions\.f\.gpu/);
  });

  it("keeps a tenant's calls and apps from another tenant", async () => {
    const call = await fn<[number], number>('square').spawn(3);
    const other = new Broker({
      url: server.url,
      token: (await server.broker.tokens.create('other', 'tenant')).token,
    });
    const seen = await other.call('GET', `/v1/calls/${call.id}`).catch((e: unknown) => e);
    expect((seen as BrokerApiError).status).toBe(404);
    const apps = await other.call<{ apps: unknown[] }>('GET', '/v1/apps');
    expect(apps.apps).toEqual([]);
  });

  it('runs an app with gpubroker run (a child process); a second run uploads nothing and finds its containers warm, which go after their scale-down window', async () => {
    const args = [
      'run',
      'test/fixtures/run-app.ts',
      '--url',
      server.url,
      '--token',
      server.operatorToken as string,
    ];
    const first = await runCli(args);
    expect(first.code).toBe(0);
    expect(first.stdout).toBe('672400\n');
    expect(first.stderr).toMatch(/\[ctr_[^\]]+\] cubing \d+/);
    // Every line, the last ones too (the run lets the log stream drain before it ends).
    expect(first.stderr.match(/cubing \d+/g)).toHaveLength(40);
    expect(first.stderr).toContain('app runner: cube');
    expect(first.stderr).toContain('app runner: containers kept warm for 8 s');
    const containersOf = (stderr: string) =>
      new Set([...stderr.matchAll(/\[(ctr_[^\]]+)\]/g)].map((m) => m[1]));
    const second = await runCli(args);
    expect(second.code).toBe(0);
    expect(second.stdout).toBe('672400\n');
    expect(second.stderr).toContain('unchanged');
    // The second run's inputs ran in containers of the first.
    const warm = containersOf(first.stderr);
    expect([...containersOf(second.stderr)].some((id) => warm.has(id))).toBe(true);
    // Nobody runs it again: it stops with its containers once they have been idle for 8 s.
    await until('the ended run’s app to stop, and its containers', async () =>
      (await broker.call('GET', '/v1/apps/runner').catch((e: unknown) => e)) instanceof BrokerApiError &&
      !server.broker.runtime.containers().some((c) => c.app === 'runner')
        ? true
        : undefined,
    );
  }, 120_000);
});
