/**
 * The meter's heartbeat keeps to its grid: a beat that fires late (a busy event loop) does not push the next one
 * later, so the last checkpoint a crash leaves is never much more than one heartbeat old.
 */
import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../lib/clock.ts';
import { Meter } from './meter.ts';
import type { MeterCheckpoint, UsageStore } from './usage-store.ts';

/** A clock whose timers fire when the test says, as late as it says. */
class LateClock implements Clock {
  nowMs = 0;
  timers: { atMs: number; callback: () => void; cancelled: boolean }[] = [];
  now(): number {
    return this.nowMs;
  }
  sleep(): Promise<void> {
    throw new Error('not used');
  }
  setTimer(atMs: number, callback: () => void): TimerHandle {
    const timer = { atMs, callback, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => (timer.cancelled = true) };
  }
  /** Fires the next timer `lateMs` after its time. */
  fireNext(lateMs: number): number {
    const timer = this.timers.filter((t) => !t.cancelled).sort((a, b) => a.atMs - b.atMs)[0];
    if (!timer) throw new Error('no timer');
    timer.cancelled = true;
    this.nowMs = timer.atMs + lateMs;
    timer.callback();
    return timer.atMs;
  }
}

describe('meter heartbeat', () => {
  it('keeps to its grid when beats fire late, and skips the beats a stall missed', async () => {
    const clock = new LateClock();
    const checkpoints: number[] = [];
    const store = {
      ingest: async (_events: unknown, checkpoint?: MeterCheckpoint) => {
        if (checkpoint) checkpoints.push(checkpoint.atMs);
        return 0;
      },
    } as unknown as UsageStore;
    const meter = new Meter({ clock, store, heartbeatMs: 1_000 });
    meter.openInterval({
      intervalId: 'i',
      tenantId: 't',
      kind: 'lease',
      subject: 'l',
      gpu: 'H100',
      gpus: 1,
      vendor: 'aws',
      region: 'us-east-1',
      capacityType: 'on-demand',
    });
    meter.start();
    const due: number[] = [];
    for (const late of [300, 300, 300, 0]) due.push(clock.fireNext(late));
    expect(due).toEqual([1_000, 2_000, 3_000, 4_000]);
    // A stall of 2.5 beats: the next beat is the first grid point after it, not one heartbeat after it.
    due.push(clock.fireNext(2_500));
    due.push(clock.fireNext(0));
    expect(due.slice(4)).toEqual([5_000, 8_000]);
    await meter.flush();
    expect(checkpoints).toEqual([1_300, 2_300, 3_300, 4_000, 7_500, 8_000]);
  });
});
