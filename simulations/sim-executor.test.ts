import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../lib/clock.ts';
import { ContainerExitedError, type ContainerSpec } from '../runtime/executor/executor.ts';
import { type SimCallArgs, SimExecutor, type SimExecutorListener } from './sim-executor.ts';

const spec = (containerId: string, instanceId = 'i-1'): ContainerSpec => ({
  containerId,
  tenantId: 't',
  app: 'a',
  functionName: 'f',
  bundleId: 'tenant/none',
  bundlePath: '/nowhere.mjs',
  instanceId,
  gpuIndices: [0],
  env: {},
  concurrency: 1,
  cpu: 1,
  memoryMiB: 4096,
  network: 'egress',
});
const call = (serviceMs: number): SimCallArgs => ({ serviceMs, arrivalMs: 0, starts: 0 });

function setup(coldStartMs = 2_000) {
  const clock = new VirtualClock(0);
  const events: string[] = [];
  const listener: SimExecutorListener = {
    containerStarted: (s, at, cold) => events.push(`start ${s.containerId} @${at} cold ${cold}`),
    containerReady: (id, at) => events.push(`ready ${id} @${at}`),
    containerExited: (id, at, reason) => events.push(`exit ${id} @${at} ${reason}`),
    inputStarted: (args, at, first) => events.push(`input ${args.serviceMs} @${at}${first ? '' : ' again'}`),
    inputEnded: (args, at, ok) => events.push(`done ${args.serviceMs} @${at} ${ok ? 'ok' : 'failed'}`),
  };
  return { clock, events, executor: new SimExecutor({ clock, coldStartMs: () => coldStartMs, listener }) };
}

describe('the simulated executor', () => {
  it('is ready after the drawn cold start and answers a call after its service time, on the virtual clock', async () => {
    const { clock, events, executor } = setup();
    const handle = executor.start(spec('c1'));
    let ready = false;
    void handle.ready.then(() => {
      ready = true;
    });
    await clock.advanceTo(1_999);
    expect(ready).toBe(false);
    await clock.advanceTo(2_000);
    expect(ready).toBe(true);
    const result = handle.invoke('call-1', [call(5_000)]);
    let done = false;
    void result.then(() => {
      done = true;
    });
    await clock.advanceTo(6_999);
    expect(done).toBe(false);
    await clock.advanceTo(7_000);
    expect(done).toBe(true);
    expect(events).toEqual([
      'start c1 @0 cold 2000',
      'ready c1 @2000',
      'input 5000 @2000',
      'done 5000 @7000 ok',
    ]);
  });

  it('kills the container when a call outlasts the timeout, failing it as a container exit', async () => {
    const { clock, executor } = setup(0);
    const handle = executor.start(spec('c1'));
    await clock.advanceTo(0);
    const result = handle.invoke('call-1', [call(60_000)], { timeoutMs: 10_000 });
    const settled = result.catch((error: unknown) => error);
    await clock.advanceTo(10_000);
    expect(await settled).toBeInstanceOf(ContainerExitedError);
    expect((await handle.exited).reason).toBe('killed: input timed out');
  });

  it('takes the containers of an instance that goes away with it, and a call run again is not a first start', async () => {
    const { clock, events, executor } = setup(1_000);
    const a = executor.start(spec('a', 'i-1'));
    const b = executor.start(spec('b', 'i-2'));
    const starting = executor.start(spec('c', 'i-1'));
    await clock.advanceTo(500);
    const startFailed = starting.ready.catch((error: unknown) => error);
    executor.instanceGone('i-1', 'reclaimed');
    expect(await startFailed).toBeInstanceOf(Error);
    await clock.advanceTo(1_000);
    expect(executor.live()).toBe(1);
    const args = call(4_000);
    await b.ready;
    const first = b.invoke('x', [args]).catch((error: unknown) => error);
    executor.instanceGone('i-2', 'preempted');
    expect(await first).toBeInstanceOf(ContainerExitedError);
    const d = executor.start(spec('d', 'i-3'));
    await clock.advanceTo(2_000);
    await d.ready;
    void d.invoke('x', [args]);
    expect(events.filter((e) => e.startsWith('input'))).toEqual([
      'input 4000 @1000',
      'input 4000 @2000 again',
    ]);
    expect((await a.exited).reason).toBe('reclaimed');
  });

  it('refuses a call before the container is ready, and stops at once', async () => {
    const { clock, executor } = setup(1_000);
    const handle = executor.start(spec('c1'));
    await expect(handle.invoke('x', [call(1)])).rejects.toBeInstanceOf(ContainerExitedError);
    await clock.advanceTo(1_000);
    expect((await handle.stop()).reason).toBe('stopped');
    expect(executor.live()).toBe(0);
  });
});
