/** Long polls on calls: when a wait on one call, and a wait on many, ends. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import type { CallStatus } from '../../runtime/runtime.ts';
import { CallWaits, GATHER_MS } from './call-waits.ts';

/** The runtime as CallWaits sees it: call statuses, and an event as each finishes. */
function fakeRuntime(ids: readonly string[]) {
  const status = new Map<string, CallStatus>(ids.map((id) => [id, 'running']));
  const listeners = new Set<(id: string) => void>();
  return {
    statusOf: (id: string) => status.get(id),
    onFinished(listener: (id: string) => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    finish(id: string) {
      status.set(id, 'succeeded');
      for (const listener of listeners) listener(id);
    },
    listening: () => listeners.size,
  };
}

/** When `wait` resolved, on the virtual clock (undefined: not yet). */
function watch(clock: VirtualClock, wait: Promise<void>) {
  const seen: { atMs?: number } = {};
  void wait.then(() => {
    seen.atMs = clock.now();
  });
  return seen;
}

const ids = Array.from({ length: 8 }, (_, i) => `call-${i}`);

describe('CallWaits', () => {
  it('ends a wait on one call when it finishes, and at once when it has', async () => {
    const clock = new VirtualClock(0);
    const runtime = fakeRuntime(ids);
    const waits = new CallWaits(runtime, clock);
    const one = watch(clock, waits.wait(['call-0'], 10_000));
    await clock.advanceBy(5);
    runtime.finish('call-0');
    await clock.advanceBy(0);
    expect(one.atMs).toBe(5);
    const again = watch(clock, waits.wait(['call-0'], 10_000));
    await new Promise((resolve) => setImmediate(resolve));
    expect(again.atMs).toBe(5);
    expect(runtime.listening()).toBe(0);
  });

  it(`ends a wait on many once a quarter of them finished, or ${GATHER_MS} ms after the first, or at its deadline`, async () => {
    const clock = new VirtualClock(0);
    const runtime = fakeRuntime(ids);
    const waits = new CallWaits(runtime, clock);
    // A quarter of 8: the second to finish ends it.
    const quarter = watch(clock, waits.wait(ids, 10_000));
    runtime.finish('call-0');
    await clock.advanceBy(3);
    runtime.finish('call-1');
    await clock.advanceBy(0);
    expect(quarter.atMs).toBe(3);
    // One of the rest finishes: the wait gathers for GATHER_MS more.
    const gathered = watch(clock, waits.wait(ids.slice(2), 10_000));
    await clock.advanceBy(100);
    runtime.finish('call-2');
    await clock.advanceBy(GATHER_MS - 1);
    expect(gathered.atMs).toBeUndefined();
    await clock.advanceBy(1);
    expect(gathered.atMs).toBe(3 + 100 + GATHER_MS);
    // None finishes: its deadline.
    const idle = watch(clock, waits.wait(ids.slice(3), 500));
    await clock.advanceBy(500);
    expect(idle.atMs).toBe(3 + 100 + GATHER_MS + 500);
    expect(runtime.listening()).toBe(0);
  });
});
