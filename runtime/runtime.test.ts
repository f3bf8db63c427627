import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { NotFoundError } from '../lib/errors.ts';
import { IdGenerator } from '../lib/ids.ts';
import { Random } from '../lib/random.ts';
import { emptyDatabase } from '../test/empty-database.ts';
import type { FreeGpuSlot } from './capacity.ts';
import {
  type ContainerExit,
  ContainerExitedError,
  type ContainerHandle,
  type ContainerSpec,
  type Executor,
  InputNotStartedError,
  type LogLine,
  RemoteError,
} from './executor/executor.ts';
import { type FunctionOptions, parseFunctionOptions } from './function-spec.ts';
import { MemoryCapacity, type MemoryInstance } from './memory-capacity.ts';
import { Meter } from './meter/meter.ts';
import { usageIntervals } from './meter/schema.ts';
import { UsageStore } from './meter/usage-store.ts';
import type { RunningContainer } from './reconciler.ts';
import {
  type CallOutcome,
  MAX_QUEUED_PER_SLOT,
  PROBE_CONTAINERS,
  Runtime,
  type RuntimeLogLine,
} from './runtime.ts';

const START = Date.UTC(2026, 10, 23);
const TICK = 1_000;

// ——— an in-process executor, only for these tests (the real one runs child processes) ———

/** Thrown by a test function to make its container die (like a segfault or an OOM kill). */
class Crash extends Error {}

interface Ctx {
  readonly containerId: string;
  readonly callId: string;
  readonly spec: ContainerSpec;
  sleep(ms: number): Promise<void>;
  log(text: string): void;
}
type TestFunction = (args: readonly unknown[], ctx: Ctx) => unknown;

class InProcessExecutor implements Executor {
  readonly started: ContainerSpec[] = [];
  readonly handles = new Map<string, ContainerHandle>();
  /** Order in which inputs began, as `tenant:arg` or the callId. */
  readonly began: string[] = [];
  /** Most inputs one container ran at once. */
  maxInFlight = 0;
  coldStartMs = 2_000;
  /** A crash leaves the inputs in flight unanswered (a process that died mid-reply): the runtime settles them. */
  orphanInputsOnCrash = false;
  /** A start failure reason for a container, if it should fail to start. */
  failStart: ((spec: ContainerSpec) => string | undefined) | undefined;
  /** Inputs beyond a container's concurrency wait their turn next to it (as the agents' executor does). */
  queuesInputs = false;
  /** Most inputs one container held at once, running and waiting. */
  maxHeld = 0;

  constructor(
    private readonly clock: VirtualClock,
    private readonly functions: Record<string, TestFunction>,
  ) {}

  start(spec: ContainerSpec): ContainerHandle {
    this.started.push(spec);
    const { clock } = this;
    const id = spec.containerId;
    let state: 'starting' | 'ready' | 'exited' = 'starting';
    const inFlight = new Map<string, (error: Error) => void>();
    /** Inputs waiting for a slot (queuesInputs): start one, or fail it when the container ends. */
    const waiting: { begin(): void; fail(error: Error): void }[] = [];
    const ranListeners = new Set<(callId: string, ranMs: number) => void>();
    const listeners = new Set<(line: LogLine) => void>();
    let resolveExit!: (exit: ContainerExit) => void;
    const exited = new Promise<ContainerExit>((resolve) => {
      resolveExit = resolve;
    });
    const exit = (reason: string, code: number | null, crashed = false) => {
      if (state === 'exited') return;
      state = 'exited';
      if (!(crashed && this.orphanInputsOnCrash))
        for (const fail of [...inFlight.values()]) fail(new ContainerExitedError(id, reason));
      for (const w of waiting.splice(0)) w.fail(new InputNotStartedError(id, reason));
      resolveExit({ code, signal: null, reason });
    };
    const ready = clock.sleep(this.coldStartMs).then(() => {
      if (state === 'exited') throw new Error('stopped while starting');
      const failure = this.failStart?.(spec);
      if (failure) {
        exit(`failed to load bundle: ${failure}`, 1);
        throw new Error(failure);
      }
      state = 'ready';
    });
    const fn = this.functions[spec.functionName];
    const invoke = (
      callId: string,
      args: readonly unknown[],
      options: { timeoutMs?: number } | undefined,
    ): Promise<unknown> => {
      if (state !== 'ready') return Promise.reject(new ContainerExitedError(id, 'not running'));
      return new Promise((resolve, reject) => {
        let done = false;
        const startedAtMs = clock.now();
        const timer =
          options?.timeoutMs === undefined
            ? undefined
            : clock.setTimer(clock.now() + options.timeoutMs, () => exit('killed: input timed out', null));
        const settle = (ok: boolean, value: unknown) => {
          if (done) return;
          done = true;
          timer?.cancel();
          inFlight.delete(callId);
          if (ok || value instanceof RemoteError)
            for (const listener of ranListeners) listener(callId, clock.now() - startedAtMs);
          if (ok) resolve(value);
          else reject(value);
          if (state === 'ready' && inFlight.size < spec.concurrency) waiting.shift()?.begin();
        };
        inFlight.set(callId, (error) => settle(false, error));
        this.maxInFlight = Math.max(this.maxInFlight, inFlight.size);
        this.began.push(typeof args[0] === 'string' ? args[0] : callId);
        const ctx: Ctx = {
          containerId: id,
          callId,
          spec,
          sleep: (ms) => clock.sleep(ms),
          log: (text) => {
            for (const l of listeners) l({ containerId: id, stream: 'stdout', text, atMs: clock.now() });
          },
        };
        Promise.resolve()
          .then(() => {
            if (!fn) throw new Error(`no function ${spec.functionName} in the bundle`);
            return fn(args, ctx);
          })
          .then(
            (value) => settle(true, value),
            (error: Error) => {
              if (error instanceof Crash) exit('crashed (exit 1)', 1, true);
              else settle(false, new RemoteError(error.message, error.stack, error.name));
            },
          );
      });
    };
    const handle: ContainerHandle = {
      containerId: id,
      ready,
      exited,
      invoke: (callId, args, options) => {
        this.maxHeld = Math.max(this.maxHeld, inFlight.size + waiting.length + 1);
        if (!this.queuesInputs || state !== 'ready' || inFlight.size < spec.concurrency)
          return invoke(callId, args, options);
        return new Promise((resolve, reject) => {
          waiting.push({ begin: () => invoke(callId, args, options).then(resolve, reject), fail: reject });
        });
      },
      stop: () => {
        exit('stopped', 0);
        return exited;
      },
      onLog: (listener) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      onInputRan: (listener) => {
        ranListeners.add(listener);
        return () => ranListeners.delete(listener);
      },
    };
    this.handles.set(id, handle);
    return handle;
  }

  /** Containers taken over after a restart (`adopt`), with whether they were ready. */
  readonly adopted: { spec: ContainerSpec; ready: boolean }[] = [];

  /** Takes over a container its agent still runs: ready at once when it was, else after the cold start's rest. */
  adopt(spec: ContainerSpec, ready: boolean): ContainerHandle {
    this.adopted.push({ spec, ready });
    const coldStartMs = this.coldStartMs;
    if (ready) this.coldStartMs = 0;
    try {
      return this.start(spec);
    } finally {
      this.coldStartMs = coldStartMs;
      this.started.pop();
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.handles.values()].map((h) => h.stop()));
  }
}

// ——— a small fleet ———

const instance = (
  instanceId: string,
  gpu: string,
  gpusPerInstance: number,
  extra: Partial<MemoryInstance> = {},
): MemoryInstance => ({
  instanceId,
  vendor: 'aws',
  region: 'us-east-1',
  capacityType: 'on-demand',
  gpu,
  gpusPerInstance,
  microsPerHour: 4_000_000 * gpusPerInstance,
  ...extra,
});

const FLEET = [
  instance('i-h100-a', 'H100', 8),
  instance('i-h100-b', 'H100', 8, { capacityType: 'spot', microsPerHour: 16_000_000 }),
  instance('i-a100-a', 'A100-80GB', 4, { vendor: 'gcp', region: 'europe-west4' }),
  instance('i-l4-a', 'L4', 1),
];

/** Settles every promise chain between clock events, so each timer sees the state its predecessors left. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
}

/** Every runtime a test made: after each test, a tick must find the kept function sizes right (or it throws). */
const made: Runtime[] = [];
afterEach(() => {
  for (const runtime of made.splice(0))
    expect(() => runtime.tick(), 'function size bookkeeping drifted').not.toThrow();
});

function setup(
  functions: Record<string, TestFunction>,
  options: { fleet?: readonly MemoryInstance[]; meter?: (clock: VirtualClock) => Meter } = {},
) {
  const clock = new VirtualClock(START);
  const capacity = new MemoryCapacity(options.fleet ?? FLEET);
  const executor = new InProcessExecutor(clock, functions);
  const meter = options.meter?.(clock);
  let shortfalls = 0;
  const runtime = new Runtime({
    clock,
    capacity,
    executor,
    ...(meter ? { meter } : {}),
    bundlePathOf: (bundleId) => `/bundles/${bundleId}.mjs`,
    onShortfall: () => shortfalls++,
    ids: new IdGenerator(clock, new Random(7)),
  });
  runtime.start();
  made.push(runtime);
  const advance = async (ms: number) => {
    const target = clock.now() + ms;
    await settle();
    for (;;) {
      const next = clock.nextTimerAt();
      if (next === undefined || next > target) break;
      await clock.advanceTo(next);
      await settle();
    }
    await clock.advanceTo(target);
    await settle();
  };
  const deploy = (
    fns: Record<string, FunctionOptions>,
    extra: { tenantId?: string; bundleId?: string } = {},
  ) =>
    runtime.deployApp({
      tenantId: extra.tenantId ?? 'acme',
      app: 'demo',
      bundleId: extra.bundleId ?? 'bundle-1',
      functions: Object.fromEntries(Object.entries(fns).map(([name, o]) => [name, parseFunctionOptions(o)])),
    });
  /** Runs time forward until the call has finished (or `limitMs` passed). */
  const outcome = async (callId: string, limitMs = 600_000): Promise<CallOutcome> => {
    const end = clock.now() + limitMs;
    while (clock.now() < end) {
      const status = runtime.get(callId)?.status;
      if (status !== 'pending' && status !== 'running') break;
      await advance(TICK);
    }
    return runtime.result(callId);
  };
  return {
    clock,
    capacity,
    executor,
    runtime,
    meter,
    advance,
    deploy,
    outcome,
    shortfalls: () => shortfalls,
  };
}

const double: TestFunction = (args) => (args[0] as number) * 2;

describe('Runtime', () => {
  it('runs a call on a container placed on a free GPU and returns its result', async () => {
    const t = setup({ double });
    t.deploy({ double: { gpu: 'H100' } });
    const callId = t.runtime.call('acme', 'demo', 'double', [21]);
    expect(t.runtime.get(callId)).toMatchObject({ status: 'pending', attempts: 0, createdAtMs: START });
    await t.advance(0);
    const [placed] = t.runtime.containers();
    expect(placed).toMatchObject({ state: 'starting', gpu: 'H100', instanceId: 'i-h100-b', gpuIndices: [0] });
    expect(t.executor.started[0]).toMatchObject({
      tenantId: 'acme',
      app: 'demo',
      functionName: 'double',
      bundlePath: '/bundles/bundle-1.mjs',
      // The cheaper of two empty H100 instances (spot, $2/GPU-hour against $4).
      instanceId: 'i-h100-b',
      gpuIndices: [0],
      concurrency: 1,
      cpu: 1,
      memoryMiB: 4096,
      network: 'egress',
    });
    expect(await t.outcome(callId)).toEqual({ status: 'succeeded', value: 42 });
    expect(t.runtime.get(callId)).toMatchObject({
      status: 'succeeded',
      attempts: 1,
      startedAtMs: START + 2_000,
      finishedAtMs: START + 2_000,
    });
    expect(t.runtime.containers()[0]).toMatchObject({ state: 'ready', coldStartMs: 2_000, inFlight: 0 });
    expect(t.runtime.callCounts('acme', 'demo')).toEqual({ done: 1, total: 1 });
    expect(t.runtime.getApp('acme', 'demo')).toEqual({
      tenantId: 'acme',
      app: 'demo',
      bundleId: 'bundle-1',
      version: 1,
      functions: ['double'],
    });
    await t.runtime.close();
  });

  it('runs a map of inputs across containers, each up to its concurrency', async () => {
    const slow: TestFunction = async (args, ctx) => {
      await ctx.sleep(5_000);
      return (args[0] as number) + 1;
    };
    const t = setup({ slow });
    t.deploy({ slow: { gpu: 'H100', concurrency: 4, maxContainers: 2 } });
    const ids = Array.from({ length: 20 }, (_, i) => t.runtime.call('acme', 'demo', 'slow', [i]));
    await t.advance(0);
    expect(t.runtime.containers()).toHaveLength(2);
    const outcomes = await Promise.all(ids.map((id) => t.outcome(id)));
    expect(outcomes.map((o) => (o.status === 'succeeded' ? o.value : o))).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
    expect(t.executor.maxInFlight).toBe(4);
    expect(t.executor.started).toHaveLength(2);
    // 20 inputs, 8 at a time, 5 s each, after a 2 s cold start: done at 2 + 3 × 5 s.
    expect(Math.max(...ids.map((id) => t.runtime.get(id)?.finishedAtMs ?? 0))).toBe(START + 17_000);
    await t.runtime.close();
  });

  it('gives a quick function’s container inputs to hold beyond its concurrency where the executor queues them, never a slow one’s', async () => {
    const slow: TestFunction = async (args, ctx) => {
      await ctx.sleep(1_000);
      return args[0];
    };
    const held = async (name: 'double' | 'slow', queuesInputs: boolean) => {
      const t = setup({ double, slow });
      t.executor.queuesInputs = queuesInputs;
      t.deploy({ [name]: { gpu: 'H100', maxContainers: 1 } });
      const ids = Array.from({ length: 300 }, (_, i) => t.runtime.call('acme', 'demo', name, [i]));
      for (const id of ids) expect((await t.outcome(id)).status).toBe('succeeded');
      // One input ran at a time (concurrency 1), whatever waited next to the container.
      expect(t.executor.maxInFlight).toBe(1);
      await t.runtime.close();
      return t.executor.maxHeld;
    };
    // Quick (no time at all on this clock): up to 256 wait behind the running one once the first has finished.
    expect(await held('double', true)).toBe(1 + MAX_QUEUED_PER_SLOT);
    expect(await held('double', false)).toBe(1);
    // 1 s an input: past QUEUED_WORK_MS, nothing waits.
    expect(await held('slow', true)).toBe(1);
  });

  it('sizes a function by what its containers hold once a probe of 8 has timed its inputs, where the executor queues them', async () => {
    const slow: TestFunction = async (args, ctx) => {
      await ctx.sleep(1_000);
      return args[0];
    };
    const fleet = [instance('i-big-a', 'H100', 64), instance('i-big-b', 'H100', 64)];
    const peak = async (name: 'double' | 'slow') => {
      const t = setup({ double, slow }, { fleet });
      t.executor.queuesInputs = true;
      t.deploy({ [name]: { gpu: 'H100' } });
      const ids = Array.from({ length: 1_000 }, (_, i) => t.runtime.call('acme', 'demo', name, [i]));
      await t.advance(0);
      const probe = t.runtime.containers().length;
      let most = probe;
      for (const id of ids) {
        expect((await t.outcome(id)).status).toBe('succeeded');
        most = Math.max(most, t.runtime.containers().length);
      }
      await t.runtime.close();
      return { probe, most };
    };
    // Quick: the probe's 8 containers hold all 1,000 inputs; no more are placed.
    expect(await peak('double')).toEqual({ probe: PROBE_CONTAINERS, most: PROBE_CONTAINERS });
    // New code is timed afresh: a probe again, for the new revision.
    const t = setup({ double, slow }, { fleet });
    t.executor.queuesInputs = true;
    const deploy = (bundleId: string) => t.deploy({ double: { gpu: 'H100' } }, { bundleId });
    deploy('bundle-1');
    expect(await t.outcome(t.runtime.call('acme', 'demo', 'double', [1]))).toEqual({
      status: 'succeeded',
      value: 2,
    });
    deploy('bundle-2');
    for (let i = 0; i < 1_000; i++) t.runtime.call('acme', 'demo', 'double', [i]);
    await t.advance(0);
    expect(t.runtime.containers().filter((c) => c.bundleId === 'bundle-2')).toHaveLength(PROBE_CONTAINERS);
    await t.runtime.close();
    // 1 s an input: once the first has run, one container per input, up to maxContainers (100).
    expect(await peak('slow')).toEqual({ probe: PROBE_CONTAINERS, most: 100 });
  });

  it('runs inputs that waited next to a container that crashed on another one, without using a retry', async () => {
    const crashy: TestFunction = async (args, ctx) => {
      if (args[0] === 'crash') {
        await ctx.sleep(50);
        throw new Crash('segfault');
      }
      return args[0];
    };
    const t = setup({ crashy });
    t.executor.queuesInputs = true;
    t.deploy({ crashy: { gpu: 'H100', maxContainers: 1, retries: 0 } });
    // Quick inputs first, so that inputs are queued next to the container.
    expect(await t.outcome(t.runtime.call('acme', 'demo', 'crashy', ['warm']))).toEqual({
      status: 'succeeded',
      value: 'warm',
    });
    const crash = t.runtime.call('acme', 'demo', 'crashy', ['crash']);
    const behind = ['a', 'b', 'c'].map((x) => t.runtime.call('acme', 'demo', 'crashy', [x]));
    await t.advance(0);
    expect(t.executor.maxHeld).toBe(4);
    expect((await t.outcome(crash)).status).toBe('failed');
    for (const [i, id] of behind.entries()) {
      expect(await t.outcome(id)).toEqual({ status: 'succeeded', value: ['a', 'b', 'c'][i] });
      // Given to the crashed container and then to its replacement: two attempts, no retry used.
      expect(t.runtime.get(id)?.attempts).toBe(2);
    }
    expect(t.executor.started).toHaveLength(2);
    await t.runtime.close();
  });

  it('fails a call whose function threw with its message and stack, without retrying it', async () => {
    const boom: TestFunction = () => {
      throw new TypeError('boom: bad input');
    };
    const t = setup({ boom });
    t.deploy({ boom: { gpu: 'H100', retries: 3 } });
    const callId = t.runtime.call('acme', 'demo', 'boom', []);
    const result = await t.outcome(callId);
    expect(result.status).toBe('failed');
    if (result.status !== 'failed') return;
    expect(result.error.name).toBe('TypeError');
    expect(result.error.message).toBe('boom: bad input');
    expect(result.error.stack).toContain('boom: bad input');
    expect(t.runtime.get(callId)?.attempts).toBe(1);
    expect(t.executor.started).toHaveLength(1);
    await t.runtime.close();
  });

  it('retries an input whose container crashed on another container, then succeeds', async () => {
    const attempts: string[] = [];
    const flaky: TestFunction = (_args, ctx) => {
      attempts.push(ctx.containerId);
      if (attempts.length === 1) throw new Crash('segfault');
      return 'ok';
    };
    const t = setup({ flaky });
    t.deploy({ flaky: { gpu: 'H100', retries: 2 } });
    const callId = t.runtime.call('acme', 'demo', 'flaky', []);
    expect(await t.outcome(callId)).toEqual({ status: 'succeeded', value: 'ok' });
    expect(t.runtime.get(callId)?.attempts).toBe(2);
    expect(new Set(attempts).size).toBe(2);
    // The crashed container gave its GPU back; only the one that succeeded holds one.
    expect(t.runtime.containers().map((c) => c.containerId)).toEqual([attempts[1]]);
    expect(t.capacity.heldCount()).toBe(1);
    await t.runtime.close();
  });

  it('fails an input after its retries when every container crashes', async () => {
    const t = setup({ crashy: () => Promise.reject(new Crash('oom')) });
    t.deploy({ crashy: { gpu: 'H100', retries: 2 } });
    const callId = t.runtime.call('acme', 'demo', 'crashy', []);
    const result = await t.outcome(callId);
    expect(result).toMatchObject({
      status: 'failed',
      error: { name: 'ContainerExitedError', message: expect.stringContaining('crashed (exit 1)') },
    });
    if (result.status === 'failed') expect(result.error.message).toContain('after 3 attempts');
    expect(t.runtime.get(callId)?.attempts).toBe(3);
    expect(t.executor.started).toHaveLength(3);
    expect(t.capacity.heldCount()).toBe(0);
    await t.runtime.close();
  });

  it('kills the container of an input past its timeout and retries it while retries remain', async () => {
    let runs = 0;
    const sometimesSlow: TestFunction = async (_args, ctx) => {
      runs++;
      await ctx.sleep(runs === 1 ? 60_000 : 1_000);
      return runs;
    };
    const t = setup({ sometimesSlow, alwaysSlow: (_a, ctx) => ctx.sleep(60_000) });
    t.deploy({
      sometimesSlow: { gpu: 'H100', timeoutMs: 5_000, retries: 1 },
      alwaysSlow: { gpu: 'H100', timeoutMs: 5_000 },
    });
    const retried = t.runtime.call('acme', 'demo', 'sometimesSlow', []);
    const failed = t.runtime.call('acme', 'demo', 'alwaysSlow', []);
    expect(await t.outcome(retried)).toEqual({ status: 'succeeded', value: 2 });
    const result = await t.outcome(failed);
    expect(result).toMatchObject({
      status: 'failed',
      error: { message: expect.stringContaining('timed out') },
    });
    // Placed at START, ready at 2 s, killed at 7 s.
    expect(t.runtime.get(failed)?.finishedAtMs).toBe(START + 7_000);
    await t.runtime.close();
  });

  it('scales up to maxContainers under load and no further', async () => {
    const work: TestFunction = (_a, ctx) => ctx.sleep(10_000);
    const t = setup({ work });
    t.deploy({ work: { gpu: 'H100', maxContainers: 5 } });
    const ids = Array.from({ length: 50 }, () => t.runtime.call('acme', 'demo', 'work', []));
    let peak = 0;
    for (let s = 0; s < 30; s++) {
      await t.advance(TICK);
      peak = Math.max(peak, t.runtime.containers().length);
    }
    expect(peak).toBe(5);
    expect(t.executor.started).toHaveLength(5);
    await Promise.all(ids.map((id) => t.outcome(id)));
    expect(ids.every((id) => t.runtime.get(id)?.status === 'succeeded')).toBe(true);
    await t.runtime.close();
  });

  it('scales to zero once its containers have been idle for the scale-down window', async () => {
    const t = setup({ double });
    t.deploy({ double: { gpu: 'H100', scaledownWindowMs: 10_000 } });
    const ids = [1, 2, 3].map((n) => t.runtime.call('acme', 'demo', 'double', [n]));
    await t.advance(0);
    expect(t.runtime.containers()).toHaveLength(3);
    for (const id of ids) await t.outcome(id);
    // Idle since 2 s; still there at 11 s, gone by 12 s (the first tick at or after 2 s + 10 s).
    await t.advance(START + 11_000 - t.clock.now());
    expect(t.runtime.containers()).toHaveLength(3);
    await t.advance(1_000);
    expect(t.runtime.containers()).toEqual([]);
    expect(t.capacity.heldCount()).toBe(0);
    expect(t.runtime.demand()).toEqual([]);
    await t.runtime.close();
  });

  it('keeps minContainers while idle and bufferContainers on top of the load', async () => {
    const work: TestFunction = (_a, ctx) => ctx.sleep(30_000);
    const t = setup({ work, double });
    t.deploy({
      double: { gpu: 'H100', minContainers: 2, scaledownWindowMs: 5_000 },
      work: { gpu: 'A100-80GB', bufferContainers: 1, scaledownWindowMs: 5_000 },
    });
    await t.advance(0);
    const count = (fn: string) => t.runtime.containers().filter((c) => c.functionName === fn).length;
    expect(count('double')).toBe(2);
    expect(count('work')).toBe(1);
    t.runtime.call('acme', 'demo', 'work', []);
    await t.advance(TICK);
    expect(count('work')).toBe(2);
    await t.advance(60_000);
    expect(count('double')).toBe(2);
    expect(count('work')).toBe(1);
    await t.runtime.close();
  });

  it('falls back along the GPU preference list when the first type has no free GPU', async () => {
    const t = setup(
      { double },
      { fleet: [instance('i-h100', 'H100', 1), instance('i-a100', 'A100-80GB', 2)] },
    );
    t.deploy({ double: { gpu: ['H100', 'A100-80GB:2'], maxContainers: 2 } });
    const ids = [1, 2].map((n) => t.runtime.call('acme', 'demo', 'double', [n]));
    await t.advance(0);
    expect(
      t.runtime
        .containers()
        .map((c) => [c.gpu, c.instanceId, c.gpuIndices])
        .sort(),
    ).toEqual([
      ['A100-80GB', 'i-a100', [0, 1]],
      ['H100', 'i-h100', [0]],
    ]);
    expect(t.shortfalls()).toBe(0);
    for (const id of ids) expect((await t.outcome(id)).status).toBe('succeeded');
    await t.runtime.close();
  });

  it('asks for a re-plan when a container finds no GPU, reports the demand and places it once capacity comes', async () => {
    const t = setup({ double });
    t.deploy({ double: { gpu: 'B200:2', regions: ['us-east-1'] } });
    const callId = t.runtime.call('acme', 'demo', 'double', [4]);
    await t.advance(3 * TICK);
    expect(t.shortfalls()).toBe(1);
    expect(t.runtime.demand()).toEqual([{ gpu: 'B200', gangSize: 2, gpus: 2 }]);
    expect(t.runtime.get(callId)?.status).toBe('pending');
    t.capacity.add(instance('i-b200', 'B200', 8, { region: 'eu-west-1' }));
    await t.advance(TICK);
    expect(t.runtime.containers()).toEqual([]);
    t.capacity.add(instance('i-b200-us', 'B200', 8));
    expect(await t.outcome(callId)).toEqual({ status: 'succeeded', value: 8 });
    expect(t.runtime.demand()).toEqual([{ gpu: 'B200', gangSize: 2, gpus: 2 }]);
    expect(t.shortfalls()).toBe(1);
    await t.runtime.close();
  });

  it('shares a function fairly between tenants: round-robin over their queued inputs', async () => {
    const t = setup({ echo: async (args, ctx) => ctx.sleep(1_000).then(() => args[0]) });
    t.deploy({ echo: { gpu: 'H100', maxContainers: 1 } });
    for (let i = 1; i <= 4; i++) t.runtime.call('acme', 'demo', 'echo', [`acme:${i}`]);
    const theirs = [1, 2].map((i) =>
      t.runtime.call('globex', 'demo', 'echo', [`globex:${i}`], { appTenantId: 'acme' }),
    );
    await Promise.all(theirs.map((id) => t.outcome(id)));
    await t.advance(10_000);
    expect(t.executor.began).toEqual(['acme:1', 'globex:1', 'acme:2', 'globex:2', 'acme:3', 'acme:4']);
    expect(t.runtime.get(theirs[0] as string)).toMatchObject({ tenantId: 'globex', appTenantId: 'acme' });
    await t.runtime.close();
  });

  it('meters one usage interval per container, from placement to exit', async () => {
    const database = await emptyDatabase();
    const store = new UsageStore(database.db);
    const t = setup({ double }, { meter: (clock) => new Meter({ clock, store }) });
    const meter = t.meter as Meter;
    t.deploy({ double: { gpu: 'A100-80GB:2', cpu: 4, memoryMiB: 8192, scaledownWindowMs: 5_000 } });
    const callId = t.runtime.call('acme', 'demo', 'double', [1]);
    await t.advance(0);
    const [container] = t.runtime.containers();
    expect(meter.openIntervals()).toEqual([
      {
        intervalId: container?.containerId,
        tenantId: 'acme',
        kind: 'container',
        subject: 'demo/double',
        gpu: 'A100-80GB',
        gpus: 2,
        cores: 4,
        memoryMib: 8192,
        vendor: 'gcp',
        region: 'europe-west4',
        capacityType: 'on-demand',
        startMs: START,
      },
    ]);
    await t.outcome(callId);
    await t.advance(10_000);
    expect(meter.openIntervals()).toEqual([]);
    await meter.flush();
    const rows = await database.db.select().from(usageIntervals);
    expect(rows).toMatchObject([
      { id: container?.containerId, subject: 'demo/double', gpus: 2, startMs: START, endMs: START + 7_000 },
    ]);
    await t.runtime.close();
    await database.close();
  });

  it('stops an app: its containers stop, its queued and running calls fail, its GPUs are freed', async () => {
    const t = setup({ work: (_a, ctx) => ctx.sleep(60_000) });
    t.deploy({ work: { gpu: 'H100', maxContainers: 1 } });
    const ids = [1, 2, 3].map(() => t.runtime.call('acme', 'demo', 'work', []));
    await t.advance(3_000);
    expect(t.runtime.get(ids[0] as string)?.status).toBe('running');
    await t.runtime.stopApp('acme', 'demo');
    for (const id of ids)
      expect(await t.runtime.result(id)).toMatchObject({
        status: 'failed',
        error: { message: 'app demo was stopped' },
      });
    expect(t.runtime.containers()).toEqual([]);
    expect(t.capacity.heldCount()).toBe(0);
    expect(() => t.runtime.call('acme', 'demo', 'work', [])).toThrow(NotFoundError);
    await t.advance(120_000);
    expect(t.executor.started).toHaveLength(1);
    await t.runtime.close();
  });

  it('cancels a queued call before it runs and a running one without waiting for it', async () => {
    const t = setup({ work: (_a, ctx) => ctx.sleep(10_000) });
    t.deploy({ work: { gpu: 'H100', maxContainers: 1 } });
    const running = t.runtime.call('acme', 'demo', 'work', ['first']);
    const queued = t.runtime.call('acme', 'demo', 'work', ['second']);
    await t.advance(3_000);
    expect(t.runtime.cancel(queued)).toBe(true);
    expect(t.runtime.cancel(running)).toBe(true);
    expect(await t.runtime.result(queued)).toEqual({ status: 'cancelled' });
    expect(await t.runtime.result(running)).toEqual({ status: 'cancelled' });
    await t.advance(30_000);
    expect(t.executor.began).toEqual(['first']);
    expect(t.runtime.cancel(running)).toBe(false);
    expect(t.runtime.get(running)?.status).toBe('cancelled');
    expect(() => t.runtime.cancel('call_unknown')).toThrow(NotFoundError);
    await t.runtime.close();
  });

  it('takes a repeated call id as the same call', async () => {
    const t = setup({ double });
    t.deploy({ double: { gpu: 'H100' } });
    expect(t.runtime.call('acme', 'demo', 'double', [1], { callId: 'k-1' })).toBe('k-1');
    expect(t.runtime.call('acme', 'demo', 'double', [1], { callId: 'k-1' })).toBe('k-1');
    expect(await t.outcome('k-1')).toEqual({ status: 'succeeded', value: 2 });
    expect(t.executor.began).toHaveLength(1);
    expect(() =>
      t.runtime.call('other', 'demo', 'double', [1], { callId: 'k-1', appTenantId: 'acme' }),
    ).toThrow(/callId: already used/);
    await t.runtime.close();
  });

  it('starts new containers from the new bundle after a re-deploy and drains the old ones', async () => {
    const t = setup({ work: async (_a, ctx) => ctx.sleep(5_000).then(() => ctx.spec.bundlePath) });
    t.deploy({ work: { gpu: 'H100' } });
    const before = t.runtime.call('acme', 'demo', 'work', []);
    await t.advance(3_000);
    expect(t.deploy({ work: { gpu: 'H100' } }, { bundleId: 'bundle-2' }).version).toBe(2);
    const after = t.runtime.call('acme', 'demo', 'work', []);
    await t.advance(0);
    expect(t.runtime.containers().map((c) => [c.bundleId, c.state])).toEqual([
      ['bundle-1', 'draining'],
      ['bundle-2', 'starting'],
    ]);
    expect(await t.outcome(before)).toEqual({ status: 'succeeded', value: '/bundles/bundle-1.mjs' });
    expect(await t.outcome(after)).toEqual({ status: 'succeeded', value: '/bundles/bundle-2.mjs' });
    expect(t.runtime.containers().map((c) => c.bundleId)).toEqual(['bundle-2']);
    await t.runtime.close();
  });

  it('tags container log lines with tenant, app and function', async () => {
    const t = setup({
      chatty: (args, ctx) => {
        ctx.log(`hello ${args[0]}`);
        return null;
      },
    });
    const lines: RuntimeLogLine[] = [];
    t.runtime.onLog((line) => lines.push(line));
    t.deploy({ chatty: { gpu: 'L4' } });
    await t.outcome(t.runtime.call('acme', 'demo', 'chatty', ['world']));
    expect(lines).toMatchObject([
      { tenantId: 'acme', app: 'demo', functionName: 'chatty', stream: 'stdout', text: 'hello world' },
    ]);
    await t.runtime.close();
  });

  it('fails queued calls when containers keep failing to start, and backs off between tries', async () => {
    const t = setup({ double });
    t.executor.failStart = () => 'SyntaxError: Unexpected token';
    t.deploy({ double: { gpu: 'H100' } });
    const callId = t.runtime.call('acme', 'demo', 'double', [1]);
    const result = await t.outcome(callId);
    expect(result).toMatchObject({
      status: 'failed',
      error: { name: 'ContainerStartError', message: expect.stringContaining('Unexpected token') },
    });
    // Starts at 0 s, 3 s (1 s backoff after a 2 s start), 7 s (2 s backoff).
    expect(t.executor.started).toHaveLength(3);
    expect(t.runtime.get(callId)?.finishedAtMs).toBe(START + 9_000);
    expect(t.capacity.heldCount()).toBe(0);
    await t.runtime.close();
  });

  it('moves containers off a draining instance', async () => {
    const t = setup({ double }, { fleet: [instance('i-old', 'H100', 1), instance('i-new', 'H100', 2)] });
    t.deploy({ double: { gpu: 'H100', minContainers: 1 } });
    await t.advance(3_000);
    expect(t.runtime.containers().map((c) => c.instanceId)).toEqual(['i-old']);
    t.capacity.drain('i-old');
    t.runtime.drainInstances(['i-old']);
    await t.advance(0);
    expect(t.runtime.containers().map((c) => c.instanceId)).toEqual(['i-new']);
    expect([...t.capacity.holdings().values()].flat()).toEqual(['i-new:0']);
    await t.runtime.close();
  });

  it('never books one GPU twice while many functions scale up and down', async () => {
    const random = new Random(11);
    const fleet = [
      instance('i-1', 'H100', 8),
      instance('i-2', 'H100', 8),
      instance('i-3', 'A100-80GB', 4),
      instance('i-4', 'L4', 1),
      instance('i-5', 'L4', 1),
    ];
    const t = setup(
      {
        a: (_a, ctx) => ctx.sleep(random.int(100, 4_000)),
        b: (_a, ctx) => ctx.sleep(random.int(100, 8_000)),
        c: (_a, ctx) => (random.chance(0.2) ? Promise.reject(new Crash('x')) : ctx.sleep(500)),
      },
      { fleet },
    );
    let checks = 0;
    const allocate = t.capacity.allocate.bind(t.capacity);
    // MemoryCapacity throws on a double booking; count the allocations to know the check ran.
    t.capacity.allocate = (owner, id, gpus) => {
      checks++;
      allocate(owner, id, gpus);
    };
    t.deploy({
      a: { gpu: ['H100:2', 'A100-80GB:2'], maxContainers: 10, scaledownWindowMs: 2_000 },
      b: { gpu: 'H100:3', concurrency: 2, scaledownWindowMs: 3_000 },
      c: { gpu: ['L4', 'H100'], retries: 3, scaledownWindowMs: 1_000 },
    });
    const ids: string[] = [];
    for (let s = 0; s < 60; s++) {
      for (const fn of ['a', 'b', 'c']) {
        const n = random.int(0, 3);
        for (let i = 0; i < n; i++) ids.push(t.runtime.call('acme', 'demo', fn, []));
      }
      await t.advance(TICK);
      const held = [...t.capacity.holdings().values()].flat();
      expect(new Set(held).size).toBe(held.length);
      expect(held.length).toBe(t.runtime.containers().reduce((n, c) => n + c.gpuIndices.length, 0));
    }
    await t.advance(120_000);
    expect(ids.every((id) => t.runtime.get(id)?.status !== 'pending')).toBe(true);
    expect(checks).toBe(t.executor.started.length);
    expect(checks).toBeGreaterThan(10);
    await t.runtime.close();
    expect(t.capacity.heldCount()).toBe(0);
  });
});

describe('FreeGpuSlot', () => {
  it('is what the MemoryCapacity reports', () => {
    const capacity = new MemoryCapacity([instance('i-1', 'H100', 2)]);
    capacity.allocate('c1', 'i-1', [1]);
    expect(capacity.freeGpus()).toEqual<FreeGpuSlot[]>([{ ...instance('i-1', 'H100', 2), free: [0] }]);
    expect(() => capacity.allocate('c2', 'i-1', [1])).toThrow(/already held by c1/);
    capacity.free('c1');
    expect(capacity.freeGpus()[0]?.free).toEqual([0, 1]);
  });
});

describe('Runtime: the tick sleeps while nothing is due', () => {
  /**
   * One workload, run twice: once as it is, once with a tick forced at every grid point (what a fixed 1 s tick
   * did). Every event of the workload falls between grid points (odd ms), so the two runs see the same events in
   * the same order; sleeping must change no outcome, and must skip most ticks.
   */
  const runWorkload = async (seed: number, forceEveryTick: boolean) => {
    const random = new Random(seed);
    const fleet = [instance('i-1', 'H100', 8), instance('i-2', 'H100', 8), instance('i-3', 'L4', 1)];
    const fnRandom = random.fork('functions');
    const t = setup(
      {
        work: (args, ctx) =>
          (args[1] as boolean)
            ? ctx.sleep(args[0] as number).then(() => Promise.reject(new Crash('x')))
            : ctx.sleep(args[0] as number),
      },
      { fleet },
    );
    t.executor.orphanInputsOnCrash = seed % 2 === 1;
    let ticks = 0;
    const tick = t.runtime.tick.bind(t.runtime);
    t.runtime.tick = () => {
      ticks++;
      tick();
    };
    if (forceEveryTick) {
      const force = () => {
        t.runtime.tick();
        t.clock.setTimer(t.clock.now() + TICK, force);
      };
      t.clock.setTimer(t.clock.now() + TICK, force);
    }
    await t.advance(1);
    t.deploy({
      work: {
        gpu: ['H100', 'L4'],
        minContainers: fnRandom.int(0, 1),
        bufferContainers: fnRandom.int(0, 2),
        concurrency: fnRandom.int(1, 2),
        retries: 1,
        scaledownWindowMs: fnRandom.int(1, 30) * 1_000,
      },
    });
    const calls: string[] = [];
    const arrivals = random.fork('arrivals');
    // Bursts and lulls over ten minutes: every arrival at an odd ms, every duration even.
    for (let at = 1; at < 600_000; ) {
      const burst = arrivals.chance(0.3) ? arrivals.int(2, 6) : 1;
      for (let i = 0; i < burst; i++)
        calls.push(
          t.runtime.call('acme', 'demo', 'work', [2 * arrivals.int(100, 20_000), arrivals.chance(0.05)]),
        );
      const gap = 2 * arrivals.int(1, arrivals.chance(0.2) ? 60_000 : 3_000);
      await t.advance(gap);
      at += gap;
    }
    await t.advance(120_000);
    const outcome = {
      calls: calls.map((id) => {
        const call = t.runtime.get(id);
        return [call?.status, call?.startedAtMs, call?.finishedAtMs, call?.containerId];
      }),
      started: t.executor.started.map((spec) => spec.containerId),
      containers: t.runtime.containers().map((c) => [c.containerId, c.state]),
    };
    await t.runtime.close();
    return { outcome, ticks };
  };

  it('changes no outcome against a tick at every grid point, and skips most ticks', async () => {
    let slept = 0;
    let forced = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), async (seed) => {
        const sleeping = await runWorkload(seed, false);
        const everyTick = await runWorkload(seed, true);
        expect(sleeping.outcome).toEqual(everyTick.outcome);
        expect(sleeping.outcome.calls.every(([status]) => status !== 'pending' && status !== 'running')).toBe(
          true,
        );
        slept += sleeping.ticks;
        forced += everyTick.ticks;
      }),
      { numRuns: 30 },
    );
    expect(slept).toBeLessThan(forced / 4);
  });
});

describe('Runtime.adopt', () => {
  const running = (extra: Partial<RunningContainer> = {}): RunningContainer => ({
    containerId: 'ctr_kept',
    tenantId: 'acme',
    app: 'demo',
    functionName: 'double',
    bundleId: 'bundle-1',
    instanceId: 'i-h100-a',
    gpuIndices: [3],
    env: {},
    concurrency: 1,
    ready: true,
    ...extra,
  });

  it('takes back a container an agent still runs: no new start, its GPU held, its usage metered, inputs run on it', async () => {
    const store = { current: undefined as UsageStore | undefined };
    const database = await emptyDatabase();
    const t = setup(
      { double },
      {
        meter: (clock) => {
          store.current = new UsageStore(database.db);
          return new Meter({ clock, store: store.current });
        },
      },
    );
    t.deploy({ double: { gpu: 'H100' } });
    expect(t.runtime.adopt(running())).toBe(true);
    // The same container again, or a second claim on its GPU: refused (the caller stops it).
    expect(t.runtime.adopt(running())).toBe(false);
    expect(t.runtime.adopt(running({ containerId: 'ctr_other' }))).toBe(false);
    await t.advance(0);
    expect(t.executor.started).toEqual([]);
    expect(t.executor.adopted.map((a) => [a.spec.containerId, a.spec.instanceId, a.spec.gpuIndices])).toEqual(
      [['ctr_kept', 'i-h100-a', [3]]],
    );
    expect(t.runtime.containers()).toMatchObject([
      { containerId: 'ctr_kept', state: 'ready', instanceId: 'i-h100-a', gpuIndices: [3] },
    ]);
    expect(t.capacity.freeGpus().find((slot) => slot.instanceId === 'i-h100-a')?.free).not.toContain(3);
    expect(t.meter?.openIntervals().map((i) => i.intervalId)).toEqual(['ctr_kept']);
    const callId = t.runtime.call('acme', 'demo', 'double', [4]);
    expect(await t.outcome(callId)).toEqual({ status: 'succeeded', value: 8 });
    // It ran at once, on the adopted container: no cold start.
    expect(t.runtime.get(callId)).toMatchObject({ startedAtMs: START, finishedAtMs: START });
    expect(t.executor.started).toEqual([]);
    await t.runtime.close();
    await database.close();
  });

  it('refuses a container of another bundle, env, concurrency or function, or on GPUs that are not free', async () => {
    const t = setup({ double });
    t.deploy({ double: { gpu: 'H100' } });
    expect(t.runtime.adopt(running({ bundleId: 'bundle-0' }))).toBe(false);
    expect(t.runtime.adopt(running({ env: { SECRET: 'x' } }))).toBe(false);
    expect(t.runtime.adopt(running({ concurrency: 4 }))).toBe(false);
    expect(t.runtime.adopt(running({ functionName: 'triple' }))).toBe(false);
    expect(t.runtime.adopt(running({ gpuIndices: [8] }))).toBe(false);
    expect(t.runtime.adopt(running({ gpuIndices: [] }))).toBe(false);
    expect(t.runtime.adopt(running({ instanceId: 'i-gone' }))).toBe(false);
    expect(t.runtime.containers()).toEqual([]);
    expect(t.executor.adopted).toEqual([]);
    await t.runtime.close();
  });
});
