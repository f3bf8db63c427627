/**
 * `App` and its function handles against a fake broker on HTTP that speaks the calls API (submit, wait, get,
 * cancel) and finishes calls when and in the order a test says: naming, the manifest, local calls, wire checks at
 * the call site, `remote`, `spawn` and `get`, and `map` (order, back-pressure window, batches, failures, early exit).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { App, type FunctionHandle, RemoteFunctionError } from './app.ts';
import { Broker } from './broker-client.ts';

interface FakeCall {
  readonly id: string;
  readonly app: string;
  readonly fn: string;
  readonly args: unknown[];
  status: 'pending' | 'succeeded' | 'failed' | 'cancelled';
  value?: unknown;
  error?: { message: string; stack?: string; name: string };
}

/** What a function does in the fake: its value, or an error to report. */
type Behaviour = (fn: string, args: unknown[]) => { value: unknown } | { error: string };

/** `all`: a wait finishes every pending call; `last`: only the newest (calls finish in reverse order). */
type Finishing = 'all' | 'last' | 'never';

class FakeBroker {
  readonly calls = new Map<string, FakeCall>();
  readonly submissions: number[] = [];
  readonly cancelled: string[] = [];
  /** Most calls submitted and not yet reported finished at any time (what the client keeps in flight). */
  maxInFlight = 0;
  finishing: Finishing = 'all';
  /** What a submit with `waitMs` gets: the finished calls (`answer`), or a 400 naming it, as a broker before it. */
  submitWait: 'answer' | 'refuse' = 'answer';
  /** Each request, as `METHOD /path`. */
  readonly requests: string[] = [];
  behaviour: Behaviour = (_fn, args) => ({ value: args });
  private reported = new Set<string>();
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    const server = createServer((request, response) => {
      void this.handle(request).then(
        ([status, body]) =>
          response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (error: Error) => response.writeHead(500).end(error.message),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.server = server;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }

  private async handle(request: IncomingMessage): Promise<[number, unknown]> {
    let text = '';
    for await (const chunk of request) text += chunk;
    const body = text ? JSON.parse(text) : undefined;
    const url = new URL(request.url ?? '/', this.url);
    const submit = /^\/v1\/apps\/([^/]+)\/functions\/([^/]+)\/calls$/.exec(url.pathname);
    const one = /^\/v1\/calls\/([^/]+)$/.exec(url.pathname);
    this.requests.push(`${request.method} ${url.pathname}`);
    if (request.method === 'POST' && submit) {
      if (body.waitMs !== undefined && this.submitWait === 'refuse')
        return [
          400,
          { title: 'Invalid request', status: 400, detail: 'waitMs: unknown field', field: 'waitMs' },
        ];
      const inputs = body.inputs as unknown[][];
      this.submissions.push(inputs.length);
      const callIds = inputs.map((args) => {
        const id = `call-${this.calls.size}`;
        this.calls.set(id, {
          id,
          app: submit[1] as string,
          fn: submit[2] as string,
          args,
          status: 'pending',
        });
        return id;
      });
      this.maxInFlight = Math.max(
        this.maxInFlight,
        this.calls.size - this.reported.size - this.cancelled.length,
      );
      if (body.waitMs === undefined) return [202, { callIds }];
      this.finish();
      const calls = callIds.map((id) => this.calls.get(id) as FakeCall).filter((c) => c.status !== 'pending');
      for (const call of calls) this.reported.add(call.id);
      return [202, { callIds, calls: calls.map(view) }];
    }
    if (request.method === 'POST' && url.pathname === '/v1/calls/wait') {
      this.finish();
      const finished = (body.callIds as string[])
        .map((id) => this.calls.get(id) as FakeCall)
        .filter((call) => call.status !== 'pending');
      for (const call of finished) this.reported.add(call.id);
      return [200, { calls: finished.map(view) }];
    }
    if (request.method === 'GET' && one) {
      const call = this.calls.get(one[1] as string) as FakeCall;
      // A long poll: answers once the call has finished (as the test lets calls finish) or waitMs passed.
      const until = Date.now() + Number(url.searchParams.get('waitMs') ?? 0);
      for (;;) {
        this.finish();
        if (call.status !== 'pending' || Date.now() >= until) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return [200, view(call)];
    }
    if (request.method === 'DELETE' && one) {
      const call = this.calls.get(one[1] as string) as FakeCall;
      this.cancelled.push(call.id);
      if (call.status === 'pending') call.status = 'cancelled';
      return [200, view(call)];
    }
    return [404, { title: 'Not found', status: 404, detail: `${request.method} ${url.pathname}` }];
  }

  private finish(): void {
    if (this.finishing === 'never') return;
    const pending = [...this.calls.values()].filter((c) => c.status === 'pending');
    for (const call of this.finishing === 'last' ? pending.slice(-1) : pending) {
      const outcome = this.behaviour(call.fn, call.args);
      if ('value' in outcome) Object.assign(call, { status: 'succeeded', value: outcome.value });
      else
        Object.assign(call, {
          status: 'failed',
          error: {
            message: outcome.error,
            name: 'Error',
            stack: `Error: ${outcome.error}\n    at remote (app.ts:1:1)`,
          },
        });
    }
  }
}

const view = (call: FakeCall) => ({
  id: call.id,
  status: call.status,
  ...(call.value === undefined ? {} : { value: call.value }),
  ...(call.error ? { error: call.error } : {}),
  attempts: 1,
  createdAtMs: 0,
});

let fake: FakeBroker;
let app: App;
let square: FunctionHandle<[number], number>;

beforeEach(async () => {
  fake = new FakeBroker();
  await fake.start();
  fake.behaviour = (fn, args) => {
    const x = args[0] as number;
    if (fn === 'square' && x < 0) return { error: `negative: ${x}` };
    return { value: x * x };
  };
  app = new App('demo').connect(new Broker({ url: fake.url, token: 'test' }));
  square = app.function({ gpu: 'H100' }, async (x: number) => x * x);
  app.nameFrom({ square });
});
afterEach(() => fake.stop());

const collect = async <T>(items: AsyncIterable<T>): Promise<T[]> => {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
};

describe('App', () => {
  it('refuses a name the broker would refuse', () => {
    expect(() => new App('Demo')).toThrow(TypeError);
    expect(() => new App('-demo')).toThrow(/lower-case letters/);
    expect(() => new App('a'.repeat(64))).toThrow(TypeError);
    expect(new App('a'.repeat(63)).name).toHaveLength(63);
  });

  it('names functions by options.name, else by their export, else by the implementation, and lists them', () => {
    const named = new App('names');
    const explicit = named.function({ gpu: 'H100', name: 'chosen' }, async () => 1);
    const exported = named.function({ gpu: 'L4', maxContainers: 2 }, async () => 2);
    const byImplementation = named.function({ gpu: 'A10G' }, async function implementation() {
      return 3;
    });
    expect(exported.functionName).toBeUndefined();
    named.nameFrom({
      fromExport: exported,
      renamed: explicit,
      other: new App('other').function({ gpu: 'H100' }, async () => 0),
    });
    expect([explicit.functionName, exported.functionName, byImplementation.functionName]).toEqual([
      'chosen',
      'fromExport',
      'implementation',
    ]);
    expect(named.manifest()).toEqual({
      chosen: { gpu: 'H100' },
      fromExport: { gpu: 'L4', maxContainers: 2 },
      implementation: { gpu: 'A10G' },
    });
    expect(named.__gpubrokerFunction('fromExport')).toBe(exported);
    expect(named.__gpubrokerFunction('nope')).toBeUndefined();
  });

  it('refuses a manifest with an unnamed or a twice-named function', () => {
    const unnamed = new App('unnamed');
    unnamed.function({ gpu: 'H100' }, async () => 1);
    expect(() => unnamed.manifest()).toThrow(/has no name: export it, or pass \{ name \}/);
    const twice = new App('twice');
    twice.function({ gpu: 'H100', name: 'f' }, async () => 1);
    twice.function({ gpu: 'L4', name: 'f' }, async () => 2);
    expect(() => twice.manifest()).toThrow(/defines the function "f" twice/);
  });

  it('runs a handle called directly here, without the broker', async () => {
    expect(await square(7)).toBe(49);
    expect(fake.calls.size).toBe(0);
  });
});

describe('remote calls', () => {
  it('runs remote and spawn on the broker, and brings back the value or the remote error', async () => {
    expect(await square.remote(9)).toBe(81);
    const call = await square.spawn(-2);
    expect(fake.calls.get(call.id)).toMatchObject({ app: 'demo', fn: 'square', args: [-2] });
    const error = await call.get().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFunctionError);
    expect(error).toMatchObject({ message: 'negative: -2', remoteName: 'Error', callId: call.id });
    expect((error as RemoteFunctionError).remoteStack).toContain('at remote (app.ts:1:1)');
    expect((error as RemoteFunctionError).stack).toContain(`--- remote (call ${call.id}) ---`);
  });

  it('runs a quick remote as one request (the submit waits), and falls back to submit-then-wait on an older broker', async () => {
    expect(await square.remote(4)).toBe(16);
    expect(fake.requests).toEqual(['POST /v1/apps/demo/functions/square/calls']);
    const error = await square.remote(-3).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'RemoteFunctionError', message: 'negative: -3' });
    // Not finished within the submit's wait: waited for as get() does.
    fake.finishing = 'never';
    fake.requests.length = 0;
    const late = square.remote(6);
    await new Promise((resolve) => setTimeout(resolve, 50));
    fake.finishing = 'all';
    expect(await late).toBe(36);
    expect(fake.requests[0]).toBe('POST /v1/apps/demo/functions/square/calls');
    expect(fake.requests.slice(1).every((r) => r.startsWith('GET /v1/calls/'))).toBe(true);
    // A broker from before waitMs on submit answers 400 naming it: submitted again without, then waited for.
    fake.submitWait = 'refuse';
    fake.requests.length = 0;
    expect(await square.remote(5)).toBe(25);
    expect(fake.requests.slice(0, 2)).toEqual([
      'POST /v1/apps/demo/functions/square/calls',
      'POST /v1/apps/demo/functions/square/calls',
    ]);
    expect(fake.submissions.slice(-1)).toEqual([1]);
  });

  it('refuses what cannot cross the wire before sending anything, and a function with no name', async () => {
    const takesAnything = app.function({ gpu: 'H100', name: 'anything' }, async (x: unknown) => x);
    await expect(takesAnything.remote(() => 1)).rejects.toThrow(/^arguments\[0\]: a function/);
    await expect(collect(takesAnything.map([1, new Map()]))).rejects.toThrow(/^inputs\[1\]\[0\]: .*Map/);
    const nameless = new App('nameless').connect(new Broker({ url: fake.url, token: 'test' }));
    const anonymous = nameless.function({ gpu: 'H100' }, (async (x: number) => x) as never) as FunctionHandle<
      [number],
      number
    >;
    await expect(anonymous.remote(1)).rejects.toThrow(/has no name yet/);
    expect(fake.submissions).toEqual([]);
  });

  it('gives up waiting on a call after timeoutMs, and cancels it', async () => {
    fake.finishing = 'never';
    const call = await square.spawn(3);
    await expect(call.get({ timeoutMs: 50 })).rejects.toThrow(`call ${call.id} not finished within 50 ms`);
    await call.cancel();
    expect(fake.cancelled).toEqual([call.id]);
    await expect(call.get()).rejects.toThrow('the call was cancelled');
  });
});

describe('map', () => {
  const inputs = Array.from({ length: 10 }, (_, i) => i);

  it('yields in input order while calls finish in reverse, or as they finish', async () => {
    fake.finishing = 'last';
    expect(await collect(square.map(inputs))).toEqual(inputs.map((x) => x * x));
    fake.finishing = 'last';
    const unordered = await collect(square.map(inputs, { orderOutputs: false }));
    expect(unordered).toEqual(inputs.map((x) => x * x).reverse());
  });

  it('keeps at most `window` inputs in flight', async () => {
    fake.finishing = 'last';
    expect(await collect(square.map(inputs, { window: 3 }))).toEqual(inputs.map((x) => x * x));
    expect(fake.maxInFlight).toBe(3);
    expect(Math.max(...fake.submissions)).toBeLessThanOrEqual(3);
  });

  it('refills the window once a quarter of it is free, not result by result', async () => {
    fake.finishing = 'last';
    const many = Array.from({ length: 20 }, (_, i) => i);
    const results = await collect(square.map(many, { orderOutputs: false, window: 8 }));
    expect(results.sort((a, b) => a - b)).toEqual(many.map((x) => x * x));
    expect(fake.submissions).toEqual([8, 2, 2, 2, 2, 2, 2]);
  });

  it('submits in batches of at most 500 inputs', async () => {
    const many = Array.from({ length: 1_200 }, (_, i) => i);
    expect(await collect(square.map(many))).toEqual(many.map((x) => x * x));
    expect(fake.submissions).toEqual([500, 500, 200]);
  });

  it('takes async iterables, and starmap takes whole argument lists', async () => {
    async function* numbers() {
      yield 2;
      yield 3;
    }
    expect(await collect(square.map(numbers()))).toEqual([4, 9]);
    const add = app.function({ gpu: 'H100', name: 'add' }, async (a: number, b: number) => a + b);
    fake.behaviour = (_fn, args) => ({ value: (args[0] as number) + (args[1] as number) });
    expect(
      await collect(
        add.starmap([
          [1, 2],
          [3, 4],
        ]),
      ),
    ).toEqual([3, 7]);
  });

  it('throws the first failure in input order, or yields failures in place when asked', async () => {
    fake.finishing = 'last';
    const mixed = [1, -1, 2, 3];
    await expect(collect(square.map(mixed))).rejects.toThrow(RemoteFunctionError);
    const results: unknown[] = await collect(square.map(mixed, { returnExceptions: true }));
    expect(results.map((r) => (r instanceof RemoteFunctionError ? r.message : r))).toEqual([
      1,
      'negative: -1',
      4,
      9,
    ]);
  });

  it('cancels the calls still in flight when a failure is thrown', async () => {
    fake.finishing = 'last';
    const thrown = await collect(square.map([1, 2, 3, -1], { orderOutputs: false })).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(RemoteFunctionError);
    expect((thrown as RemoteFunctionError).message).toBe('negative: -1');
    expect(fake.cancelled.sort()).toEqual(['call-0', 'call-1', 'call-2']);
  });

  it('cancels what is in flight when the caller stops early', async () => {
    fake.finishing = 'last';
    for await (const y of square.map(inputs, { orderOutputs: false, window: 4 })) {
      expect(y).toBe(9);
      break;
    }
    expect(fake.cancelled.sort()).toEqual(['call-0', 'call-1', 'call-2']);
  });
});
