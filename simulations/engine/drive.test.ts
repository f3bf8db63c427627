/** The discrete-event driver: a moment's work settles before time moves, however long its promise chains. */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../lib/clock.ts';
import { driveUntil } from './drive.ts';

/** A chain of `hops` promise steps, then `done()`. */
async function chain(hops: number, done: () => void): Promise<void> {
  for (let i = 0; i < hops; i++) await undefined;
  done();
}

describe('driveUntil', () => {
  it('lets work that says it is pending end within its moment, whatever its length', async () => {
    const clock = new VirtualClock(0);
    let inFlight = 0;
    const seen: string[] = [];
    clock.setTimer(10, () => {
      inFlight++;
      void chain(200, () => {
        inFlight--;
        seen.push(`chain ended at ${clock.now()}`);
      });
    });
    clock.setTimer(20, () => seen.push('next moment'));
    await driveUntil(clock, 100, { pending: () => inFlight > 0 });
    expect(seen).toEqual(['chain ended at 10', 'next moment']);
  });

  it('gives short chains their moment without a turn, and counts each moment once', async () => {
    const clock = new VirtualClock(0);
    const seen: number[] = [];
    let steps = 0;
    for (const at of [5, 6, 7]) clock.setTimer(at, () => void chain(1, () => seen.push(clock.now())));
    await driveUntil(clock, 10, {
      pending: () => false,
      afterStep: () => {
        steps++;
        return false;
      },
    });
    expect(seen).toEqual([5, 6, 7]);
    expect(steps).toBe(3);
    expect(clock.now()).toBe(10);
  });
});
